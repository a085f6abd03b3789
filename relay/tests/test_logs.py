"""The logs consumer: session, Origin and firewall before accept, ownership, relay, ends."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client, override_settings

from accounts.models import User
from accounts.tests.factories import AdminFactory, UserFactory
from agent import protocol as p
from agent.logs import LogService
from agent.multiplex import Multiplexer
from agent.runtimes.base import NOT_FOUND, LogFollower, LogsEnded, RuntimeFailure
from clusters.services import cluster_create
from relay.consumers import logs
from relay.tests.asgi import application
from security_center.models import FirewallEvent, FirewallRule
from workspaces.controlplane.memory import InMemoryControlPlane

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@pytest.fixture(autouse=True)
def memory_control_plane():
    InMemoryControlPlane.reset()
    with override_settings(CONTROL_PLANE="workspaces.controlplane.memory.InMemoryControlPlane"):
        yield
    InMemoryControlPlane.reset()


@pytest.fixture
def cluster_token():
    return cluster_create(name="edge", actor=None)


@pytest.fixture
def owner():
    return UserFactory(email="owner@example.com")


@pytest.fixture
def workspace(cluster_token, owner) -> str:
    cluster, _ = cluster_token
    environment = InMemoryControlPlane.seed(
        cluster, metadata={p.BLUEPRINT_TAG: "web", p.OWNER_TAG: "Owner@Example.com"}
    )
    return environment.id


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def _browser(query: str, user=None, *, origin=ORIGIN, ip="127.0.0.1"):
    headers = [origin]
    if user is not None:
        headers.append((b"cookie", (await sync_to_async(_session_cookie)(user)).encode()))
    socket = WebsocketCommunicator(application, f"/ws/logs/?{query}", headers=headers)
    socket.scope["client"] = (ip, 50000)
    return socket


async def _messages_until_close(socket: WebsocketCommunicator, timeout: float = 10.0):
    """Every JSON message until the close, and the close code."""
    messages = []
    while True:
        message = await socket.receive_output(timeout)
        if message["type"] == "websocket.close":
            return messages, message.get("code")
        messages.append(json.loads(message["text"]))


class FakeFollower(LogFollower):
    """A follower the test feeds: a fixed tail, then what `write` and `end` say."""

    def __init__(self, tail: list[str]) -> None:
        self.lines = tail
        self.queue: asyncio.Queue[list[str] | LogsEnded] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.tail_asked: int | None = None

    async def tail(self, count: int) -> list[str]:
        self.tail_asked = count
        return self.lines[-count:]

    async def next(self) -> list[str]:
        item = await self.queue.get()
        if isinstance(item, LogsEnded):
            raise item
        return item

    def close(self) -> None:
        self.closed.set()
        self.queue.put_nowait(LogsEnded("closed", "closed"))


class FakeRuntime:
    """The agent's runtime as the logs service sees it: one follower per environment."""

    name = "fake"

    def __init__(self) -> None:
        self.followers: dict[str, list[FakeFollower]] = {}
        self.tails: dict[str, list[str]] = {}

    def follow_logs(self, env_id: str) -> FakeFollower:
        if env_id not in self.tails:
            raise RuntimeFailure(NOT_FOUND, "gone")
        follower = FakeFollower(self.tails[env_id])
        self.followers.setdefault(env_id, []).append(follower)
        return follower


@contextlib.asynccontextmanager
async def agent_serving_logs(token: str):
    """A tunnel to the portal served by an in-test agent multiplexer with the logs service."""
    tunnel = WebsocketCommunicator(
        application, "/agent/v1/tunnel", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    assert (await tunnel.connect())[0]

    async def to_portal(data: bytes) -> None:
        await tunnel.send_to(bytes_data=data)

    runtime = FakeRuntime()
    mux = Multiplexer(to_portal, {"logs": LogService(runtime).handle_stream})

    async def pump() -> None:
        while True:
            message = await tunnel.output_queue.get()
            if message["type"] == "websocket.close":
                return
            if message.get("bytes") is not None:
                await mux.feed(message["bytes"])

    pumping = asyncio.create_task(pump())
    try:
        yield runtime
    finally:
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)
        await mux.aclose()
        await tunnel.disconnect()


