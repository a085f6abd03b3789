"""Stream routing between portal callers and agent tunnels, with end-to-end flow control.

A caller anywhere in the portal asks `open_stream(cluster, request)` for a stream to
that cluster's agent and gets an object with `read()`, `read_all()`, `write()` and
`close()`:

* when this process holds the cluster's tunnel, the stream is the tunnel
  multiplexer's own `agent.multiplex.Stream` — delivered in-process, no channel
  layer (the hot path of the embedded default);
* otherwise it is a `RemoteStream` whose frames travel through the channel layer to
  the process that holds the tunnel, where a `RelayPump` splices them onto a real
  stream.

Either way memory stays bounded: every hop has a credit window, bytes are granted
back only once delivered onward, and a full channel (`ChannelFull`) ends the stream
with an error — frames are never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from agent import protocol as p
from agent.multiplex import Multiplexer, Stream, WindowedStream
from workspaces.controlplane.transport import TunnelUnavailable

logger = logging.getLogger(__name__)

# How long a remote caller waits for the tunnel's process to acknowledge an OPEN.
REMOTE_OPEN_TIMEOUT = 5.0


class StreamLike(Protocol):
    close_code: int | None

    @property
    def send_credit(self) -> int: ...

    async def read(self) -> bytes: ...
    async def read_all(self) -> bytes: ...
    async def write(self, data: bytes) -> None: ...
    async def close(self, code: int = p.CLOSE_NORMAL, reason: str = "") -> None: ...


@dataclass
class LocalTunnel:
    """A tunnel held by a consumer of this process."""

    cluster_id: int
    channel_name: str
    mux: Multiplexer
    consumer: Any = field(repr=False)


# cluster id → the tunnel this process holds for it.
LOCAL_TUNNELS: dict[int, LocalTunnel] = {}


async def open_stream(
    *, cluster_id: int, tunnel_channel: str, request: dict[str, Any]
) -> StreamLike:
    """Open a stream to a cluster's agent, in-process when possible.

    `tunnel_channel` is the cluster's `Cluster.tunnel_channel` as last recorded; it is
    used only when this process does not hold the tunnel. Raises `TunnelUnavailable`.
    """
    local = LOCAL_TUNNELS.get(cluster_id)
    if local is not None:
        try:
            return await local.mux.open_stream(request)
        except p.StreamClosed as exc:  # the tunnel's socket failed under us
            raise TunnelUnavailable("the cluster's tunnel is closing") from exc
    if not tunnel_channel:
        raise TunnelUnavailable("the cluster's agent is not connected")
    return await RemoteStream.open(tunnel_channel, request)


class RemoteStream(WindowedStream):
    """Caller side of a stream whose tunnel lives in another portal process.

    Its DATA, CREDIT and CLOSE travel as channel-layer messages to the tunnel's consumer,
    where a `RelayPump` splices them onto the real stream; a reader task feeds what
    comes back. A full channel ends the stream (`CLOSE_FLOW_CONTROL`), never drops bytes.
    """

    def __init__(self, tunnel_channel: str, reply_channel: str) -> None:
        super().__init__()
        self.tunnel_channel = tunnel_channel
        self.reply_channel = reply_channel
        self.layer = get_channel_layer()
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_loop(), name=f"remote-{reply_channel}")

    @classmethod
    async def open(cls, tunnel_channel: str, request: dict[str, Any]) -> RemoteStream:
        layer = get_channel_layer()
        if layer is None:
            raise TunnelUnavailable("no channel layer to reach the tunnel's process")
        # The default prefix: channels-redis reads every specific channel of a process
        # through one shared list, and another prefix would starve behind it.
        reply = await layer.new_channel()
        stream = cls(tunnel_channel, reply)
        try:
            await stream._send({"type": "relay.open", "request": request})
            await asyncio.wait_for(asyncio.shield(stream._opened), REMOTE_OPEN_TIMEOUT)
        except (TimeoutError, ChannelFull, p.StreamClosed) as exc:
            await stream._stop()
            raise TunnelUnavailable("the process holding the tunnel did not answer") from exc
        return stream

    async def _send_data(self, chunk: bytes) -> None:
        await self._send({"type": "relay.data", "data": chunk})

    async def _send_credit(self, granted: int) -> None:
        await self._send({"type": "relay.credit", "granted": granted})

    async def _send_close(self, code: int, reason: str) -> None:
        with contextlib.suppress(ChannelFull):
            await self._send({"type": "relay.close", "code": code, "reason": reason[:200]})

    async def close(self, code: int = p.CLOSE_NORMAL, reason: str = "") -> None:
        await super().close(code, reason)
        if asyncio.current_task() is not self._reader:
            await self._stop()

    async def _send(self, message: dict[str, Any]) -> None:
        message["reply"] = self.reply_channel
        try:
            await self.layer.send(self.tunnel_channel, message)
        except ChannelFull:
            self._end(p.CLOSE_FLOW_CONTROL)
            raise

    def _end(self, code: int) -> bool:
        ended = super()._end(code)
        if ended and not self._opened.done():
            self._opened.set_exception(p.StreamClosed("closed before it opened"))
            self._opened.exception()  # retrieved: nobody else may be waiting
        return ended

    async def _stop(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await self.layer.receive(self.reply_channel)
                kind = message.get("type")
                if kind == "relay.opened":
                    if not self._opened.done():
                        self._opened.set_result(None)
                elif kind == "relay.data":
                    try:
                        self._on_data(message["data"])
                    except p.ProtocolError:
                        await self.close(p.CLOSE_FLOW_CONTROL, "peer overdrew credit")
                        return
                elif kind == "relay.credit":
                    self._on_credit(int(message["granted"]))
                elif kind == "relay.close":
                    self._end(int(message.get("code", p.CLOSE_INTERNAL)))
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("remote stream %s failed", self.reply_channel)
            self._end(p.CLOSE_INTERNAL)


class RelayPump:
    """Tunnel side of a `RemoteStream`: splices a channel-layer peer onto a tunnel stream.

    Bytes from the agent are forwarded only while the remote caller has granted credit;
    bytes from the caller are queued (bounded by the credit this pump granted) and
    written to the agent as its credit allows. Either side closing ends both.
    """

    def __init__(self, stream: Stream, reply_channel: str) -> None:
        self.stream = stream
        self.reply_channel = reply_channel
        self.layer = get_channel_layer()
        self._to_caller = p.SendWindow()
        self._from_caller = p.ReceiveWindow()
        self._outbound: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._agent_to_caller()),
            asyncio.create_task(self._caller_to_agent()),
        ]

    async def finished(self) -> None:
        """Wait until the agent side of the stream has ended."""
        await asyncio.gather(self._tasks[0], return_exceptions=True)

    def on_message(self, message: dict[str, Any]) -> None:
        """Handle one message from the caller; never blocks the consumer's loop."""
        kind = message.get("type")
        if kind == "relay.data":
            data = message["data"]
            try:
                self._from_caller.received(len(data))
            except p.ProtocolError:
                self._outbound.put_nowait(None)
                self._spawn(self.stream.close(p.CLOSE_FLOW_CONTROL, "credit overdraw"))
                return
            self._outbound.put_nowait(data)
        elif kind == "relay.credit":
            self._to_caller.grant(int(message["granted"]))
        elif kind == "relay.close":
            self._outbound.put_nowait(None)
            self._spawn(self.stream.close(int(message.get("code", 0))))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)

    async def _agent_to_caller(self) -> None:
        try:
            while chunk := await self.stream.read():
                view = memoryview(chunk)
                while view:
                    taken = await self._to_caller.acquire(len(view))
                    await self._reply({"type": "relay.data", "data": bytes(view[:taken])})
                    view = view[taken:]
            code = self.stream.close_code if self.stream.close_code is not None else 0
            await self._reply({"type": "relay.close", "code": code})
        except (p.StreamClosed, ChannelFull):
            await self.stream.close(p.CLOSE_FLOW_CONTROL, "caller fell behind")
        finally:
            self._outbound.put_nowait(None)

    async def _caller_to_agent(self) -> None:
        while (chunk := await self._outbound.get()) is not None:
            try:
                await self.stream.write(chunk)
            except p.StreamClosed:
                return
            grant = self._from_caller.delivered(len(chunk))
            if grant:
                try:
                    await self._reply({"type": "relay.credit", "granted": grant})
                except ChannelFull:
                    # A grant that never arrives would stall the caller for good: end the
                    # stream with a reason instead (DESIGN §3, never drop).
                    await self.stream.close(p.CLOSE_FLOW_CONTROL, "caller's channel is full")
                    return

    async def _reply(self, message: dict[str, Any]) -> None:
        await self.layer.send(self.reply_channel, message)

    async def aclose(self) -> None:
        self._to_caller.abort()
        self._outbound.put_nowait(None)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
