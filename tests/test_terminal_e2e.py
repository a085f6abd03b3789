"""End to end: a browser-like client → portal (uvicorn) → tunnel → real agent → PTY.

One portal, one agent and one running demo workspace are shared by the module (tests
that kill the agent or stop the portal run last and bring them back).
"""

from __future__ import annotations

import hashlib
import re
import signal
import time

import pytest
import websockets

from tests.harness import (
    Agent,
    Api,
    Portal,
    UvicornPortal,
    create_member,
    portal_db_rows,
    wait_until,
)
from tests.terminal_client import TerminalClient, shell_ticket

pytestmark = pytest.mark.integration

ADMIN = "admin@portal.localhost"


class Stack:
    """A portal, its agent and one running workspace owned by the admin."""

    def __init__(self, portal: Portal, base) -> None:
        self.portal = portal
        self.base = base
        portal.prepare()
        portal.start()
        self.agent = Agent(portal.url, portal.agent_token, base / "agent").start()
        self.api = Api(portal.url, portal.token_for(ADMIN))
        self.wait_connected()
        created = self.api("POST", "/workspaces", json={"blueprint": "demo", "name": "Term"})
        assert created.status_code == 201, created.text
        self.workspace = created.json()["id"]
        self.api.wait_status(self.workspace, "running", timeout=60)

    def wait_connected(self) -> None:
        wait_until(
            lambda: self.api("GET", "/workspaces").json()["unreachable_clusters"] == [],
            what="agent connected",
        )

    async def terminal(self, **kwargs) -> TerminalClient:
        ticket = shell_ticket(self.api, self.workspace)
        return await TerminalClient.open(
            self.portal.url, ticket, workspace=self.workspace, **kwargs
        )

    def connection_rows(self) -> list[tuple]:
        return portal_db_rows(
            self.portal,
            "SELECT id, ended_at, bytes_in, bytes_out, close_reason FROM "
            "security_center_connectionsession ORDER BY id",
        )

    def stop(self) -> None:
        self.agent.stop()
        self.agent.kill_workspaces()
        self.portal.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("terminal")
    running = Stack(Portal(var_dir=base / "portal"), base)
    yield running
    running.stop()


def _ended(stack: Stack, row_id: int) -> tuple:
    return wait_until(
        lambda: (row := next(r for r in stack.connection_rows() if r[0] == row_id))[1] and row,
        what=f"connection row {row_id} ended",
    )


def _latest_row_id(stack: Stack) -> int:
    return stack.connection_rows()[-1][0]


async def test_echo_resize_and_50_mb_intact(stack):
    term = await stack.terminal(cols=100, rows=30)
    await term.type("echo hello-$((6*7))\n")
    await term.until(rb"hello-42\r\n")
    await term.type("stty size\n")
    await term.until(rb"30 100\r\n")
    await term.resize(132, 41)
    await term.type("stty size\n")
    await term.until(rb"41 132\r\n")

    # 50 MB of output: base64 of random bytes, checksummed on the workspace's side.
    await term.type(
        "head -c 37500000 /dev/urandom | base64 > blob; "
        "echo SUM=$(sha256sum < blob | cut -c1-64)-$((1+1))\n"
    )
    expected = (await term.until(rb"SUM=([0-9a-f]{64})-2", timeout=60)).group(1).decode()
    start = len(term.output)
    began = time.monotonic()
    await term.type("stty -onlcr; echo BEGIN-$((2+2)); cat blob; echo END-$((3+3)); stty onlcr\n")
    await term.until(rb"END-6", timeout=120, start=start)
    elapsed = time.monotonic() - began
    body = bytes(term.output[start:])
    payload = re.search(rb"BEGIN-4\n(.*)END-6", body, re.DOTALL).group(1)
    assert len(payload) >= 50_000_000
    assert hashlib.sha256(payload).hexdigest() == expected
    print(
        f"50 MB through the terminal in {elapsed:.2f} s ({len(payload) / elapsed / 1e6:.0f} MB/s)"
    )

    row_id = _latest_row_id(stack)
    await term.close()
    row = _ended(stack, row_id)
    assert row[4] == "client_closed"
    assert row[2] > 200 and row[3] >= 50_000_000


async def test_reconnect_within_grace_resumes_the_same_shell(stack):
    first = await stack.terminal()
    await first.type("echo pid=$$; echo earlier-$((5*5))\n")
    pid = (await first.until(rb"pid=(\d+)\r\n")).group(1)
    await first.until(rb"earlier-25\r\n")
    session = first.hello["session"]
    await first.close()

    second = await stack.terminal(session=session)
    assert second.hello == {"type": "session", "session": session, "resumed": True}
    await second.until(rb"earlier-25")  # replayed before anything new
    start = len(second.output)
    await second.type("echo pid=$$\n")
    assert (await second.until(rb"pid=(\d+)\r\n", start=start)).group(1) == pid
    await second.close()


