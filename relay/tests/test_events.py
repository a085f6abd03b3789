"""The live event stream `/ws/events/`: who may connect, the snapshot, who receives which
event (from the agent and from the portal's own changes), ordering, ping, slow sockets."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from accounts.services import member_set_active, member_set_role
from accounts.tests.factories import AdminFactory, UserFactory, UserTagFactory
from agent import protocol as p
from clusters.services import cluster_create
from clusters.tests.factories import ClusterFactory
from relay.consumers import events
from relay.tests.asgi import application
from workspaces.controlplane.memory import InMemoryControlPlane
from workspaces.events import events_send, owner_group, updated_message
from workspaces.selectors import Workspace, workspace_for
from workspaces.services import workspace_delete, workspace_set_tags, workspace_stop
from workspaces.tests.factories import WorkspaceTagAssignmentFactory

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"http://127.0.0.1"


@pytest.fixture(autouse=True)
def private_layer(settings):
    """A channel layer of this test's own (a Redis one gets a prefix nobody else uses)."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    if "redis" in layers["default"]["BACKEND"].lower():
        layers["default"]["CONFIG"]["prefix"] = f"test-events-{secrets.token_hex(4)}"
    settings.CHANNEL_LAYERS = layers


@pytest.fixture(autouse=True)
def control_plane(settings):
    InMemoryControlPlane.reset()
    settings.CONTROL_PLANE = "workspaces.controlplane.memory.InMemoryControlPlane"
    yield InMemoryControlPlane
    InMemoryControlPlane.reset()


@pytest.fixture
def cluster():
    return ClusterFactory(name="main", tunnel_channel="test-channel", last_seen_at=timezone.now())


@pytest.fixture
def alice():
    return UserFactory(email="alice@example.com")


@pytest.fixture
def bob():
    return UserFactory(email="bob@example.com")


@pytest.fixture
def admin():
    return AdminFactory(email="platform@example.com")


def _seed(cluster, owner: str, name: str = "Shop", status: str = p.RUNNING):
    metadata = {p.BLUEPRINT_TAG: "webapp", p.OWNER_TAG: owner, p.NAME_TAG: name}
    return InMemoryControlPlane.seed(cluster, metadata=metadata, status=status)


@sync_to_async
def _cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def _socket(cookie: str | None = None, origin: bytes = ORIGIN, app=application):
    headers = [(b"origin", origin)]
    if cookie:
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(app, "/ws/events/", headers=headers)


async def _open(user, app=application) -> tuple[WebsocketCommunicator, dict]:
    socket = _socket(await _cookie(user), app=app)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    snapshot = json.loads(await socket.receive_from(timeout=5))
    return socket, snapshot


async def _next(socket: WebsocketCommunicator) -> dict:
    return json.loads(await socket.receive_from(timeout=5))


async def _silent(*sockets: WebsocketCommunicator) -> None:
    for socket in sockets:
        assert await socket.receive_nothing(timeout=0.3), "an unexpected message arrived"


async def _close(*sockets: WebsocketCommunicator) -> None:
    for socket in sockets:
        with contextlib.suppress(Exception):
            await socket.disconnect()


# --- who may connect ---------------------------------------------------------------------


async def test_an_anonymous_socket_is_refused_before_accept():
    socket = _socket()
    connected, code = await socket.connect(timeout=5)
    assert not connected and code == 4401
    await socket.disconnect()


async def test_a_socket_from_another_origin_is_refused(alice):
    socket = _socket(await _cookie(alice), origin=b"https://evil.example")
    connected, _ = await socket.connect(timeout=5)
    assert not connected
    # The refusing consumer still listens on its channel (Redis, in CI): end it here,
    # not in the event loop's teardown, where a cancelled Redis receive can hang.
    await socket.disconnect()


async def test_a_suspended_member_is_refused(alice):
    cookie = await _cookie(alice)
    await sync_to_async(member_set_active)(user=alice, active=False, actor=None)
    socket = _socket(cookie)
    connected, code = await socket.connect(timeout=5)
    assert not connected and code == 4401
    await socket.disconnect()


# --- the snapshot --------------------------------------------------------------------------