# --- refused before accept -------------------------------------------------------------


async def test_anonymous_and_foreign_origin_are_refused_before_accept(workspace, owner):
    anonymous = await _browser(f"workspace={workspace}")
    assert await anonymous.connect() == (False, logs.CLOSE_NOT_AUTHENTICATED)
    elsewhere = await _browser(f"workspace={workspace}", owner, origin=(b"origin", b"https://x.io"))
    assert (await elsewhere.connect())[0] is False


async def test_firewall_deny_refuses_before_accept_and_records_an_event(workspace, owner):
    await sync_to_async(FirewallRule.objects.create)(action="deny", cidr="127.0.0.0/8", priority=1)
    socket = await _browser(f"workspace={workspace}", owner, ip="127.0.0.9")
    assert await socket.connect() == (False, logs.CLOSE_FIREWALL)
    [event] = await sync_to_async(list)(FirewallEvent.objects.all())
    assert (event.ip, event.kind, event.user_email) == ("127.0.0.9", "logs", "owner@example.com")
    assert event.environment_id == workspace


# --- refused after accept --------------------------------------------------------------


async def test_someone_elses_workspace_is_refused_like_an_unknown_id(cluster_token, workspace):
    _, token = cluster_token
    stranger = await sync_to_async(UserFactory)(email="stranger@example.com")
    async with agent_serving_logs(token) as runtime:
        runtime.tails[workspace] = ["secret line"]
        answers = []
        for query in (f"workspace={workspace}", "workspace=env-ffffffffffff", "workspace="):
            socket = await _browser(query, stranger)
            assert (await socket.connect())[0]
            answers.append(await _messages_until_close(socket))
        error = {"type": "error", "code": "workspace_not_found", "detail": "Workspace not found."}
        assert answers == [([error], logs.CLOSE_NOT_FOUND)] * 3
        assert runtime.followers == {}  # nothing was asked of the agent


async def test_a_bad_tail_is_refused(workspace, owner):
    for tail in ("0", "2001", "many"):
        socket = await _browser(f"workspace={workspace}&tail={tail}", owner)
        assert (await socket.connect())[0]
        [error], code = await _messages_until_close(socket)
        assert (error["code"], code) == ("invalid_tail", logs.CLOSE_INVALID)


async def test_an_offline_agent_is_reported(workspace, owner):
    socket = await _browser(f"workspace={workspace}", owner)
    assert (await socket.connect())[0]
    [error], code = await _messages_until_close(socket)
    assert (error["code"], code) == ("cluster_unavailable", logs.CLOSE_AGENT_UNAVAILABLE)


# --- following ---------------------------------------------------------------------------


async def test_the_owner_gets_the_tail_then_new_lines(cluster_token, workspace, owner):
    _, token = cluster_token
    async with agent_serving_logs(token) as runtime:
        runtime.tails[workspace] = [f"line {i}" for i in range(300)]
        socket = await _browser(f"workspace={workspace}&tail=20", owner)
        assert (await socket.connect())[0]
        first = await socket.receive_json_from(timeout=10)
        assert first == {"type": "lines", "lines": [f"line {i}" for i in range(280, 300)]}
        [follower] = runtime.followers[workspace]
        follower.queue.put_nowait(["new 1", "new 2"])
        assert await socket.receive_json_from(timeout=10) == {
            "type": "lines",
            "lines": ["new 1", "new 2"],
        }
        await socket.send_to(text_data=json.dumps({"type": "ping"}))
        assert await socket.receive_json_from(timeout=10) == {"type": "pong"}
        await socket.disconnect()
        await asyncio.wait_for(follower.closed.wait(), 10)  # the agent stopped following


