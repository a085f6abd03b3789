"""The terminal consumer: tickets and firewall before accept, relay, flow control, audit."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.services import member_set_active
from accounts.tests.factories import AdminFactory, UserFactory
from agent import protocol as p
from agent.multiplex import Multiplexer
from agent.rpc import RpcDispatcher
from agent.shell import ShellService
from agent.tests.test_shell import FakeRuntime
from audit.models import AuditEvent
from clusters.services import cluster_create
from relay.consumers import terminal
from relay.tests.asgi import application
from security_center.models import ConnectionSession, FirewallEvent, FirewallRule
from security_center.services import connection_terminate
from workspaces.choices import TicketKind
from workspaces.models import Ticket
from workspaces.services import ticket_issue

pytestmark = pytest.mark.django_db(transaction=True)

ENV_ID = "env-0123456789ab"


@pytest.fixture
def cluster_token():
    return cluster_create(name="edge", actor=None)


@pytest.fixture
def owner():
    return UserFactory(email="owner@example.com")


def _issue(user, cluster, environment_id=ENV_ID) -> str:
    _, raw = ticket_issue(
        kind=TicketKind.SHELL, user=user, environment_id=environment_id, cluster=cluster
    )
    return raw


def _browser(query: str, ip: str = "127.0.0.1") -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, f"/ws/terminal/?{query}")
    socket.scope["client"] = (ip, 50000)
    return socket


async def _rows() -> list[ConnectionSession]:
    return await sync_to_async(list)(ConnectionSession.objects.order_by("pk"))


async def _wait_for(predicate, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


class OwnedRuntime(FakeRuntime):
    """The shell test runtime, its environment tagged as owned by the `owner` member."""

    async def get(self, env_id):
        return {**await super().get(env_id), "metadata": {p.OWNER_TAG: "owner@example.com"}}


@contextlib.asynccontextmanager
async def agent_with_shells(token: str, home):
    """A tunnel to the portal served by an in-test agent multiplexer with real PTYs."""
    tunnel = WebsocketCommunicator(
        application, "/agent/v1/tunnel", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    assert (await tunnel.connect())[0]

    async def to_portal(data: bytes) -> None:
        await tunnel.send_to(bytes_data=data)

    runtime = OwnedRuntime(home)
    shells = ShellService(runtime, check_interval=0.05)
    rpc = RpcDispatcher(runtime, agent_info=dict)
    mux = Multiplexer(to_portal, {"shell": shells.handle_stream, "rpc": rpc.handle_stream})

    async def pump() -> None:
        while True:
            message = await tunnel.output_queue.get()
            if message["type"] == "websocket.close":
                return
            if message.get("bytes") is not None:
                await mux.feed(message["bytes"])

    pumping = asyncio.create_task(pump())
    try:
        yield shells
    finally:
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)
        await shells.aclose()
        await mux.aclose()
        await tunnel.disconnect()


class Browser:
    """A terminal client: collects output and JSON messages; acks only when told to."""

    def __init__(self, socket: WebsocketCommunicator) -> None:
        self.socket = socket
        self.output = bytearray()
        self.messages: list[dict] = []
        self.closed: dict | None = None

    async def pull(self, timeout: float = 5.0) -> None:
        message = await self.socket.receive_output(timeout)
        if message["type"] == "websocket.close":
            self.closed = message
        elif message.get("bytes") is not None:
            self.output += message["bytes"]
        else:
            self.messages.append(json.loads(message["text"]))

    async def message(self, kind: str, timeout: float = 5.0) -> dict:
        async def find():
            while True:
                for item in self.messages:
                    if item["type"] == kind:
                        self.messages.remove(item)
                        return item
                await self.pull(timeout)

        return await asyncio.wait_for(find(), timeout)

    async def until(self, needle: bytes, timeout: float = 5.0) -> None:
        async def find():
            while needle not in self.output:
                await self.pull(timeout)

        await asyncio.wait_for(find(), timeout)
        await self.ack()

    async def ack(self) -> None:
        if self.output:
            await self.socket.send_to(text_data=json.dumps({"type": "ack", "bytes": 1 << 30}))

    async def closed_with(self, timeout: float = 5.0) -> dict:
        async def find():
            while self.closed is None:
                await self.pull(timeout)
            return self.closed

        return await asyncio.wait_for(find(), timeout)


# --- refused before accept -------------------------------------------------------------


async def test_missing_unknown_used_and_expired_tickets_are_refused_before_accept(
    cluster_token, owner
):
    cluster, _ = cluster_token
    for query in ["", "ticket=", "ticket=not-a-ticket"]:
        connected, code = await _browser(query).connect()
        assert (connected, code) == (False, terminal.CLOSE_TICKET_INVALID)

    raw = await sync_to_async(_issue)(owner, cluster)
    first = _browser(f"ticket={raw}")
    assert (await first.connect())[0]
    await first.disconnect()
    assert await _browser(f"ticket={raw}").connect() == (False, terminal.CLOSE_TICKET_INVALID)

    expired = await sync_to_async(_issue)(owner, cluster)
    await sync_to_async(Ticket.objects.update)(expires_at="2000-01-01T00:00:00Z")
    assert await _browser(f"ticket={expired}").connect() == (False, terminal.CLOSE_TICKET_INVALID)
    assert len(await _rows()) == 1  # only the accepted socket has a session row


async def test_a_ticket_for_another_workspace_is_refused_and_stays_unused(cluster_token, owner):
    cluster, _ = cluster_token
    raw = await sync_to_async(_issue)(owner, cluster)
    refused = _browser(f"ticket={raw}&workspace=env-ffffffffffff")
    assert await refused.connect() == (False, terminal.CLOSE_TICKET_INVALID)
    assert await sync_to_async(Ticket.objects.filter(used_at__isnull=True).count)() == 1
    assert await _rows() == []


async def test_the_session_row_belongs_to_the_tickets_user(cluster_token, owner):
    cluster, _ = cluster_token
    other = await sync_to_async(UserFactory)(email="other@example.com")
    raw = await sync_to_async(_issue)(owner, cluster)
    socket = _browser(f"ticket={raw}&workspace={ENV_ID}")
    assert (await socket.connect())[0]
    await socket.disconnect()
    [row] = await _rows()
    assert row.email == "owner@example.com" and row.user_id == owner.pk != other.pk


async def test_exactly_one_of_50_concurrent_connections_with_one_ticket_is_accepted(
    cluster_token, owner
):
    cluster, _ = cluster_token
    raw = await sync_to_async(_issue)(owner, cluster)
    sockets = [_browser(f"ticket={raw}") for _ in range(50)]
    results = await asyncio.gather(*(s.connect(timeout=20) for s in sockets))
    accepted = [s for s, (ok, _) in zip(sockets, results, strict=True) if ok]
    assert len(accepted) == 1
    assert sorted(code for ok, code in results if not ok) == [terminal.CLOSE_TICKET_INVALID] * 49
    for socket in accepted:
        await socket.disconnect()


async def test_firewall_deny_refuses_before_accept_and_records_an_event(cluster_token, owner):
    cluster, _ = cluster_token
    await sync_to_async(FirewallRule.objects.create)(action="deny", cidr="127.0.0.0/8", priority=1)
    raw = await sync_to_async(_issue)(owner, cluster)
    socket = _browser(f"ticket={raw}", ip="127.0.0.9")
    assert await socket.connect() == (False, terminal.CLOSE_FIREWALL)
    [event] = await sync_to_async(list)(FirewallEvent.objects.all())
    assert event.ip == "127.0.0.9" and event.kind == "shell"
    assert event.user_email == "owner@example.com" and event.environment_id == ENV_ID
    assert await _rows() == []


# --- accepted ---------------------------------------------------------------------------


async def test_agent_offline_is_reported_and_audited(cluster_token, owner):
    cluster, _ = cluster_token
    browser = Browser(_browser(f"ticket={await sync_to_async(_issue)(owner, cluster)}"))
    assert (await browser.socket.connect())[0]
    error = await browser.message("error")
    assert error["code"] == "agent_unavailable"
    assert (await browser.closed_with())["code"] == terminal.CLOSE_AGENT_UNAVAILABLE
    [row] = await _wait_for(lambda: _closed_rows())
    assert row.close_reason == "agent_unavailable"


async def _closed_rows():
    rows = await _rows()
    return rows if rows and all(r.ended_at for r in rows) else None


async def test_type_resize_and_close_through_a_real_shell(cluster_token, owner, tmp_path):
    cluster, token = cluster_token
    home = tmp_path / "home"
    home.mkdir()
    async with agent_with_shells(token, home) as shells:
        raw = await sync_to_async(_issue)(owner, cluster)
        browser = Browser(_browser(f"ticket={raw}&cols=90&rows=20"))
        assert (await browser.socket.connect())[0]
        hello = await browser.message("session")
        assert hello["session"] in shells.sessions and hello["resumed"] is False
        await browser.socket.send_to(bytes_data=b"echo hello-$((40+2)); stty size\n")
        await browser.until(b"hello-42")
        await browser.until(b"20 90")
        await browser.socket.send_to(
            text_data=json.dumps({"type": "resize", "cols": 120, "rows": 40})
        )
        await browser.socket.send_to(bytes_data=b"stty size\n")
        await browser.until(b"40 120")
        await browser.socket.send_to(text_data=json.dumps({"type": "ping"}))
        assert await browser.message("pong") == {"type": "pong"}
        # The prompt after `stty size` may still be on its way: take everything sent
        # before leaving, so the byte count compares like with like.
        while not await browser.socket.receive_nothing(timeout=0.3):
            await browser.pull()
        await browser.socket.disconnect()
        [row] = await _wait_for(_closed_rows)
        assert row.close_reason == "client_closed" and row.kind == "shell"
        assert row.bytes_in == len(b"echo hello-$((40+2)); stty size\n") + len(b"stty size\n")
        assert row.bytes_out == len(browser.output)
        # The shell survives the dropped browser (grace period), detached.
        session = shells.sessions[hello["session"]]
        await _wait_for(lambda: session.stream is None)
        assert not session.ended.is_set()


async def test_a_browser_that_stops_acking_stops_the_shell(cluster_token, owner, tmp_path):
    cluster, token = cluster_token
    home = tmp_path / "home"
    home.mkdir()
    async with agent_with_shells(token, home) as shells:
        browser = Browser(_browser(f"ticket={await sync_to_async(_issue)(owner, cluster)}"))
        assert (await browser.socket.connect())[0]
        hello = await browser.message("session")
        session = shells.sessions[hello["session"]]
        await browser.socket.send_to(bytes_data=b"yes 0123456789abcdefghij\n")
        # (receive_nothing, not a timed-out receive: that would cancel the consumer)
        while not await browser.socket.receive_nothing(timeout=0.5):
            await browser.pull()
        received = len(browser.output)
        assert terminal.OUTPUT_WINDOW <= received <= terminal.OUTPUT_WINDOW + p.MAX_PAYLOAD
        produced = session.produced
        await asyncio.sleep(0.5)
        # At most the stream's window (plus one chunk in hand) more was read from the PTY.
        assert session.produced <= received + 2 * p.INITIAL_WINDOW
        assert session.produced - produced < p.MAX_PAYLOAD
        await browser.ack()
        await _wait_for(lambda: session.produced > produced + p.INITIAL_WINDOW)
        await browser.socket.send_to(bytes_data=b"\x03")
        await browser.socket.disconnect()


async def test_admin_terminate_tells_the_browser_and_ends_the_shell(cluster_token, owner, tmp_path):
    cluster, token = cluster_token
    home = tmp_path / "home"
    home.mkdir()
    admin = await sync_to_async(AdminFactory)(email="admin@example.com")
    async with agent_with_shells(token, home) as shells:
        browser = Browser(_browser(f"ticket={await sync_to_async(_issue)(owner, cluster)}"))
        assert (await browser.socket.connect())[0]
        hello = await browser.message("session")
        session = shells.sessions[hello["session"]]
        [row] = await _rows()
        assert await sync_to_async(connection_terminate)(session=row, actor=admin) is True
        terminated = await browser.message("terminated")
        assert terminated["detail"] == "An administrator ended this session."
        assert (await browser.closed_with())["code"] == terminal.CLOSE_TERMINATED
        await _wait_for(lambda: session.ended.is_set())
        assert session.end_reason == "terminated"
        row = await sync_to_async(ConnectionSession.objects.get)(pk=row.pk)
        assert row.close_reason == "terminated_by_admin" and row.ended_at is not None
        assert await sync_to_async(connection_terminate)(session=row, actor=admin) is False


async def test_suspending_the_member_closes_the_terminal_and_refuses_their_tickets(
    cluster_token, owner, tmp_path
):
    cluster, token = cluster_token
    home = tmp_path / "home"
    home.mkdir()
    admin = await sync_to_async(AdminFactory)(email="admin@example.com")
    async with agent_with_shells(token, home) as shells:
        browser = Browser(_browser(f"ticket={await sync_to_async(_issue)(owner, cluster)}"))
        assert (await browser.socket.connect())[0]
        hello = await browser.message("session")
        session = shells.sessions[hello["session"]]
        unused = await sync_to_async(_issue)(owner, cluster)
        await sync_to_async(member_set_active)(user=owner, active=False, actor=admin)
        terminated = await browser.message("terminated", timeout=1.0)
        assert terminated["reason"] == "member_suspended"
        closed = await browser.closed_with(timeout=1.0)
        assert (closed["code"], closed.get("reason")) == (
            terminal.CLOSE_TERMINATED,
            "member_suspended",
        )
        await _wait_for(lambda: session.ended.is_set())
        [row] = await _rows()
        assert row.close_reason == "member_suspended" and row.ended_at is not None
        entry = await sync_to_async(AuditEvent.objects.get)(action="connection.terminate")
        assert entry.target_id == str(row.pk) and entry.details["reason"] == "member_suspended"
        fresh = await sync_to_async(_issue)(owner, cluster)
        for raw in (unused, fresh):
            refused = _browser(f"ticket={raw}")
            connected, code = await refused.connect()
            assert not connected and code == terminal.CLOSE_TICKET_INVALID
        assert len(await _rows()) == 1


async def test_a_new_deny_rule_closes_a_live_terminal_from_that_address(
    cluster_token, owner, tmp_path
):
    from security_center.services import firewall_rule_save

    cluster, token = cluster_token
    home = tmp_path / "home"
    home.mkdir()
    admin = await sync_to_async(AdminFactory)(email="admin@example.com")
    async with agent_with_shells(token, home) as shells:
        ticket = await sync_to_async(_issue)(owner, cluster)
        browser = Browser(_browser(f"ticket={ticket}", ip="203.0.113.77"))
        assert (await browser.socket.connect())[0]
        hello = await browser.message("session")
        session = shells.sessions[hello["session"]]
        rule = FirewallRule(cidr="203.0.113.0/24", action="deny", priority=3)
        await sync_to_async(firewall_rule_save)(rule=rule, actor=admin)
        terminated = await browser.message("terminated", timeout=1.0)
        assert terminated["reason"] == "firewall_denied"
        assert "firewall" in terminated["detail"]
        closed = await browser.closed_with(timeout=1.0)
        assert closed["code"] == terminal.CLOSE_TERMINATED
        await _wait_for(lambda: session.ended.is_set())
        [row] = await _rows()
        assert row.close_reason == "firewall_denied"
        event = await sync_to_async(FirewallEvent.objects.get)()
        assert (event.ip, event.rule_id, event.kind) == ("203.0.113.77", rule.pk, row.kind)


async def test_shell_exit_and_stopped_workspace_end_the_socket(cluster_token, owner, tmp_path):
    cluster, token = cluster_token
    home = tmp_path / "home"
    home.mkdir()
    async with agent_with_shells(token, home) as shells:
        browser = Browser(_browser(f"ticket={await sync_to_async(_issue)(owner, cluster)}"))
        assert (await browser.socket.connect())[0]
        await browser.message("session")
        await browser.socket.send_to(bytes_data=b"exit 7\n")
        assert await browser.message("exit") == {"type": "exit", "reason": "exited", "code": 7}
        assert (await browser.closed_with())["code"] == 1000

        second = Browser(_browser(f"ticket={await sync_to_async(_issue)(owner, cluster)}"))
        assert (await second.socket.connect())[0]
        await second.message("session")
        shells.runtime.status[ENV_ID] = "stopped"
        assert (await second.message("exit", timeout=10))["reason"] == "workspace_stopped"
        assert (await second.closed_with())["code"] == terminal.CLOSE_NOT_RUNNING
        rows = await _wait_for(_closed_rows)
        assert [r.close_reason for r in rows] == ["shell_exited", "workspace_stopped"]