async def test_firewall_deny_refuses_the_handshake_and_records_an_event(stack):
    deny_loopback = {"action": "deny", "cidr": "127.0.0.0/8", "priority": 7}
    rule = stack.api("POST", "/admin/firewall-rules", json=deny_loopback)
    assert rule.status_code == 201, rule.text
    rows_before = len(stack.connection_rows())
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await stack.terminal()
        assert refused.value.response.status_code == 403
    finally:
        assert stack.api("DELETE", f"/admin/firewall-rules/{rule.json()['id']}").status_code == 204
    events = stack.api("GET", "/admin/firewall-events").json()["results"]
    assert events[0]["kind"] == "shell" and events[0]["ip"] == "127.0.0.1"
    assert events[0]["environment_id"] == stack.workspace
    assert len(stack.connection_rows()) == rows_before  # refused before any session row


async def test_a_used_ticket_is_refused(stack):
    ticket = shell_ticket(stack.api, stack.workspace)
    term = await TerminalClient.open(stack.portal.url, ticket)
    with pytest.raises(websockets.InvalidStatus):
        await TerminalClient.open(stack.portal.url, ticket)
    await term.close()
    assert ticket not in stack.portal.log()  # the server logs paths without query strings


async def test_admin_terminate_shows_the_message_and_closes(stack):
    term = await stack.terminal()
    active = stack.api("GET", "/admin/connections", params={"active": "true"}).json()["results"]
    row_id = active[0]["id"]
    response = stack.api("POST", f"/admin/connections/{row_id}/terminate")
    assert response.status_code == 200, response.text
    terminated = await term.message("terminated")
    assert terminated["detail"] == "An administrator ended this session."
    assert (await term.closed())[0] == 4000
    row = _ended(stack, row_id)
    assert row[4] == "terminated_by_admin"


async def test_suspending_a_member_closes_their_terminal_and_refuses_their_tickets(stack):
    email = "builder@portal.localhost"
    create_member(stack.portal, email, "a-long-enough-password")
    theirs = Api(stack.portal.url, stack.portal.token_for(email))
    created = theirs("POST", "/workspaces", json={"blueprint": "demo", "name": "Theirs"})
    assert created.status_code == 201, created.text
    workspace = created.json()["id"]
    theirs.wait_status(workspace, "running", timeout=60)
    term = await TerminalClient.open(
        stack.portal.url, shell_ticket(theirs, workspace), workspace=workspace
    )
    unused = shell_ticket(theirs, workspace)
    [member] = stack.api("GET", "/admin/members", params={"q": email}).json()
    suspended = stack.api("PATCH", f"/admin/members/{member['id']}", json={"is_active": False})
    assert suspended.status_code == 200, suspended.text
    terminated = await term.message("terminated", timeout=1.0)
    assert terminated["reason"] == "member_suspended"
    assert await term.closed(timeout=1.0) == (4000, "member_suspended")
    [row] = [r for r in stack.connection_rows() if r[4] == "member_suspended"]
    audited = portal_db_rows(
        stack.portal,
        "SELECT target_id FROM audit_auditevent WHERE action = 'connection.terminate'",
    )
    assert (str(row[0]),) in audited
    with pytest.raises(websockets.InvalidStatus):
        await TerminalClient.open(stack.portal.url, unused)
    assert theirs("POST", f"/workspaces/{workspace}/shell-ticket").status_code == 401


async def test_agent_killed_closes_the_terminal_and_the_row(stack):
    term = await stack.terminal()
    await term.type("echo alive-$((1+2))\n")
    await term.until(rb"alive-3\r\n")
    row_id = _latest_row_id(stack)
    stack.agent.stop(signal.SIGKILL)
    assert (await term.closed())[0] == 4503  # the reason travels in the message
    assert (await term.message("error"))["code"] == "agent_disconnected"
    assert _ended(stack, row_id)[4] == "agent_disconnected"
    stack.agent = Agent(stack.portal.url, stack.portal.agent_token, stack.base / "agent").start()
    stack.wait_connected()
    stack.api.wait_status(stack.workspace, "running", timeout=30)


async def test_portal_sigterm_under_uvicorn_closes_the_row(tmp_path):
    stack = Stack(UvicornPortal(var_dir=tmp_path / "portal"), tmp_path)
    try:
        term = await stack.terminal()
        await term.type("echo up-$((4+4))\n")
        await term.until(rb"up-8\r\n")
        row_id = _latest_row_id(stack)
        stack.portal.stop(signal.SIGTERM)
        await term.closed()
        row = next(r for r in stack.connection_rows() if r[0] == row_id)
        assert row[1] is not None and row[4] == "server_shutdown", row
    finally:
        stack.stop()