async def test_the_default_tail_and_an_empty_log(cluster_token, workspace, owner):
    _, token = cluster_token
    async with agent_serving_logs(token) as runtime:
        runtime.tails[workspace] = []
        socket = await _browser(f"workspace={workspace}", owner)
        assert (await socket.connect())[0]
        assert await socket.receive_json_from(timeout=10) == {"type": "lines", "lines": []}
        assert runtime.followers[workspace][0].tail_asked == p.DEFAULT_LOG_TAIL
        await socket.disconnect()


async def test_an_admin_may_follow_any_workspace(cluster_token, workspace):
    _, token = cluster_token
    admin = await sync_to_async(AdminFactory)(email="admin@example.com")
    async with agent_serving_logs(token) as runtime:
        runtime.tails[workspace] = ["from the owner's app"]
        socket = await _browser(f"workspace={workspace}", admin)
        assert (await socket.connect())[0]
        first = await socket.receive_json_from(timeout=10)
        assert first == {"type": "lines", "lines": ["from the owner's app"]}
        await socket.disconnect()


async def test_a_deleted_workspace_ends_the_stream(cluster_token, workspace, owner):
    _, token = cluster_token
    async with agent_serving_logs(token) as runtime:
        runtime.tails[workspace] = ["last words"]
        socket = await _browser(f"workspace={workspace}", owner)
        assert (await socket.connect())[0]
        await socket.receive_json_from(timeout=10)
        [follower] = runtime.followers[workspace]
        follower.queue.put_nowait(LogsEnded(p.LOG_END_DELETED, "the workspace was deleted"))
        messages, code = await _messages_until_close(socket)
        end = {"type": "end", "code": "workspace_deleted", "detail": "The workspace was deleted."}
        assert (messages, code) == ([end], logs.CLOSE_DELETED)


async def test_a_lost_agent_ends_the_stream(cluster_token, workspace, owner):
    _, token = cluster_token
    async with agent_serving_logs(token) as runtime:
        runtime.tails[workspace] = ["before the loss"]
        socket = await _browser(f"workspace={workspace}", owner)
        assert (await socket.connect())[0]
        await socket.receive_json_from(timeout=10)
    messages, code = await _messages_until_close(socket)
    assert [m["code"] for m in messages] == ["agent_disconnected"]
    assert messages[0]["type"] == "end" and code == logs.CLOSE_AGENT_UNAVAILABLE


async def test_a_workspace_the_agent_does_not_know_is_not_found(cluster_token, workspace, owner):
    _, token = cluster_token
    async with agent_serving_logs(token):
        socket = await _browser(f"workspace={workspace}", owner)
        assert (await socket.connect())[0]
        [error], code = await _messages_until_close(socket)
        assert (error["code"], code) == ("workspace_not_found", logs.CLOSE_NOT_FOUND)


async def test_signing_out_or_a_changed_role_ends_the_socket(
    cluster_token, workspace, owner, monkeypatch
):
    _, token = cluster_token
    monkeypatch.setattr(logs, "RECHECK_EVERY", 0.05)
    admin = await sync_to_async(AdminFactory)(email="admin@example.com")
    async with agent_serving_logs(token) as runtime:
        runtime.tails[workspace] = ["still here"]
        sockets = [await _browser(f"workspace={workspace}", who) for who in (owner, admin)]
        for socket in sockets:
            assert (await socket.connect())[0]
            assert (await socket.receive_json_from(timeout=10))["lines"] == ["still here"]
        await sync_to_async(User.objects.filter(pk=owner.pk).update)(is_active=False)
        await sync_to_async(User.objects.filter(pk=admin.pk).update)(role="user")
        suspended, demoted = [await _messages_until_close(s) for s in sockets]
        assert ([m["code"] for m in suspended[0]], suspended[1]) == (["signed_out"], 4401)
        assert ([m["code"] for m in demoted[0]], demoted[1]) == (["role_changed"], 4409)
        for follower in runtime.followers[workspace]:
            await asyncio.wait_for(follower.closed.wait(), 10)
