"""Browser terminals: `/ws/terminal/?ticket=…` relayed to a PTY on the workspace's agent.

Query parameters: `ticket` (required, from `POST /api/v1/workspaces/{id}/shell-ticket`),
`workspace` (when given, the ticket must be for it), `session` (resume that shell),
`tab` (index into the blueprint's layout tabs, or -1 for an extra plain shell that a
locked layout refuses; the portal, never the browser, turns a custom-command or AI tab
into the command to run), `cols` and `rows`.

Promises:

* Before the handshake is accepted, the ticket is redeemed atomically (missing, used,
  expired or for another workspace → close 4401 `ticket_invalid`) and the client IP
  (DESIGN §7, `TRUSTED_PROXIES`) passes the firewall (else 4403 `firewall_blocked` and a
  `FirewallEvent`). A refused handshake never reaches the agent.
* Every accepted socket has exactly one `ConnectionSession` row; whatever ends it —
  browser, shell exit, workspace stop, agent loss, admin, the member's suspension, idle
  timeout, server shutdown (disconnect or cancellation) — closes the row once with the
  reason and the byte counts.
  Counters are also flushed every `TRAFFIC_EVERY` seconds while it lives.
* Browser → workspace: binary frames are keyboard input; text frames are JSON control
  (`resize`, `ping` → `pong`, `ack`). Workspace → browser: binary frames are terminal
  output; text frames are JSON (`session`, `exit`, `error`, `terminated`, `pong`).
* Memory is bounded end to end. Output: the agent's stream has a credit window, and this
  consumer reads it only while fewer than `OUTPUT_WINDOW` bytes sent to the browser are
  unacknowledged (the browser acks what xterm.js has rendered), so a stalled browser
  stops the PTY under any ASGI server. Input: at most `INPUT_BACKLOG` bytes wait for the
  agent's credit; a client that floods more is closed (1009 `input_overflow`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Final
from urllib.parse import parse_qs

from agent import protocol as p
from core.client_ip import scope_client_ip
from core.errors import ApplicationError
from relay.consumers.base import LeanWebsocketConsumer, db_async
from relay.streams import StreamLike, TunnelUnavailable, open_stream
from security_center.choices import ConnectionKind
from security_center.services import (
    FIREWALL_DENIED,
    MEMBER_SUSPENDED,
    TERMINATED_BY_ADMIN,
    connection_add_traffic,
    connection_close,
    connection_open,
    firewall_check,
)
from workspaces.choices import TicketKind
from workspaces.services import EXTRA_SHELL, ticket_redeem, workspace_tab_command

logger = logging.getLogger(__name__)

OUTPUT_WINDOW: Final = 1024 * 1024
"""Output bytes the browser may have unacknowledged before the portal stops reading."""
INPUT_BACKLOG: Final = 1024 * 1024
TRAFFIC_EVERY: Final = 10.0
IDLE_TIMEOUT: Final = 120.0
"""The browser pings every 25 s; a socket silent this long is dead."""
HELLO_TIMEOUT: Final = 15.0

CLOSE_TERMINATED: Final = 4000
CLOSE_IDLE: Final = 4008
CLOSE_TICKET_INVALID: Final = 4401
CLOSE_FIREWALL: Final = 4403
CLOSE_TAB_INVALID: Final = 4404
CLOSE_NOT_RUNNING: Final = 4409
CLOSE_TAKEN_OVER: Final = 4410
CLOSE_AGENT_UNAVAILABLE: Final = 4503
CLOSE_SHUTDOWN: Final = 1012
CLOSE_TOO_BIG: Final = 1009

# What an `exit` / `error` record from the agent means for the browser and the audit row.
_AGENT_ENDS: Final = {
    "exited": (1000, "shell_exited"),
    "workspace_stopped": (CLOSE_NOT_RUNNING, "workspace_stopped"),
    "workspace_not_running": (CLOSE_NOT_RUNNING, "workspace_not_running"),
    "not_found": (CLOSE_NOT_RUNNING, "workspace_not_found"),
    "expired": (1000, "shell_expired"),
    "terminated": (1000, "shell_terminated"),
    "agent_shutdown": (CLOSE_AGENT_UNAVAILABLE, "agent_disconnected"),
    "too_many_sessions": (4429, "too_many_sessions"),
}

# Why the portal ended a session, as the browser is told it.
_TERMINATE_DETAILS: Final = {
    TERMINATED_BY_ADMIN: "An administrator ended this session.",
    MEMBER_SUSPENDED: "Your account was suspended.",
    FIREWALL_DENIED: "The firewall now blocks your network address.",
}


class _Refused(Exception):
    def __init__(self, close_code: int, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.close_code, self.reason, self.detail = close_code, reason, detail


@db_async
def _redeem(raw: str, workspace: str | None):
    return ticket_redeem(raw=raw, kind=TicketKind.SHELL, environment_id=workspace)


@db_async
def _firewall(ip: str, email: str, environment_id: str):
    return firewall_check(
        ip=ip, kind=ConnectionKind.SHELL, user_email=email, environment_id=environment_id
    )


@db_async
def _open_row(ticket, ip: str, channel_name: str) -> int:
    row = connection_open(
        user=ticket.user,
        ip=ip,
        kind=ConnectionKind.SHELL,
        environment_id=ticket.environment_id,
        cluster=ticket.cluster,
        channel_name=channel_name,
    )
    return row.pk


@db_async
def _close_row(row_id: int, reason: str, bytes_in: int, bytes_out: int) -> None:
    if not connection_close(
        session_id=row_id, reason=reason, bytes_in=bytes_in, bytes_out=bytes_out
    ):  # already closed (an admin ended it): still account for the last bytes
        connection_add_traffic(session_id=row_id, bytes_in=bytes_in, bytes_out=bytes_out)


@db_async
def _add_traffic(row_id: int, bytes_in: int, bytes_out: int) -> None:
    connection_add_traffic(session_id=row_id, bytes_in=bytes_in, bytes_out=bytes_out)


@db_async
def _tab_command(ticket, tab: int) -> str | None:
    try:
        return workspace_tab_command(
            user=ticket.user, cluster=ticket.cluster, workspace_id=ticket.environment_id, tab=tab
        )
    except ApplicationError as exc:
        if exc.code == "tab_invalid":
            raise _Refused(CLOSE_TAB_INVALID, "tab_invalid", exc.detail) from exc
        raise


def _int_param(
    params: dict[str, list[str]], name: str, default: int, high: int, low: int = 0
) -> int:
    try:
        value = int(params.get(name, [""])[0])
    except ValueError:
        return default
    return value if low <= value <= high else default


class TerminalConsumer(LeanWebsocketConsumer):
    """One browser terminal: ticket, firewall, audit row, then a shell stream to the agent."""

    async def connect(self) -> None:
        self._done = False
        self._finishing: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stream: StreamLike | None = None
        self._row: int | None = None
        self._bytes_in = self._bytes_out = 0
        self._flushed_in = self._flushed_out = 0
        self._unacked = 0
        self._room = asyncio.Event()
        self._room.set()
        self._input: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._backlog = 0
        self._input_stream: StreamLike | None = None
        self._writing = False
        self._last_seen = time.monotonic()
        params = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        raw = params.get("ticket", [""])[0]
        workspace = params.get("workspace", [None])[0]
        ip = scope_client_ip(self.scope)
        ticket = await _redeem(raw, workspace)
        if ticket is None:
            logger.info("terminal refused from %s: ticket invalid", ip)
            await self.close(code=CLOSE_TICKET_INVALID, reason="ticket_invalid")
            return
        decision = await _firewall(ip, ticket.user.email, ticket.environment_id)
        if not decision.allowed:
            logger.info("terminal refused from %s: firewall (%s)", ip, decision.rule)
            await self.close(code=CLOSE_FIREWALL, reason="firewall_blocked")
            return
        self._row = await _open_row(ticket, ip, self.channel_name)
        await self.accept()
        self._spawn(self._relay(ticket, params))
        self._spawn(self._housekeeping())

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A server that cancels its applications on shutdown (daphne) never calls
            # disconnect(): end the session here, and let the row be written before the
            # task — which the server waits for — completes.
            if getattr(self, "_row", None) is not None:
                await self._finish(CLOSE_SHUTDOWN, "server_shutdown")

    async def disconnect(self, code: int) -> None:
        reason = "server_shutdown" if code == CLOSE_SHUTDOWN else "client_closed"
        await self._finish(None, reason)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self._done:
            return
        self._last_seen = time.monotonic()
        if bytes_data is not None:
            self._bytes_in += len(bytes_data)
            if self._direct_input(len(bytes_data)):
                # Nothing queued and credit enough: write now, skipping a task switch
                # (the usual case — one keystroke).
                await self._write_input(self._input_stream, p.SHELL_DATA, bytes_data)
                return
            await self._enqueue(p.SHELL_DATA, bytes_data)
            return
        try:
            message = json.loads(text_data or "")
            kind = message["type"]
        except (ValueError, TypeError, KeyError):
            return
        if kind == "ack":
            acked = message.get("bytes")
            if isinstance(acked, int) and acked > 0:
                self._unacked = max(0, self._unacked - acked)
                if self._unacked < OUTPUT_WINDOW:
                    self._room.set()
        elif kind == "resize":
            try:
                cols = p.terminal_dimension(message.get("cols"), "cols")
                rows = p.terminal_dimension(message.get("rows"), "rows")
            except p.ProtocolError:
                return
            resize = {"type": "resize", "cols": cols, "rows": rows}
            await self._enqueue(p.SHELL_CONTROL, p.shell_control_record(resize))
        elif kind == "ping":
            await self.send(text_data='{"type":"pong"}')

    async def connection_terminate(self, event: dict[str, Any]) -> None:
        """This session was ended for it (`security_center.services`): by an admin, or
        because its member was suspended (`reason` `member_suspended`)."""
        if self._done:
            return
        reason = event.get("reason")
        if reason not in _TERMINATE_DETAILS:
            reason = TERMINATED_BY_ADMIN
        text = {"type": "terminated", "reason": reason, "detail": _TERMINATE_DETAILS[reason]}
        with contextlib.suppress(Exception):
            await self.send(text_data=json.dumps(text))
        await self._finish(CLOSE_TERMINATED, reason, kill_shell=True)

    # --- the relay ---------------------------------------------------------------------

    async def _relay(self, ticket, params: dict[str, list[str]]) -> None:
        try:
            stream, hello = await self._open_shell(ticket, params)
        except _Refused as refusal:
            await self._tell({"type": "error", "code": refusal.reason, "detail": refusal.detail})
            await self._finish(refusal.close_code, refusal.reason)
            return
        await self._tell(
            {"type": "session", "session": hello["session"], "resumed": bool(hello.get("resumed"))}
        )
        self._spawn(self._pump_input(stream))
        await self._pump_output(stream, hello["parser"])

    async def _open_shell(self, ticket, params) -> tuple[StreamLike, dict[str, Any]]:
        cluster = ticket.cluster
        session = params.get("session", [None])[0] or None
        tab = _int_param(params, "tab", 0, 100, low=EXTRA_SHELL)
        command = None
        try:
            if not session:
                command = await _tab_command(ticket, tab)
            request = p.shell_open_request(
                ticket.environment_id,
                session=session[:100] if session else None,
                command=command,
                cols=_int_param(params, "cols", 80, p.MAX_TERMINAL_SIZE) or 80,
                rows=_int_param(params, "rows", 24, p.MAX_TERMINAL_SIZE) or 24,
            )
            stream = await open_stream(
                cluster_id=cluster.pk,
                tunnel_channel=cluster.tunnel_channel if cluster.is_connected else "",
                request=request,
            )
        except ApplicationError as exc:
            if exc.status == 404:
                raise _Refused(
                    CLOSE_NOT_RUNNING, "workspace_not_found", "The workspace no longer exists."
                ) from exc
            logger.warning("terminal for %s: agent unavailable: %s", ticket.environment_id, exc)
            raise _Refused(
                CLOSE_AGENT_UNAVAILABLE, "agent_unavailable", "The workspace's agent is offline."
            ) from exc
        except (TunnelUnavailable, p.ProtocolError) as exc:
            logger.warning("terminal for %s: agent unavailable: %s", ticket.environment_id, exc)
            raise _Refused(
                CLOSE_AGENT_UNAVAILABLE, "agent_unavailable", "The workspace's agent is offline."
            ) from exc
        self._stream = stream
        parser = p.ShellRecordParser()
        try:
            first = await asyncio.wait_for(self._first_control(stream, parser), HELLO_TIMEOUT)
        except (TimeoutError, p.ProtocolError) as exc:
            raise _Refused(
                CLOSE_AGENT_UNAVAILABLE,
                "agent_unavailable",
                "The workspace's agent did not answer.",
            ) from exc
        if first.get("type") != "session" or not isinstance(first.get("session"), str):
            code, reason = _AGENT_ENDS.get(str(first.get("code")), (4500, "shell_refused"))
            raise _Refused(code, reason, str(first.get("detail", "The shell was refused.")))
        first["parser"] = parser
        return stream, first

    @staticmethod
    async def _first_control(stream: StreamLike, parser: p.ShellRecordParser) -> dict[str, Any]:
        while chunk := await stream.read():
            for record_type, payload in parser.feed(chunk):
                if record_type == p.SHELL_CONTROL:
                    return p.decode_shell_control(payload)
                raise p.ProtocolError(p.CLOSE_PROTOCOL_ERROR, "output before the session record")
        raise p.ProtocolError(p.CLOSE_PROTOCOL_ERROR, "stream ended before the session record")

    async def _pump_output(self, stream: StreamLike, parser: p.ShellRecordParser) -> None:
        """Agent → browser, never more than OUTPUT_WINDOW unacknowledged bytes ahead."""
        end: dict[str, Any] | None = None
        try:
            while True:
                if self._unacked >= OUTPUT_WINDOW:
                    self._room.clear()
                    await self._room.wait()
                chunk = await stream.read()
                if not chunk:
                    break
                for record_type, payload in parser.feed(chunk):
                    if record_type == p.SHELL_DATA:
                        self._unacked += len(payload)
                        self._bytes_out += len(payload)
                        await self.send(bytes_data=payload)
                    else:
                        end = p.decode_shell_control(payload)
        except p.ProtocolError as exc:
            logger.warning("terminal: malformed shell stream: %s", exc)
            await self._finish(CLOSE_AGENT_UNAVAILABLE, "protocol_error")
            return
        if stream.close_code == p.CLOSE_SHELL_TAKEN_OVER:
            await self._tell(
                {
                    "type": "error",
                    "code": "taken_over",
                    "detail": "This terminal was opened in another window.",
                }
            )
            await self._finish(CLOSE_TAKEN_OVER, "taken_over")
        elif end is not None and end.get("type") == "exit":
            close_code, reason = _AGENT_ENDS.get(str(end.get("reason")), (1000, "shell_exited"))
            await self._tell({"type": "exit", "reason": end.get("reason"), "code": end.get("code")})
            await self._finish(close_code, reason)
        else:
            await self._tell(
                {
                    "type": "error",
                    "code": "agent_disconnected",
                    "detail": "Lost the connection to the workspace.",
                }
            )
            await self._finish(CLOSE_AGENT_UNAVAILABLE, "agent_disconnected")

    async def _enqueue(self, kind: int, item: bytes) -> None:
        """Queue input for `_pump_input`; keystrokes and control records (resizes) alike
        count toward the bound, so no kind of message can grow the queue without limit."""
        self._backlog += len(item)
        if self._backlog > INPUT_BACKLOG:
            await self._finish(CLOSE_TOO_BIG, "input_overflow")
            return
        self._input.put_nowait((kind, item))

    async def _pump_input(self, stream: StreamLike) -> None:
        """Browser → agent, in order: what `receive` could not write at once."""
        self._input_stream = stream
        while True:
            kind, item = await self._input.get()
            self._backlog -= len(item)
            if not await self._write_input(stream, kind, item):
                self._input_stream = None
                return

    def _direct_input(self, size: int) -> bool:
        """Whether `size` bytes of input may be written by `receive` itself: the stream
        is open, nothing is queued or being written (order), and credit covers them."""
        stream = self._input_stream
        return (
            stream is not None
            and not self._writing
            and self._input.empty()
            and size <= p.SHELL_CHUNK
            and stream.send_credit >= size + p.SHELL_RECORD.size
        )

    async def _write_input(self, stream: StreamLike | None, kind: int, item: bytes) -> bool:
        """Keystrokes as SHELL_DATA records, control records as they are; False once the
        stream is closed."""
        if stream is None:
            return False
        if kind == p.SHELL_CONTROL:
            record = item
        else:
            record = b"".join(p.shell_data_record(c) for c in p.chunks(item, p.SHELL_CHUNK))
        self._writing = True
        try:
            await stream.write(record)
        except p.StreamClosed:
            self._input_stream = None
            return False
        finally:
            self._writing = False
        return True

    async def _housekeeping(self) -> None:
        """Flush traffic counters now and then; close sockets whose browser went silent."""
        while True:
            await asyncio.sleep(TRAFFIC_EVERY)
            delta_in = self._bytes_in - self._flushed_in
            delta_out = self._bytes_out - self._flushed_out
            if delta_in or delta_out:
                self._flushed_in += delta_in
                self._flushed_out += delta_out
                await _add_traffic(self._row, delta_in, delta_out)
            if time.monotonic() - self._last_seen > IDLE_TIMEOUT:
                await self._finish(CLOSE_IDLE, "client_timeout")
                return

    # --- the end -----------------------------------------------------------------------

    async def _finish(self, close_code: int | None, reason: str, *, kill_shell=False) -> None:
        """End everything once — the first caller's reason wins; every caller waits for it."""
        if self._row is None:
            return
        if self._finishing is None:
            self._done = True
            self._finishing = asyncio.ensure_future(self._end(close_code, reason, kill_shell))
        await asyncio.shield(self._finishing)

    async def _end(self, close_code: int | None, reason: str, kill_shell: bool) -> None:
        """The audit row first (it must survive a dying process), then stream and socket."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # No task of ours outlives the session (nor the event loop, at shutdown).
        await asyncio.gather(*tasks, return_exceptions=True)
        await _close_row(
            self._row,
            reason,
            self._bytes_in - self._flushed_in,
            self._bytes_out - self._flushed_out,
        )
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                if kill_shell:
                    terminate = p.shell_control_record({"type": "terminate"})
                    await asyncio.wait_for(stream.write(terminate), 2.0)
                await asyncio.wait_for(stream.close(p.CLOSE_NORMAL, reason), 2.0)
        if close_code is not None:
            with contextlib.suppress(Exception):
                await self.close(code=close_code, reason=reason)
        logger.info("terminal session %s ended: %s", self._row, reason)

    async def _tell(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.send(text_data=json.dumps(message))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
