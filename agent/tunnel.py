"""The agent end of the tunnel: dial the portal, serve streams, reconnect forever.

Guarantees:

* One connection at a time to ``<portal>/agent/v1/tunnel``, authenticated with
  ``Authorization: Bearer <token>``; the token never appears in any log line
  (the websockets handshake logger is filtered too).
* Reconnects forever with full-jitter exponential backoff (0.5 s → 30 s, reset
  after a connection that stayed up 30 s); a portal rejecting the token
  (HTTP 401/403) is retried no sooner than 30 s. A live tunnel the portal closes
  with `protocol.TUNNEL_CLOSE_REVOKED` (the token was rotated or the cluster
  deleted) is logged as such and redialled with the same backoff, so the agent
  neither spins nor gives up: it is refused until restarted with the new token.
* Heartbeat: a ``ping`` every 15 s; a tunnel that received nothing for 45 s is
  dropped and redialled.
* No malformed input crashes the agent: a bad frame closes its stream, an
  unreadable header drops the connection (which is then redialled).
* :meth:`Tunnel.stop` closes the tunnel only; workspaces keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from agent import __version__, protocol
from agent.forward import Forwarder
from agent.logs import LogService
from agent.multiplex import Multiplexer, StreamHandler
from agent.rpc import RpcDispatcher
from agent.runtimes.base import Runtime
from agent.shell import ShellService

logger = logging.getLogger(__name__)

TUNNEL_PATH: Final = "/agent/v1/tunnel"
HEARTBEAT_INTERVAL: Final = 15.0
DEAD_AFTER: Final = 45.0
BACKOFF_BASE: Final = 0.5
BACKOFF_CAP: Final = 30.0
STABLE_AFTER: Final = 30.0
EVENT_QUEUE: Final = 1024
REJECTED_STATUSES: Final = frozenset({401, 403})


class _RedactAuthorization(logging.Filter):
    """Drop websockets' debug lines that would print the Authorization header."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(a, str) and a.lower() == "authorization" for a in args)


_ws_logger = logging.getLogger("agent.tunnel.websocket")
_ws_logger.addFilter(_RedactAuthorization())


def tunnel_url(portal_url: str) -> str:
    """The tunnel endpoint for a portal base URL (http→ws, https→wss)."""
    parts = urlsplit(portal_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError("the portal URL must look like https://portal.example.com")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + TUNNEL_PATH, "", ""))


def backoff_delay(
    attempt: int,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    rng: Callable[[], float] = random.random,
) -> float:
    """Full-jitter delay before reconnect ``attempt`` (0-based): in [0, min(cap, base·2ⁿ)]."""
    return rng() * min(cap, base * 2 ** min(max(attempt, 0), 32))


def rejected_delay(*, cap: float = BACKOFF_CAP, rng: Callable[[], float] = random.random) -> float:
    """Delay after the portal rejected the token: in [cap, 2·cap], never a tight loop."""
    return cap * (1.0 + rng())