async def test_the_snapshot_comes_first_with_the_members_own_workspaces(cluster, alice, bob):
    mine = await sync_to_async(_seed)(cluster, "Alice@Example.com", "Mine")
    await sync_to_async(_seed)(cluster, "bob@example.com", "Theirs")
    await sync_to_async(ClusterFactory)(name="far")
    InMemoryControlPlane.set_unreachable("far")
    socket, snapshot = await _open(alice)
    assert snapshot["type"] == "snapshot"
    assert [w["id"] for w in snapshot["workspaces"]] == [mine.id]
    assert set(snapshot["workspaces"][0]) >= {
        "id",
        "name",
        "status",
        "phase",
        "blueprint",
        "owner_email",
        "cluster",
        "created_at",
        "tags",
        "ports",
    }
    assert snapshot["workspaces"][0]["name"] == "Mine"
    assert snapshot["unreachable_clusters"] == ["far"]
    await _close(socket)


async def test_every_connection_starts_with_a_fresh_snapshot(cluster, alice):
    first, snapshot = await _open(alice)
    assert snapshot["workspaces"] == []
    await _close(first)
    created = await sync_to_async(_seed)(cluster, "alice@example.com")
    second, snapshot = await _open(alice)
    assert [w["id"] for w in snapshot["workspaces"]] == [created.id]
    await _close(second)


# --- filtering: the portal's own changes ----------------------------------------------------


async def test_a_builder_receives_only_their_own_workspaces_events(cluster, alice, bob, admin):
    theirs = await sync_to_async(_seed)(cluster, "bob@example.com")
    mine = await sync_to_async(_seed)(cluster, "alice@example.com")
    a, _ = await _open(alice)
    b, _ = await _open(bob)
    staff, _ = await _open(admin)

    workspace, found = await sync_to_async(workspace_for)(bob, theirs.id)
    await sync_to_async(workspace_stop)(actor=bob, workspace=workspace, cluster=found)
    for socket in (b, staff):
        message = await _next(socket)
        assert message["type"] == "workspace" and message["event"] == "updated"
        assert message["workspace"]["id"] == theirs.id
        assert message["workspace"]["status"] == "stopped"
    await _silent(a)

    workspace, found = await sync_to_async(workspace_for)(alice, mine.id)
    await sync_to_async(workspace_stop)(actor=admin, workspace=workspace, cluster=found)
    assert (await _next(a))["workspace"]["id"] == mine.id
    assert (await _next(staff))["workspace"]["id"] == mine.id
    await _silent(b)
    await _close(a, b, staff)


async def test_a_tag_change_is_published_to_the_owner(cluster, alice, bob):
    mine = await sync_to_async(_seed)(cluster, "alice@example.com")
    a, _ = await _open(alice)
    b, _ = await _open(bob)
    workspace, found = await sync_to_async(workspace_for)(alice, mine.id)
    await sync_to_async(workspace_set_tags)(
        actor=alice, workspace=workspace, cluster=found, tag_names=["Shop", "demo"]
    )
    message = await _next(a)
    assert message["event"] == "updated" and message["workspace"]["tags"] == ["demo", "shop"]
    await _silent(b)
    await _close(a, b)


async def test_a_deletion_is_published_and_nothing_about_it_follows(cluster, alice, admin):
    mine = await sync_to_async(_seed)(cluster, "alice@example.com")
    a, _ = await _open(alice)
    staff, _ = await _open(admin)
    workspace, found = await sync_to_async(workspace_for)(alice, mine.id)
    await sync_to_async(workspace_delete)(actor=admin, workspace=workspace, cluster=found)
    expected = {
        "type": "workspace",
        "event": "deleted",
        "workspace": {"id": mine.id, "cluster": "main", "owner_email": "alice@example.com"},
    }
    assert await _next(a) == expected
    assert await _next(staff) == expected
    await events_send([updated_message(Workspace(mine))])  # a late publication
    await _silent(a, staff)
    await _close(a, staff)


