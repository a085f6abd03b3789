"""The agent tunnel: one authenticated WebSocket per cluster, many streams inside it.

Promises:

* Only a request carrying a current agent token (`Authorization: Bearer …`, matched
  by hash) is accepted; anything else is refused before the handshake completes
  (HTTP 403), and the token is never logged.
* One tunnel per cluster: a new connection replaces the older one, in this process
  or another (the older consumer is told through the channel layer and closes).
* A tunnel never outlives its credential: rotating the cluster's token or deleting the
  cluster closes it at once with `TUNNEL_CLOSE_REVOKED` (4403), in whichever process
  holds it (`revoke_tunnel`, registered as the clusters' tunnel closer); the consumer
  also re-checks its token once it holds the tunnel and at every `last_seen_at`
  refresh, so a revocation it was not told of ends it within seconds. Each such close
  is logged and audited (`cluster.tunnel_closed`).
* While connected, `Cluster.tunnel_channel` names this consumer and `last_seen_at`
  is refreshed at every heartbeat; a tunnel silent for 45 s is closed. On any end
  the channel is cleared (only if still ours) and every open stream is ended, so
  callers fail fast instead of hanging.
* Agent `event` messages invalidate the discovery cache of the cluster and are published
  to the pages of the workspace's owner and of the admins (`/ws/events/`, through
  `relay.consumers.events.AgentEvents`, in order per environment); its `hello` is
  recorded, isolation report included (`clusters.services.tunnel_hello` keeps only
  what it knows).
* Nothing here waits on the database in the frame path: database writes run in
  background tasks on their own threads, so a busy ORM thread can never stall frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from agent import protocol as p
from agent.multiplex import Multiplexer
from clusters.choices import TunnelCloseReason
from clusters.models import Cluster
from clusters.selectors import cluster_for_token, cluster_token_revocation
from clusters.services import (
    tunnel_claim,
    tunnel_closed,
    tunnel_hello,
    tunnel_release,
    tunnel_touch,
)
from relay.consumers.base import LeanWebsocketConsumer, db_async
from relay.consumers.events import AgentEvents
from relay.streams import LOCAL_TUNNELS, LocalTunnel, RelayPump
from workspaces.selectors import discovery_invalidate

logger = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT = 45.0
LAST_SEEN_EVERY = 10.0


_authenticate = db_async(cluster_for_token)
_claim = db_async(tunnel_claim)
_record_hello = db_async(tunnel_hello)
_touch = db_async(tunnel_touch)
_release = db_async(tunnel_release)
_invalidate = db_async(discovery_invalidate)
_revocation = db_async(cluster_token_revocation)
_record_closed = db_async(tunnel_closed)


def revoke_tunnel(*, cluster_id: int, tunnel_channel: str, reason: str) -> None:
    """Tell the consumer holding a cluster's tunnel, in this process or another, that its
    credential was revoked (`reason`: a `TunnelCloseReason`); it closes the tunnel.

    The clusters' tunnel closer (`clusters.tunnels`), called from synchronous code once
    the revoking transaction has committed. Both the tunnel this process holds and the
    one the database names are told (they differ only while one replaces the other). A
    message that cannot be sent is logged: the consumer's own check ends the tunnel at
    its next `last_seen_at` refresh anyway.
    """
    local = LOCAL_TUNNELS.get(cluster_id)
    targets = {tunnel_channel, local.channel_name if local is not None else ""} - {""}
    layer = get_channel_layer()
    if not targets or layer is None:
        return
    for channel in sorted(targets):
        try:
            async_to_sync(layer.send)(channel, {"type": "tunnel.revoke", "reason": reason})
        except Exception:
            logger.exception("could not tell the tunnel of cluster %s to close", cluster_id)


class TunnelConsumer(LeanWebsocketConsumer):
    """Portal end of an agent's outbound tunnel (`/agent/v1/tunnel`)."""

    cluster: Cluster | None = None

    async def connect(self) -> None:
        self.cluster = None
        self._revoked = ""
        self._tasks: set[asyncio.Task] = set()
        self._pumps: dict[str, RelayPump] = {}
        self._last_received = time.monotonic()
        self._last_touch = 0.0
        cluster = await _authenticate(self._bearer_token())
        if cluster is None:
            client = (self.scope.get("client") or ["?"])[0]
            logger.warning("agent tunnel refused from %s: unknown or missing token", client)
            await self.close(code=4401)
            return
        self.cluster = cluster
        self.mux = Multiplexer(self._send_frame, role="portal")
        previous = await _claim(cluster_id=cluster.pk, channel_name=self.channel_name)
        await self.accept()
        # Registered only once accepted: an in-process caller never writes to a socket
        # that is still handshaking. Channel-layer callers wait for connect() to return.
        old_local = LOCAL_TUNNELS.get(cluster.pk)
        LOCAL_TUNNELS[cluster.pk] = LocalTunnel(cluster.pk, self.channel_name, self.mux, self)
        if old_local is not None and old_local.consumer is not self:
            await old_local.consumer.replaced()
        elif previous and previous != self.channel_name:
            with contextlib.suppress(Exception):
                await self.channel_layer.send(previous, {"type": "tunnel.replace"})
        self.events = AgentEvents(cluster.pk, cluster.name)
        self._spawn(self.events.run())
        self._spawn(self._watchdog())
        self._spawn(_invalidate(cluster.pk))
        # Claimed after a revocation committed? Then nobody was told of this tunnel.
        self._spawn(self._check_credential())
        logger.info("agent of cluster %s connected", cluster.name)

    async def disconnect(self, code: int) -> None:
        cluster = self.cluster
        if cluster is None:
            return
        if getattr(LOCAL_TUNNELS.get(cluster.pk), "consumer", None) is self:
            del LOCAL_TUNNELS[cluster.pk]
        await self.mux.aclose()
        for pump in list(self._pumps.values()):
            await pump.aclose()
        self._pumps.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await _release(cluster_id=cluster.pk, channel_name=self.channel_name)
        await _invalidate(cluster.pk)
        if self._revoked:
            # Audited here, not when closing: disconnect() is awaited to the end.
            await _record_closed(cluster_name=cluster.name, reason=self._revoked)
        logger.info("agent of cluster %s disconnected (code %s)", cluster.name, code)
        self.cluster = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self._last_received = time.monotonic()
        if bytes_data is not None:
            try:
                await self.mux.feed(bytes_data)
            except p.ProtocolError as exc:
                logger.warning("cluster %s sent an unreadable frame: %s", self.cluster, exc)
                await self.close(code=4400)
            return
        try:
            message = p.decode_message(text_data or "")
        except p.ProtocolError as exc:
            logger.warning("cluster %s sent a bad message: %s", self.cluster, exc)
            return
        await self._on_message(message)

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        cluster_id = self.cluster.pk
        if kind == "ping":
            await self.send(text_data=p.encode_message(p.pong_message(message.get("ts"))))
            now = time.monotonic()
            if now - self._last_touch >= LAST_SEEN_EVERY:
                self._last_touch = now
                self._spawn(_touch(cluster_id=cluster_id, channel_name=self.channel_name))
                self._spawn(self._check_credential())
        elif kind == "hello":
            self._spawn(
                _record_hello(
                    cluster_id=cluster_id,
                    version=str(message.get("version", "")),
                    runtime=str(message.get("runtime", "")),
                    isolation=message.get("isolation"),
                )
            )
        elif kind == "event":
            self.events.offer(message)

    # --- channel-layer messages ----------------------------------------------------------

    async def tunnel_replace(self, event: dict[str, Any]) -> None:
        await self.replaced()

    async def replaced(self) -> None:
        """A newer tunnel of the same cluster took over: step aside.

        `tunnel_channel` already names the newer consumer, and `_release` only clears
        it when it still names this one, so the newer tunnel stays registered.
        """
        logger.info("tunnel of cluster %s replaced by a newer connection", self.cluster)
        cluster = self.cluster
        if cluster is not None and getattr(LOCAL_TUNNELS.get(cluster.pk), "consumer", None) is self:
            del LOCAL_TUNNELS[cluster.pk]
        await self.close(code=4409)

    async def tunnel_revoke(self, event: dict[str, Any]) -> None:
        reason = event.get("reason")
        if reason in TunnelCloseReason.values:
            await self.revoked(reason)
        else:  # not a message of ours: the database says whether the token still holds
            await self._check_credential()

    async def revoked(self, reason: str) -> None:
        """The cluster's token was rotated or the cluster deleted (`reason`, a
        `TunnelCloseReason`): close at once.

        Closes with `TUNNEL_CLOSE_REVOKED` and the reason, so the agent can tell its
        operator to restart it with the new token; its redials are then refused.
        """
        cluster = self.cluster
        if cluster is None or self._revoked:
            return
        self._revoked = reason
        logger.warning(
            "closing the tunnel of cluster %s: credentials revoked (%s)", cluster, reason
        )
        if getattr(LOCAL_TUNNELS.get(cluster.pk), "consumer", None) is self:
            del LOCAL_TUNNELS[cluster.pk]
        await self.close(code=p.TUNNEL_CLOSE_REVOKED, reason=f"credentials revoked: {reason}")

    async def relay_open(self, event: dict[str, Any]) -> None:
        reply = event["reply"]
        try:
            stream = await self.mux.open_stream(event["request"])
        except p.ProtocolError as exc:
            await self.channel_layer.send(
                reply, {"type": "relay.close", "code": exc.code, "reason": exc.reason}
            )
            return
        except p.StreamClosed:  # this tunnel's socket failed under us
            await self.channel_layer.send(
                reply, {"type": "relay.close", "code": p.CLOSE_INTERNAL, "reason": "tunnel closing"}
            )
            return
        pump = RelayPump(stream, reply)
        self._pumps[reply] = pump
        await self.channel_layer.send(reply, {"type": "relay.opened"})
        self._spawn(self._reap(reply, pump))

    async def relay_data(self, event: dict[str, Any]) -> None:
        self._route(event)

    async def relay_credit(self, event: dict[str, Any]) -> None:
        self._route(event)

    async def relay_close(self, event: dict[str, Any]) -> None:
        self._route(event)

    def _route(self, event: dict[str, Any]) -> None:
        pump = self._pumps.get(event.get("reply", ""))
        if pump is not None:
            pump.on_message(event)

    async def _reap(self, reply: str, pump: RelayPump) -> None:
        await pump.finished()
        await pump.aclose()
        self._pumps.pop(reply, None)

    # --- internals -----------------------------------------------------------------------

    async def _send_frame(self, data: bytes) -> None:
        await self.base_send({"type": "websocket.send", "bytes": data})

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(5)
            if time.monotonic() - self._last_received > HEARTBEAT_TIMEOUT:
                logger.warning("tunnel of cluster %s silent for 45 s: closing", self.cluster)
                await self.close(code=4408)
                return

    async def _check_credential(self) -> None:
        cluster = self.cluster
        reason = await _revocation(cluster_id=cluster.pk, token_hash=cluster.token_hash)
        if reason:
            await self.revoked(reason)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _bearer_token(self) -> str:
        for name, value in self.scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    return token.strip()
        return ""