class Tunnel:
    """Keeps one multiplexed connection to the portal open and serves its streams."""

    def __init__(
        self,
        *,
        portal_url: str,
        token: str,
        runtime: Runtime,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        dead_after: float = DEAD_AFTER,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        stable_after: float = STABLE_AFTER,
        open_timeout: float = 10.0,
        shell_grace: float | None = None,
    ) -> None:
        self.url = tunnel_url(portal_url)
        self.runtime = runtime
        self.heartbeat_interval = heartbeat_interval
        self.dead_after = dead_after
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stable_after = stable_after
        self.open_timeout = open_timeout
        self.connections = 0
        """Connections established so far (for tests and diagnostics)."""
        self._token = token
        self._stopping = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._closing: asyncio.Future[None] | None = None
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_QUEUE)
        self.dispatcher = RpcDispatcher(runtime, agent_info=self.info)
        self.forwarder = Forwarder(runtime)
        grace = {} if shell_grace is None else {"grace": shell_grace}
        self.shells = ShellService(runtime, **grace)
        self.logs = LogService(runtime)
        self.handlers: dict[str, StreamHandler] = {
            "rpc": self.dispatcher.handle_stream,
            "shell": self.shells.handle_stream,
            "logs": self.logs.handle_stream,
            "http": self.forwarder.handle_http,
            "websocket": self.forwarder.handle_websocket,
        }
        runtime.on_event = self.publish_event

    def info(self) -> dict[str, Any]:
        """What ``agent.info`` answers and ``hello`` announces."""
        kinds = list(self.handlers)
        return {
            "version": __version__,
            "runtime": self.runtime.name,
            "capabilities": sorted({*self.runtime.capabilities, *kinds}),
            "environments": self.runtime.count(),
            "isolation": dict(self.runtime.isolation),
        }

    def publish_event(self, kind: str, environment: dict[str, Any]) -> None:
        """Queue an ``event`` message; dropped while disconnected (the portal relists)."""
        if self._ws is None:
            return
        try:
            self._events.put_nowait(protocol.event_message(kind, environment))
        except asyncio.QueueFull:
            logger.warning("event queue full: dropping %s for %s", kind, environment.get("id"))

    def stop(self) -> None:
        """Close the tunnel and stop reconnecting (safe to call from a signal handler)."""
        self._stopping.set()
        if self._ws is not None:
            self._closing = asyncio.ensure_future(self._ws.close(1001, "agent shutting down"))

    async def run(self) -> None:
        """Connect, serve, reconnect — until :meth:`stop`."""
        attempt = 0
        while not self._stopping.is_set():
            connected_at: list[float] = []
            delay: float | None = None
            try:
                await self._session(connected_at)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in REJECTED_STATUSES:
                    delay = rejected_delay(cap=self.backoff_cap)
                    logger.error(
                        "the portal rejected the agent token (HTTP %d); check "
                        "ENCLAVE_AGENT_TOKEN / --token. Retrying in %.0fs",
                        status,
                        delay,
                    )
                else:
                    logger.warning("tunnel handshake refused: HTTP %d", status)
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == protocol.TUNNEL_CLOSE_REVOKED:
                    logger.error(
                        "the portal revoked the agent token (%.100s): the cluster's token was "
                        "rotated or the cluster deleted. Restart the agent with the new "
                        "ENCLAVE_AGENT_TOKEN / --token; retrying meanwhile",
                        exc.rcvd.reason or "no reason given",
                    )
                else:
                    logger.warning("tunnel to %s lost: %s", self.url, exc)
            except (OSError, TimeoutError, WebSocketException, protocol.ProtocolError) as exc:
                logger.warning("tunnel to %s lost: %s", self.url, exc or type(exc).__name__)
            except Exception:
                logger.exception("tunnel failed unexpectedly")
            if self._stopping.is_set():
                break
            if connected_at and time.monotonic() - connected_at[0] >= self.stable_after:
                attempt = 0
            if delay is None:
                delay = backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap)
                attempt += 1
            logger.info("reconnecting in %.1fs", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        logger.info("tunnel stopped")

    async def _session(self, connected_at: list[float]) -> None:
        """One connection, from handshake to close."""
        async with connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self._token}"},
            user_agent_header=f"enclave-agent/{__version__}",
            compression=None,
            max_size=protocol.MAX_BATCH,
            ping_interval=None,
            open_timeout=self.open_timeout,
            close_timeout=5,
            logger=_ws_logger,
        ) as ws:
            connected_at.append(time.monotonic())
            self.connections += 1
            logger.info("tunnel connected to %s", self.url)
            mux = Multiplexer(ws.send, self.handlers)
            self._drain_events()
            self._ws = ws
            last_rx = [time.monotonic()]
            tasks = [
                asyncio.create_task(self._heartbeat(ws, last_rx)),
                asyncio.create_task(self._send_events(ws)),
            ]
            try:
                if self._stopping.is_set():
                    return
                await ws.send(protocol.encode_message(protocol.hello_message(**self.info())))
                async for message in ws:
                    last_rx[0] = time.monotonic()
                    if isinstance(message, bytes):
                        await self._on_binary(ws, mux, message)
                    else:
                        await self._on_text(ws, message)
                if ws.close_code not in (1000, 1001, None):
                    logger.warning("tunnel closed: %s %s", ws.close_code, ws.close_reason)
            finally:
                self._ws = None
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await mux.aclose()

    async def _on_binary(self, ws: ClientConnection, mux: Multiplexer, message: bytes) -> None:
        try:
            await mux.feed(message)
        except protocol.ProtocolError as exc:
            logger.error("unreadable frame from the portal (%s): dropping the tunnel", exc.reason)
            await ws.close(1002, "protocol error")

    async def _on_text(self, ws: ClientConnection, text: str) -> None:
        try:
            message = protocol.decode_message(text)
        except protocol.ProtocolError as exc:
            logger.warning("ignoring malformed message from the portal: %s", exc.reason)
            return
        kind = message["type"]
        if kind == "ping":
            await ws.send(protocol.encode_message(protocol.pong_message(message.get("ts"))))
        elif kind != "pong":
            logger.debug("ignoring message of type %.50s", kind)

    async def _heartbeat(self, ws: ClientConnection, last_rx: list[float]) -> None:
        tick = min(1.0, self.heartbeat_interval / 3)
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - last_rx[0] > self.dead_after:
                logger.warning("nothing received for %.0fs: tunnel is dead", now - last_rx[0])
                await ws.close(1011, "heartbeat timeout")
                return
            if now - last_ping >= self.heartbeat_interval:
                last_ping = now
                await ws.send(protocol.encode_message(protocol.ping_message(time.time())))

    async def _send_events(self, ws: ClientConnection) -> None:
        while True:
            event = await self._events.get()
            try:
                text = protocol.encode_message(event)
            except protocol.ProtocolError as exc:
                logger.error("cannot send event: %s", exc.reason)
                continue
            await ws.send(text)

    def _drain_events(self) -> None:
        while not self._events.empty():
            self._events.get_nowait()
