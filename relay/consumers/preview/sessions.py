"""Preview cookie sessions: who may use a preview origin, and what they used.

A redeemed preview ticket opens one `ConnectionSession` (kind preview) and the browser
gets a cookie holding a value *signed* with the portal's secret key (salted,
timestamped) naming that session, its workspace and its port. The session row is the
authority:

* A cookie works only on the host of its own workspace and port, only while its row is
  open (`ended_at` empty), its user is active, and at most `COOKIE_MAX_AGE` after it was
  issued; a forged or altered value never verifies.
* Each process remembers a session's row for at most `REVALIDATE_AFTER` (1 s) before
  reading it again, so a session ended anywhere stops working within a second. Ending a
  session through its `channel_name` (what the admin's "end session" does) is applied
  at once: the message is re-broadcast to every portal process, which drops the session
  and cuts its open streams (downloads, server-sent events, WebSockets).
* A session with no request, no message and no open WebSocket for `IDLE_TIMEOUT`
  (30 min) is ended with reason `idle`: lazily when its cookie comes back, and every
  minute by each portal process (`relay.housekeeping`; `manage.py housekeeping`
  does the same from cron).
* Counters (requests, bytes in = from the browser, bytes out = to the browser) are
  kept in memory and added to the row every `FLUSH_EVERY` seconds, never per request.

No request path waits on the database except a first sight or a revalidation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from channels.layers import get_channel_layer
from django.conf import settings
from django.core import signing
from django.utils import timezone

from relay.consumers.base import db_async
from security_center.choices import ConnectionKind
from security_center.models import ConnectionSession, FirewallRule
from security_center.services import (
    connection_add_traffic,
    connection_close,
    connection_open,
    firewall_check,
    firewall_evaluate,
)

logger = logging.getLogger(__name__)

COOKIE_SALT: Final = "enclave.preview.session"
COOKIE_MAX_AGE: Final = 12 * 3600
IDLE_TIMEOUT: Final = timedelta(minutes=30)
REVALIDATE_AFTER: Final = 1.0
FLUSH_EVERY: Final = 5.0
END_IDLE_EVERY: Final = 60.0
FIREWALL_RULES_TTL: Final = 1.0
BROADCAST_GROUP: Final = "preview-sessions"
_DECODED_CACHE: Final = 10_000
DECODE_MEMO_SECONDS: Final = 60.0


def cookie_name() -> str:
    """Host-only cookie name; the `__Host-` prefix makes browsers enforce it (on HTTPS and
    loopback: `COOKIES_HOST_ONLY_PREFIX`), so another preview cannot toss one onto it."""
    return "__Host-enclave_preview" if settings.COOKIES_HOST_ONLY_PREFIX else "enclave_preview"


def cookie_header(value: str) -> bytes:
    """`Set-Cookie` value: host-only (no Domain), HttpOnly, SameSite=Lax, Secure where the
    `__Host-` prefix applies."""
    secure = "; Secure" if settings.COOKIES_HOST_ONLY_PREFIX else ""
    return f"{cookie_name()}={value}; Path=/; HttpOnly; SameSite=Lax{secure}".encode()


@dataclass
class PreviewSession:
    """What this process knows of one preview session (the row is the authority)."""

    id: int
    user_id: int | None
    email: str
    environment_id: str
    port: int
    cluster_id: int | None
    tunnel_channel: str
    ended: bool = False
    checked_at: float = 0.0
    db_activity: float = 0.0
    last_activity: float = field(default_factory=time.time)
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    streams: set[Callable[[], Any]] = field(default_factory=set)

    def touch(self, *, requests: int = 0, bytes_in: int = 0, bytes_out: int = 0) -> None:
        self.requests += requests
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.last_activity = time.time()

    def cut(self) -> None:
        """End every open stream of this session (called once the session ended)."""
        for stop in list(self.streams):
            with contextlib.suppress(Exception):
                stop()
        self.streams.clear()


# --- database (off the event loop) -----------------------------------------------------------

_FIELDS = (
    "id",
    "user_id",
    "email",
    "environment_id",
    "port",
    "cluster_id",
    "cluster__tunnel_channel",
    "ended_at",
    "last_activity_at",
    "user__is_active",
)


@db_async
def _load(session_id: int) -> dict[str, Any] | None:
    return (
        ConnectionSession.objects.filter(pk=session_id, kind=ConnectionKind.PREVIEW)
        .values(*_FIELDS)
        .first()
    )


@db_async
def _ended_among(ids: list[int]) -> list[int]:
    """Which of these sessions ended (or lost their active user)."""
    rows = ConnectionSession.objects.filter(pk__in=ids)
    ended = rows.filter(ended_at__isnull=False) | rows.filter(user__is_active=False)
    found = set(rows.values_list("pk", flat=True))
    return [*ended.values_list("pk", flat=True), *(i for i in ids if i not in found)]


@db_async
def _flush(rows: list[tuple[int, int, int, int]]) -> None:
    for session_id, requests, bytes_in, bytes_out in rows:
        connection_add_traffic(
            session_id=session_id, requests=requests, bytes_in=bytes_in, bytes_out=bytes_out
        )


@db_async
def _end(session_id: int, reason: str) -> None:
    connection_close(session_id=session_id, reason=reason)


@db_async
def _rules() -> list[FirewallRule]:
    return list(FirewallRule.objects.filter(enabled=True).order_by("priority"))


@db_async
def _firewall_record(ip: str, email: str, environment_id: str) -> bool:
    decision = firewall_check(
        ip=ip, kind=ConnectionKind.PREVIEW, user_email=email, environment_id=environment_id
    )
    return decision.allowed


class Registry:
    """The preview sessions of one portal process (one event loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.sessions: dict[int, PreviewSession] = {}
        self.channel_name = ""
        self._decoded: dict[str, tuple[tuple[int, str, int], float]] = {}
        self._refreshing: dict[int, asyncio.Future[PreviewSession | None]] = {}
        self._rules: list[FirewallRule] = []
        self._rules_at = -1e9
        self._rules_lock = asyncio.Lock()
        self._started = False
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Create the control channel and the background loops (once, lazily)."""
        if self._started:
            return
        self._started = True
        layer = get_channel_layer()
        if layer is not None:
            # The default prefix: channels-redis serves every specific channel of a
            # process from one list under one lock; another prefix would hold that lock
            # while blocking on its own list and starve the tunnel's replies.
            self.channel_name = await layer.new_channel()
            await self._rejoin_group()
            self._spawn(self._control(layer))
        self._spawn(self._housekeeping())

    async def _rejoin_group(self) -> None:
        """(Re)join the broadcast group: channel layers expire memberships after a day."""
        layer = get_channel_layer()
        if layer is not None and self.channel_name:
            with contextlib.suppress(Exception):
                await layer.group_add(BROADCAST_GROUP, self.channel_name)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- cookies ---------------------------------------------------------------------------

    @staticmethod
    def sign(session_id: int, environment_id: str, port: int) -> str:
        return signing.dumps(
            {"s": session_id, "e": environment_id, "p": port}, salt=COOKIE_SALT, compress=False
        )

    def _decode(self, value: str) -> tuple[int, str, int] | None:
        """The (session, workspace, port) a cookie names; signature checks are memoised
        for a minute, so the 12-hour limit still applies within a minute."""
        now = time.monotonic()
        cached = self._decoded.get(value)
        if cached is not None and now - cached[1] < DECODE_MEMO_SECONDS:
            return cached[0]
        try:
            data = signing.loads(value, salt=COOKIE_SALT, max_age=COOKIE_MAX_AGE)
            decoded = (int(data["s"]), str(data["e"]), int(data["p"]))
        except (signing.BadSignature, KeyError, TypeError, ValueError):
            return None
        if len(self._decoded) >= _DECODED_CACHE:
            self._decoded.clear()
        self._decoded[value] = (decoded, now)
        return decoded

    async def resolve(self, value: str, environment_id: str, port: int) -> PreviewSession | None:
        """The open session a cookie value names, if it is for this workspace and port."""
        decoded = self._decode(value) if value else None
        if decoded is None or decoded[1:] != (environment_id, port):
            return None
        session = self.sessions.get(decoded[0])
        now = time.monotonic()
        if session is None or now - session.checked_at > REVALIDATE_AFTER:
            session = await self.refresh(decoded[0])
        if session is None or session.ended:
            return None
        if time.time() - max(session.last_activity, session.db_activity) > (
            IDLE_TIMEOUT.total_seconds()
        ):
            await self.end(session, "idle")
            return None
        return session

    async def refresh(self, session_id: int) -> PreviewSession | None:
        """Re-read one session's row; an ended one is dropped and its streams cut.

        Concurrent refreshes of one session share a single query: when its second is
        up, every request in flight on that session waits for the same row.
        """
        pending = self._refreshing.get(session_id)
        if pending is None:
            pending = asyncio.ensure_future(self._refresh(session_id))
            self._refreshing[session_id] = pending
            pending.add_done_callback(lambda _: self._refreshing.pop(session_id, None))
        return await asyncio.shield(pending)

    async def _refresh(self, session_id: int) -> PreviewSession | None:
        row = await _load(session_id)
        known = self.sessions.get(session_id)
        if row is None or row["ended_at"] is not None or not row["user__is_active"]:
            if known is not None:
                known.ended = True
                known.cut()
                self.sessions.pop(session_id, None)
            return None
        if known is None:
            known = PreviewSession(
                id=row["id"],
                user_id=row["user_id"],
                email=row["email"],
                environment_id=row["environment_id"],
                port=row["port"],
                cluster_id=row["cluster_id"],
                tunnel_channel=row["cluster__tunnel_channel"] or "",
                last_activity=0.0,
            )
            self.sessions[session_id] = known
        known.tunnel_channel = row["cluster__tunnel_channel"] or ""
        activity = row["last_activity_at"]
        known.db_activity = activity.timestamp() if activity else 0.0
        known.checked_at = time.monotonic()
        return known

    async def drop_ended(self, ids: list[int]) -> None:
        """Drop (and cut) those of `ids` whose rows ended, in one query."""
        if not ids:
            return
        for session_id in await _ended_among(ids):
            session = self.sessions.pop(session_id, None)
            if session is not None:
                session.ended = True
                session.cut()

    def adopt(self, session: PreviewSession) -> None:
        """Remember a session this process just opened."""
        session.checked_at = time.monotonic()
        self.sessions[session.id] = session

    async def end(self, session: PreviewSession, reason: str) -> None:
        session.ended = True
        session.cut()
        self.sessions.pop(session.id, None)
        await self._flush_one(session)
        await _end(session.id, reason)

    # -- firewall --------------------------------------------------------------------------

    async def firewall_allows(self, ip: str, email: str = "", environment_id: str = "") -> bool:
        """The firewall decision for `ip` (rules cached ≤ 1 s); a block is recorded."""
        if time.monotonic() - self._rules_at > FIREWALL_RULES_TTL:
            async with self._rules_lock:
                if time.monotonic() - self._rules_at > FIREWALL_RULES_TTL:
                    self._rules = await _rules()
                    self._rules_at = time.monotonic()
        if firewall_evaluate(ip, self._rules).allowed:
            return True
        return await _firewall_record(ip, email, environment_id)

    # -- background ------------------------------------------------------------------------

    async def _control(self, layer: Any) -> None:
        """Messages to this process: an admin ended a session, or a broadcast of that."""
        while True:
            try:
                message = await layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("preview control channel failed; retrying")
                await asyncio.sleep(1)
                continue
            session_id = _session_id(message)
            if message.get("type") != "preview.revoke":
                with contextlib.suppress(Exception):
                    await layer.group_send(
                        BROADCAST_GROUP, {"type": "preview.revoke", "session_id": session_id}
                    )
            ids = [session_id] if session_id in self.sessions else list(self.sessions)
            try:
                await self.drop_ended(ids)
            except Exception:
                logger.exception("could not re-check preview sessions")

    async def _housekeeping(self) -> None:
        last_idle_sweep = time.monotonic()
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await self.flush()
                await self.drop_ended([sid for sid, s in self.sessions.items() if s.streams])
                if time.monotonic() - last_idle_sweep >= END_IDLE_EVERY:
                    # `relay.housekeeping` ends idle sessions in the database; this drops
                    # the ones this process still holds.
                    last_idle_sweep = time.monotonic()
                    await self._rejoin_group()
                    await self.drop_ended(list(self.sessions))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("preview housekeeping failed")

    async def flush(self) -> None:
        """Add the counters gathered since the last flush to the session rows."""
        rows = []
        for session in self.sessions.values():
            # An open stream (a WebSocket, a long download) counts as activity by itself.
            if session.requests or session.bytes_in or session.bytes_out or session.streams:
                rows.append((session.id, session.requests, session.bytes_in, session.bytes_out))
                session.requests = session.bytes_in = session.bytes_out = 0
        if rows:
            await _flush(rows)

    async def _flush_one(self, session: PreviewSession) -> None:
        if session.requests or session.bytes_in or session.bytes_out:
            rows = [(session.id, session.requests, session.bytes_in, session.bytes_out)]
            session.requests = session.bytes_in = session.bytes_out = 0
            await _flush(rows)


def _session_id(message: dict[str, Any]) -> int | None:
    for key in ("session_id", "session", "id"):
        value = message.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


_registry: Registry | None = None


async def registry() -> Registry:
    """This process's registry, started on first use (one per event loop)."""
    global _registry
    loop = asyncio.get_running_loop()
    if _registry is None or _registry.loop is not loop:
        _registry = Registry()
    await _registry.start()
    return _registry


def open_session_row(*, ticket: Any, ip: str, channel_name: str) -> PreviewSession:
    """Open the `ConnectionSession` of a redeemed ticket (sync; call off the loop)."""
    row = connection_open(
        user=ticket.user,
        ip=ip,
        kind=ConnectionKind.PREVIEW,
        environment_id=ticket.environment_id,
        cluster=ticket.cluster,
        port=ticket.port,
        channel_name=channel_name,
    )
    now = timezone.now().timestamp()
    return PreviewSession(
        id=row.pk,
        user_id=ticket.user_id,
        email=row.email,
        environment_id=row.environment_id,
        port=row.port,
        cluster_id=ticket.cluster_id,
        tunnel_channel=ticket.cluster.tunnel_channel,
        db_activity=now,
        last_activity=now,
    )
