"""Live logs: `/ws/logs/?workspace=<id>&tail=<n>` follows a workspace's start-command output.

The socket of the editor's Logs panel, mounted with `relay.routing.session_socket` (the
session cookie, behind the Origin check). Promises:

* Before the handshake is accepted: an anonymous socket is refused (close 4401
  `not_authenticated`), and so is a client IP the firewall blocks (4403
  `firewall_blocked`, recorded as a `FirewallEvent` of kind `logs`). Nothing reaches the
  agent. The member is checked again every `RECHECK_EVERY` seconds: signed out or
  suspended ends the socket (`signed_out`, 4401), a changed role too (`role_changed`,
  4409: an admin who is one no more may not follow others' workspaces).
* Then the workspace is looked up for the member — their own only (`own_workspace`);
  admins may follow any (`workspace_any`). Someone else's workspace gets exactly the
  answer of an unknown id (`error` `workspace_not_found`, close 4404), and nothing is
  asked of its agent.
* Server → browser, text frames only: `{"type": "lines", "lines": [...]}` — the first
  one is the tail (the last `tail` lines, 1 to 2000, default 200; possibly empty), every
  later one the output written since the previous one; `{"type": "end", "code",
  "detail"}` when the output ends for good after the tail (`workspace_deleted`,
  `agent_disconnected`, `logs_unavailable`) or the member's session does, then close;
  `{"type": "error", "code", "detail"}` when the socket is refused after the handshake,
  then close; `{"type": "pong"}` to a `{"type": "ping"}`. Anything else from the browser
  is ignored.
  The codes and close codes are listed in docs/api.md ("Logs stream").
* Memory is bounded end to end: the agent's stream has a credit window and this consumer
  reads it only once the previous message was sent; where the ASGI server's send waits
  for the socket to drain (uvicorn, the production default), a stalled browser stops the
  agent reading the log.
* Every task started for the socket is cancelled when it ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Final
from urllib.parse import parse_qs

from agent import protocol as p
from core.client_ip import scope_client_ip
from core.errors import ApplicationError
from relay.consumers.base import LeanWebsocketConsumer, db_async, session_member
from relay.streams import StreamLike, TunnelUnavailable, open_stream
from security_center.choices import ConnectionKind
from security_center.services import firewall_check
from workspaces.selectors import workspace_any
from workspaces.services import own_workspace

logger = logging.getLogger(__name__)

CLOSE_INVALID: Final = 4400
CLOSE_NOT_AUTHENTICATED: Final = 4401
CLOSE_FIREWALL: Final = 4403
CLOSE_NOT_FOUND: Final = 4404
CLOSE_ROLE_CHANGED: Final = 4409
CLOSE_DELETED: Final = 4410
CLOSE_LOGS_UNAVAILABLE: Final = 4502
CLOSE_AGENT_UNAVAILABLE: Final = 4503

NOT_FOUND: Final = ("workspace_not_found", "Workspace not found.", CLOSE_NOT_FOUND)
CLUSTER_UNAVAILABLE: Final = (
    "cluster_unavailable",
    "The workspace's cluster is not connected.",
    CLOSE_AGENT_UNAVAILABLE,
)
LOGS_UNAVAILABLE: Final = (
    "logs_unavailable",
    "The workspace's agent cannot follow its logs.",
    CLOSE_LOGS_UNAVAILABLE,
)
AGENT_DISCONNECTED: Final = (
    "agent_disconnected",
    "Lost the connection to the workspace's agent.",
    CLOSE_AGENT_UNAVAILABLE,
)
# What an `end` record of the agent (`agent.protocol.LOG_END_CODES`) means for the browser.
_AGENT_ENDS: Final = {
    p.LOG_END_DELETED: ("workspace_deleted", "The workspace was deleted.", CLOSE_DELETED),
    p.LOG_END_SHUTDOWN: AGENT_DISCONNECTED,
}
SIGNED_OUT: Final = ("signed_out", "Your session has ended.", CLOSE_NOT_AUTHENTICATED)
ROLE_CHANGED: Final = ("role_changed", "Your role has changed.", CLOSE_ROLE_CHANGED)
CLOSE_TIMEOUT: Final = 2.0
RECHECK_EVERY: Final = 60.0


class _Refused(Exception):
    def __init__(self, refusal: tuple[str, str, int], detail: str | None = None) -> None:
        code, default, self.close_code = refusal
        super().__init__(code)
        self.code, self.detail = code, detail or default


@db_async
def _firewall(ip: str, email: str, workspace_id: str):
    return firewall_check(
        ip=ip, kind=ConnectionKind.LOGS, user_email=email, environment_id=workspace_id[:100]
    )


@db_async
def _cluster_of(user, workspace_id: str, ip: str | None = None):
    """The cluster of a workspace this member may follow; `_Refused` otherwise."""
    try:
        if user.is_admin:
            _, cluster = workspace_any(workspace_id)
        else:
            _, cluster = own_workspace(user, workspace_id, ip=ip)
    except ApplicationError as exc:
        if exc.status == 404:
            raise _Refused(NOT_FOUND) from exc
        raise _Refused(CLUSTER_UNAVAILABLE, exc.detail) from exc
    return cluster


def _tail(params: dict[str, list[str]]) -> int:
    raw = params.get("tail", [""])[0]
    if not raw:
        return p.DEFAULT_LOG_TAIL
    try:
        tail = int(raw)
    except ValueError:
        tail = 0
    if not 1 <= tail <= p.MAX_LOG_TAIL:
        raise _Refused(
            ("invalid_tail", f"tail must be an integer from 1 to {p.MAX_LOG_TAIL}.", CLOSE_INVALID)
        )
    return tail


class LogsConsumer(LeanWebsocketConsumer):
    """One Logs panel: session and firewall, ownership, then a logs stream to the agent."""

    async def connect(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._stream: StreamLike | None = None
        self._finished = False
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_NOT_AUTHENTICATED, reason="not_authenticated")
            return
        params = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        workspace_id = params.get("workspace", [""])[0]
        ip = scope_client_ip(self.scope)
        decision = await _firewall(ip, user.email, workspace_id)
        if not decision.allowed:
            logger.info("logs refused from %s: firewall (%s)", ip, decision.rule)
            await self.close(code=CLOSE_FIREWALL, reason="firewall_blocked")
            return
        await self.accept()
        self._spawn(self._relay(user, workspace_id, params))
        self._spawn(self._recheck(user))

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A server that cancels its applications on shutdown never calls disconnect().
            await self._stop()

    async def disconnect(self, code: int) -> None:
        await self._stop()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            kind = json.loads(text_data or "")["type"]
        except (ValueError, TypeError, KeyError):
            return
        if kind == "ping":
            await self.send(text_data='{"type":"pong"}')

    # --- the relay ---------------------------------------------------------------------

    async def _relay(self, user, workspace_id: str, params: dict[str, list[str]]) -> None:
        try:
            await self._serve(user, workspace_id, params)
        except OSError as exc:  # the browser left while a message was being sent
            logger.debug("logs of %s: socket gone: %s", workspace_id, exc)

    async def _serve(self, user, workspace_id: str, params: dict[str, list[str]]) -> None:
        try:
            tail = _tail(params)
            if not 0 < len(workspace_id) <= 100:
                raise _Refused(NOT_FOUND)
            cluster = await _cluster_of(user, workspace_id, scope_client_ip(self.scope))
            stream = await self._open(cluster, p.logs_open_request(workspace_id, tail=tail))
        except _Refused as refusal:
            await self._finish("error", refusal.code, refusal.detail, refusal.close_code)
            return
        self._stream = stream
        try:
            outcome = await self._pump(stream)
        except p.ProtocolError as exc:
            logger.warning("logs of %s: malformed stream: %s", workspace_id, exc)
            outcome = ("end", *LOGS_UNAVAILABLE)
        await self._finish(*outcome)

    async def _open(self, cluster, request: dict[str, Any]) -> StreamLike:
        try:
            return await open_stream(
                cluster_id=cluster.pk,
                tunnel_channel=cluster.tunnel_channel if cluster.is_connected else "",
                request=request,
            )
        except TunnelUnavailable as exc:
            logger.warning("logs of %s: agent unavailable: %s", request["environment"], exc)
            raise _Refused(CLUSTER_UNAVAILABLE) from exc

    async def _pump(self, stream: StreamLike) -> tuple[str, str, str, int]:
        """Agent → browser until the stream ends; returns what to tell and how to close:
        ``(message type, code, detail, close code)``."""
        parser = p.LogRecordParser()
        tail: list[str] | None = []  # None once the tail was sent
        tail_size = 0
        last: dict[str, Any] | None = None
        while chunk := await stream.read():
            lines: list[str] = []
            for record in parser.feed(chunk):
                kind = record["type"]
                if kind == "lines" and tail is not None:
                    tail += record["lines"]
                    tail_size += sum(len(line) for line in record["lines"])
                    if len(tail) > p.MAX_LOG_TAIL or tail_size > p.MAX_LOG_TAIL_BYTES:
                        raise p.ProtocolError(p.CLOSE_PROTOCOL_ERROR, "tail too long")
                elif kind == "lines":
                    lines += record["lines"]
                elif kind == "live" and tail is not None:
                    await self._tell({"type": "lines", "lines": tail})
                    tail = None
                else:
                    last = record
            if lines:
                await self._tell({"type": "lines", "lines": lines})
        return self._outcome(last, live=tail is None, close_code=stream.close_code)

    @staticmethod
    def _outcome(
        last: dict[str, Any] | None, *, live: bool, close_code: int | None
    ) -> tuple[str, str, str, int]:
        if last is not None and last["type"] == "end" and live:
            code, detail, close = _AGENT_ENDS.get(str(last.get("code")), AGENT_DISCONNECTED)
            return "end", code, detail, close
        if live:
            return ("end", *AGENT_DISCONNECTED)
        if last is not None and last["type"] == "error":
            if last.get("code") == "not_found":
                return ("error", *NOT_FOUND)
            return "error", LOGS_UNAVAILABLE[0], str(last.get("detail", "")), CLOSE_LOGS_UNAVAILABLE
        if close_code in (p.CLOSE_PROTOCOL_ERROR, p.CLOSE_REFUSED):  # an agent without logs
            return ("error", *LOGS_UNAVAILABLE)
        return ("error", *CLUSTER_UNAVAILABLE)

    async def _recheck(self, user) -> None:
        """End the socket once its session no longer signs the member in as they were."""
        while True:
            await asyncio.sleep(RECHECK_EVERY)
            session = self.scope.get("session")
            member = await session_member(getattr(session, "session_key", None))
            if member is None or member.pk != user.pk:
                await self._finish("end", *SIGNED_OUT)
                return
            if member.is_admin != user.is_admin:
                await self._finish("end", *ROLE_CHANGED)
                return

    # --- the end -----------------------------------------------------------------------

    async def _finish(self, kind: str, code: str, detail: str, close_code: int) -> None:
        """Tell the browser why the socket ends, then close it and the stream — once, the
        first caller's reason winning; the socket's other tasks are cancelled first so
        nothing follows the message."""
        if self._finished:
            return
        self._finished = True
        others = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        with contextlib.suppress(OSError):
            await self._tell({"type": kind, "code": code, "detail": detail})
        await self._close(close_code, code)

    async def _stop(self) -> None:
        """Cancel every task of the socket and close its stream (idempotent)."""
        tasks = [t for t in getattr(self, "_tasks", ()) if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_stream("browser gone")

    async def _close(self, code: int, reason: str) -> None:
        await self._close_stream(reason)
        with contextlib.suppress(Exception):
            await self.close(code=code, reason=reason)

    async def _close_stream(self, reason: str) -> None:
        """End the agent's stream, if any: its follower stops at once."""
        stream, self._stream = getattr(self, "_stream", None), None
        if stream is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stream.close(p.CLOSE_NORMAL, reason), CLOSE_TIMEOUT)

    async def _tell(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