async def test_an_older_state_than_the_last_one_sent_is_dropped(cluster, alice):
    mine = await sync_to_async(_seed)(cluster, "alice@example.com")
    a, _ = await _open(alice)

    def state(status: str, updated_at: str) -> dict:
        return updated_message(Workspace(replace(mine, status=status, updated_at=updated_at)))

    await events_send([state("running", "2026-05-01T10:00:00.200+00:00")])
    assert (await _next(a))["workspace"]["status"] == "running"
    await events_send([state("deploying", "2026-05-01T10:00:00.100+00:00")])
    await _silent(a)
    await events_send([state("stopping", "2026-05-01T10:00:00.200+00:00")])  # same instant
    assert (await _next(a))["workspace"]["status"] == "stopping"
    await _close(a)


# --- from the agent -------------------------------------------------------------------------


async def test_agent_events_reach_the_owner_and_the_admins_only(alice, bob, admin):
    cluster, token = await sync_to_async(cluster_create)(name="edge", actor=None)
    tag = await sync_to_async(UserTagFactory)(user=alice, name="shop")
    await sync_to_async(WorkspaceTagAssignmentFactory)(
        cluster=cluster, environment_id="env-0123456789ab", tag=tag
    )
    a, _ = await _open(alice)
    b, _ = await _open(bob)
    staff, _ = await _open(admin)
    agent = WebsocketCommunicator(
        application, "/agent/v1/tunnel", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    assert (await agent.connect(timeout=5))[0]
    snapshot = {
        "id": "env-0123456789ab",
        "status": "deploying",
        "phase": "cloning",
        "metadata": {
            p.BLUEPRINT_TAG: "webapp",
            p.OWNER_TAG: "ALICE@example.com",
            p.NAME_TAG: "Shop",
        },
        "ports": [{"port": 3000, "name": "app", "host_port": 41000}],
        "created_at": "2026-05-01T10:00:00.000+00:00",
        "updated_at": "2026-05-01T10:00:00.100+00:00",
    }
    not_a_workspace = {"id": "env-published0001", "status": "running", "metadata": {}}
    for environment in (not_a_workspace, snapshot):
        message = p.event_message(p.EVENT_UPDATED, environment)
        await agent.send_to(text_data=p.encode_message(message))

    for socket in (a, staff):
        message = await _next(socket)
        assert message["event"] == "updated"
        workspace = message["workspace"]
        assert workspace["id"] == "env-0123456789ab" and workspace["cluster"] == "edge"
        assert workspace["status"] == "deploying" and workspace["phase"] == "cloning"
        assert workspace["tags"] == ["shop"]
        assert workspace["ports"] == [{"port": 3000, "name": "app"}]
    await _silent(b)

    gone = p.event_message(p.EVENT_DELETED, {**snapshot, "status": "deleting"})
    await agent.send_to(text_data=p.encode_message(gone))
    for socket in (a, staff):
        assert await _next(socket) == {
            "type": "workspace",
            "event": "deleted",
            "workspace": {
                "id": "env-0123456789ab",
                "cluster": "edge",
                "owner_email": "ALICE@example.com",
            },
        }
    await _silent(b, staff)
    await _close(a, b, staff, agent)


async def test_a_malformed_agent_event_is_ignored_and_the_tunnel_stays(alice):
    _, token = await sync_to_async(cluster_create)(name="edge", actor=None)
    a, _ = await _open(alice)
    agent = WebsocketCommunicator(
        application, "/agent/v1/tunnel", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    assert (await agent.connect(timeout=5))[0]
    for bad in (
        {"type": "event", "event": "environment.exploded", "environment": {"id": "env-1"}},
        {"type": "event", "event": p.EVENT_UPDATED, "environment": ["env-1"]},
        {"type": "event", "event": p.EVENT_UPDATED},
        {"type": "event", "event": ["unhashable"], "environment": {"id": "env-1"}},
        {"type": "event", "event": p.EVENT_UPDATED, "environment": {"id": 7}},
    ):
        await agent.send_to(text_data=json.dumps(bad))
    unreadable = {p.BLUEPRINT_TAG: "webapp", p.OWNER_TAG: 5}
    readable = {p.BLUEPRINT_TAG: "webapp", p.OWNER_TAG: "alice@example.com"}
    for identifier, metadata in (("env-2", unreadable), ("env-3", readable)):
        environment = {"id": identifier, "status": "running", "metadata": metadata}
        await agent.send_to(text_data=json.dumps(p.event_message(p.EVENT_UPDATED, environment)))
    assert (await _next(a))["workspace"]["id"] == "env-3"  # the tunnel's events still flow
    await agent.send_to(text_data=json.dumps({"type": "ping", "ts": 1}))
    assert json.loads(await agent.receive_from(timeout=5))["type"] == "pong"
    await _silent(a)
    await _close(a, agent)


# --- the socket itself ----------------------------------------------------------------------


async def test_ping_answers_pong_and_anything_else_is_ignored(alice):
    a, _ = await _open(alice)
    for noise in ("not json", "[1, 2]", '{"type": "subscribe", "all": true}', "x" * 5000):
        await a.send_to(text_data=noise)
    await a.send_to(bytes_data=b"\x00\x01")
    await a.send_to(text_data='{"type": "ping"}')
    assert await _next(a) == {"type": "pong"}
    await _close(a)


def _stalling(app, gate: asyncio.Event, delivered: list):
    """`app` whose sends to the browser block once `gate` is cleared (a browser that
    stopped reading); `delivered` counts the messages that got through."""

    async def stalled(scope, receive, send):
        async def slow_send(message):
            if message["type"] == "websocket.send":
                await gate.wait()
                delivered.append(message)
            await send(message)

        await app(scope, receive, slow_send)

    return stalled


async def test_a_socket_that_cannot_keep_up_is_closed_and_others_get_everything(cluster, alice):
    mine = await sync_to_async(_seed)(cluster, "alice@example.com")
    gate = asyncio.Event()
    gate.set()
    delivered: list = []
    slow, _ = await _open(alice, app=_stalling(application, gate, delivered))
    fast, _ = await _open(alice)
    gate.clear()
    count = events.SEND_QUEUE + 20
    await events_send([updated_message(Workspace(mine))] * count)

    closed = await slow.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 1013, "reason": "too_slow"}
    assert len(delivered) == 1  # the snapshot; the rest waited in a bounded queue, then went
    for _ in range(count):
        assert (await _next(fast))["workspace"]["id"] == mine.id
    await _close(slow, fast)


async def test_a_silent_browser_is_closed(alice, monkeypatch):
    monkeypatch.setattr(events, "TICK", 0.05)
    monkeypatch.setattr(events, "IDLE_TIMEOUT", 0.2)
    a, _ = await _open(alice)
    closed = await a.receive_output(timeout=5)
    assert closed["type"] == "websocket.close" and closed["code"] == 4008


async def test_a_member_suspended_while_connected_is_closed(alice, monkeypatch):
    monkeypatch.setattr(events, "TICK", 0.05)
    monkeypatch.setattr(events, "RECHECK_EVERY", 0.1)
    a, _ = await _open(alice)
    await sync_to_async(member_set_active)(user=alice, active=False, actor=None)
    closed = await a.receive_output(timeout=5)
    assert closed["type"] == "websocket.close" and closed["code"] == 4401


async def test_a_member_whose_role_changed_is_told_to_reconnect(alice, monkeypatch):
    monkeypatch.setattr(events, "TICK", 0.05)
    monkeypatch.setattr(events, "RECHECK_EVERY", 0.1)
    a, _ = await _open(alice)
    await sync_to_async(member_set_role)(user=alice, role="admin", actor=None)
    closed = await a.receive_output(timeout=5)
    assert closed["type"] == "websocket.close" and closed["code"] == 4409


async def test_a_socket_renews_its_group_membership(alice, monkeypatch):
    monkeypatch.setattr(events, "TICK", 0.05)
    monkeypatch.setattr(events, "RECHECK_EVERY", 0.1)
    layer = get_channel_layer()
    joined: list[str] = []
    group_add = layer.group_add

    async def recording(group, channel):
        joined.append(group)
        await group_add(group, channel)

    monkeypatch.setattr(layer, "group_add", recording)
    a, _ = await _open(alice)
    deadline = asyncio.get_running_loop().time() + 5
    while joined.count(owner_group("alice@example.com")) < 3:  # on connect, then renewed
        assert asyncio.get_running_loop().time() < deadline, joined
        await asyncio.sleep(0.05)
    assert set(joined) == {owner_group("alice@example.com")}
    await _close(a)
