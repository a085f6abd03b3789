"""Stream multiplexer over one tunnel: routes frames to per-stream objects.

Guarantees (for either side of the tunnel; ``role`` selects who opens streams):

* Memory per stream is bounded by the credit window: inbound DATA beyond the
  credit we granted closes that stream with CLOSE_FLOW_CONTROL; outbound
  :meth:`Stream.write` waits for credit instead of buffering.
* Credit is granted back only after the handler has read the bytes
  (:meth:`Stream.read`), in batches of at least half a window.
* A malformed frame closes only its stream; :meth:`Multiplexer.feed` raises
  :class:`ProtocolError` (with ``stream=None``) only when the header itself is
  unreadable, and the caller should then drop the tunnel.
* A handler failure closes its stream with CLOSE_INTERNAL and is logged; it
  never propagates to the tunnel.
* Frames leave in the order they were sent. The first frame of a turn of the event
  loop leaves at once; the frames sent after it in that turn (or while a send is in
  progress) leave together, as one BATCH message (at most MAX_BATCH bytes): under load,
  one WebSocket message and one system call instead of one per frame, on both sides.
  At most MAX_PENDING bytes wait to be sent; beyond, :meth:`Multiplexer.send`
  waits (the transport's back-pressure reaches the writers).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from agent import protocol as p

logger = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]
StreamHandler = Callable[["Stream", dict[str, Any]], Awaitable[None]]

_RECENTLY_CLOSED = 256
MAX_PENDING = 2 * p.MAX_BATCH
"""Bytes of queued frames beyond which `Multiplexer.send` waits for the transport."""


class WindowedStream(abc.ABC):
    """Ordered bytes both ways under credit-based flow control, ended by a close.

    The shared half of every stream end: reading grants credit back (in batches) only
    for bytes handed to the reader, writing waits for credit instead of buffering. A
    subclass says how DATA, CREDIT and CLOSE reach the peer (`_send_data`,
    `_send_credit`, `_send_close`) and feeds what arrives to `_on_data`/`_on_credit`.
    """

    def __init__(self, window: int = p.INITIAL_WINDOW) -> None:
        self.closed = False
        self.close_code: int | None = None
        """Code of the CLOSE that ended the stream (ours or the peer's)."""
        self._inbound: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._on_end: list[Callable[[], Any]] = []
        self._send_window = p.SendWindow(window)
        self._recv_window = p.ReceiveWindow(window)

    @property
    def send_credit(self) -> int:
        """Bytes `write` can send right now without waiting for credit."""
        return 0 if self.closed else self._send_window.available

    @abc.abstractmethod
    async def _send_data(self, chunk: bytes) -> None:
        """Deliver one DATA chunk (credit already taken) to the peer."""

    @abc.abstractmethod
    async def _send_credit(self, granted: int) -> None:
        """Grant the peer `granted` more bytes."""

    @abc.abstractmethod
    async def _send_close(self, code: int, reason: str) -> None:
        """Tell the peer the stream ended."""

    async def read(self) -> bytes:
        """Next chunk from the peer, or ``b""`` once the stream has ended.

        Reading counts as delivery: credit for these bytes may be granted back.
        """
        item = await self._inbound.get()
        if item is None:
            self._inbound.put_nowait(None)
            return b""
        grant = self._recv_window.delivered(len(item))
        if grant and not self.closed:
            await self._send_credit(grant)
        return item

    async def read_all(self) -> bytes:
        """Everything the peer sends until the stream ends."""
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)

    async def write(self, data: bytes) -> None:
        """Send ``data`` in chunks of at most MAX_PAYLOAD, waiting for credit as needed.

        Raises StreamClosed if the stream ends before everything was sent.
        """
        view = memoryview(bytes(data))
        while view:
            if self.closed:
                raise p.StreamClosed("stream is closed")
            taken = await self._send_window.acquire(min(len(view), p.MAX_PAYLOAD))
            if self.closed:
                raise p.StreamClosed("stream is closed")
            await self._send_data(bytes(view[:taken]))
            view = view[taken:]

    async def close(self, code: int = p.CLOSE_NORMAL, reason: str = "") -> None:
        """End the stream and tell the peer; a no-op if it already ended."""
        if self._end(code):
            await self._send_close(code, reason)

    def call_on_end(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call `callback()` once the stream ends (at once if it has); returns a function
        that cancels the call."""
        if self.closed:
            callback()
            return lambda: None
        self._on_end.append(callback)
        return lambda: self._on_end.remove(callback) if callback in self._on_end else None

    def _end(self, code: int) -> bool:
        """Mark the stream ended; True if this call ended it."""
        if self.closed:
            return False
        self.closed = True
        self.close_code = code
        self._send_window.abort()
        self._inbound.put_nowait(None)
        callbacks, self._on_end = self._on_end, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("stream end callback failed")
        return True

    def _on_data(self, payload: bytes) -> None:
        """Bytes from the peer; ProtocolError(CLOSE_FLOW_CONTROL) if it overdrew credit."""
        self._recv_window.received(len(payload))
        self._inbound.put_nowait(payload)

    def _on_credit(self, granted: int) -> None:
        self._send_window.grant(granted)


class Stream(WindowedStream):
    """One stream of the tunnel: its frames go through the tunnel's multiplexer."""

    def __init__(self, mux: Multiplexer, stream_id: int, request: dict[str, Any]) -> None:
        super().__init__(mux.window)
        self.id = stream_id
        self.request = request
        self.kind: str = request.get("kind", "")
        self._mux = mux

    async def _send_data(self, chunk: bytes) -> None:
        await self._mux.send(p.data_frame(self.id, chunk))

    async def _send_credit(self, granted: int) -> None:
        await self._mux.send(p.credit_frame(self.id, granted))

    async def _send_close(self, code: int, reason: str) -> None:
        await self._mux.send(p.close_frame(self.id, code, reason))

    def _end(self, code: int) -> bool:
        ended = super()._end(code)
        if ended:
            self._mux._forget(self.id)
        return ended


class Multiplexer:
    """Frame router for one tunnel connection.

    ``role="agent"`` accepts OPEN frames with odd ids and runs the handler
    registered for the stream ``kind`` in its own task. ``role="portal"``
    opens streams itself (:meth:`open_stream`, odd ids) and refuses OPEN.
    """

    def __init__(
        self,
        send: Send,
        handlers: Mapping[str, StreamHandler] | None = None,
        *,
        role: Literal["agent", "portal"] = "agent",
        max_streams: int = 1024,
        window: int = p.INITIAL_WINDOW,
    ) -> None:
        self._send_message = send
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flusher: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()
        self._corked = False
        self._broken = False
        self.role = role
        self.window = window
        self._handlers = dict(handlers or {})
        self._max_streams = max_streams
        self._streams: dict[int, Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._recently_closed: collections.deque[int] = collections.deque(maxlen=_RECENTLY_CLOSED)
        self._next_id = 1

    @property
    def streams(self) -> int:
        """Number of open streams."""
        return len(self._streams)

    # -- sending ----------------------------------------------------------------------------

    async def send(self, frame: bytes) -> None:
        """Send one encoded frame to the peer (see the module docstring).

        Adaptive corking: the first frame of a turn of the event loop leaves at once
        (no latency added to a lone keystroke or request); frames sent after it in the
        same turn, or while a send is in progress, are queued and leave together as one
        batch. Raises StreamClosed once the transport failed.
        """
        if self._broken:
            raise p.StreamClosed("the tunnel is gone")
        if not self._corked and not self._pending and not self._sending.locked():
            self._corked = True
            asyncio.get_running_loop().call_soon(self._uncork)
            async with self._sending:
                if not await self._transmit(frame):
                    raise p.StreamClosed("the tunnel is gone")
            return
        while self._pending_size >= MAX_PENDING and not self._broken:
            self._room.clear()
            await self._room.wait()
        if self._broken:
            raise p.StreamClosed("the tunnel is gone")
        self._pending.append(frame)
        self._pending_size += len(frame)
        self._idle.clear()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="mux-flush")
        self._wakeup.set()

    def _uncork(self) -> None:
        self._corked = False

    async def flush(self) -> None:
        """Wait until every frame sent so far was handed to the transport (or it failed)."""
        await self._idle.wait()
        async with self._sending:
            pass

    async def _flush_forever(self) -> None:
        try:
            while not self._broken:
                await self._wakeup.wait()
                self._wakeup.clear()
                async with self._sending:
                    while self._pending and await self._transmit(self._take_batch()):
                        pass
                self._idle.set()
        finally:
            self._room.set()
            self._idle.set()

    async def _transmit(self, message: bytes) -> bool:
        """Hand one message to the transport; False (and the tunnel marked broken) if it
        failed — the tunnel is then ending, and `aclose` ends every stream."""
        try:
            await self._send_message(message)
        except Exception as exc:  # noqa: BLE001 - any transport failure ends the tunnel
            logger.debug("tunnel send failed: %s", exc)
            self._broken = True
            self._pending.clear()
            self._pending_size = 0
            self._room.set()
            return False
        return True

    def _take_batch(self) -> bytes:
        """Remove the next frames that fit in one message from the queue."""
        pending = self._pending
        size = p.HEADER.size
        count = 0
        for frame in pending:
            needed = p.batch_size(frame)
            if count and size + needed > p.MAX_BATCH:
                break
            size += needed
            count += 1
        frames = pending[:count]
        del pending[:count]
        self._pending_size -= sum(len(f) for f in frames)
        if self._pending_size < MAX_PENDING:
            self._room.set()
        return p.batch_message(frames)

    # -- receiving --------------------------------------------------------------------------

    async def feed(self, data: bytes) -> None:
        """Route one binary message received from the peer (a frame or a batch)."""
        for frame in p.split_message(data):
            await self._feed_frame(frame)

    async def _feed_frame(self, data: bytes) -> None:
        try:
            frame = p.decode_frame(data)
        except p.ProtocolError as exc:
            if exc.stream is None:
                raise
            logger.warning("stream %d: %s", exc.stream, exc.reason)
            await self._close_id(exc.stream, exc.code, exc.reason)
            return
        stream = self._streams.get(frame.stream)
        if frame.type == p.OPEN:
            await self._on_open(frame)
        elif stream is None:
            await self._on_orphan(frame)
        elif frame.type == p.DATA:
            try:
                stream._on_data(frame.payload)
            except p.ProtocolError as exc:
                logger.warning("stream %d: %s", frame.stream, exc.reason)
                await stream.close(exc.code, exc.reason)
        elif frame.type == p.CREDIT:
            try:
                stream._on_credit(frame.arg)
            except p.ProtocolError as exc:
                logger.warning("stream %d: %s", frame.stream, exc.reason)
                await stream.close(exc.code, exc.reason)
        else:
            stream._end(frame.arg)
            if frame.arg != p.CLOSE_NORMAL:
                logger.info(
                    "stream %d closed by peer with code %d %s",
                    frame.stream,
                    frame.arg,
                    frame.payload.decode(errors="replace"),
                )

    async def open_stream(self, request: dict[str, Any]) -> Stream:
        """Open a stream towards the peer (portal role only)."""
        if self.role != "portal":
            raise RuntimeError("only the portal opens streams")
        stream_id = self._next_id
        self._next_id += 2
        stream = Stream(self, stream_id, request)
        self._streams[stream_id] = stream
        await self.send(p.open_frame(stream_id, request))
        return stream

    async def aclose(self) -> None:
        """The tunnel is gone: end every stream silently and cancel handlers."""
        self._broken = True
        self._pending.clear()
        self._pending_size = 0
        for stream in list(self._streams.values()):
            stream._end(p.CLOSE_INTERNAL)
        tasks = list(self._tasks)
        if self._flusher is not None:
            tasks.append(self._flusher)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _on_open(self, frame: p.Frame) -> None:
        stream_id = frame.stream
        if self.role != "agent" or stream_id % 2 == 0:
            await self._refuse(stream_id, p.CLOSE_PROTOCOL_ERROR, "OPEN with a forbidden id")
            return
        existing = self._streams.get(stream_id)
        if existing is not None:
            existing._end(p.CLOSE_PROTOCOL_ERROR)
            await self._refuse(stream_id, p.CLOSE_PROTOCOL_ERROR, "OPEN of a stream in use")
            return
        request = p.decode_open(frame)
        handler = self._handlers.get(request["kind"])
        if handler is None:
            await self._refuse(stream_id, p.CLOSE_REFUSED, f"kind {request['kind']} unsupported")
            return
        if len(self._streams) >= self._max_streams:
            await self._refuse(stream_id, p.CLOSE_REFUSED, "too many streams")
            return
        stream = Stream(self, stream_id, request)
        self._streams[stream_id] = stream
        task = asyncio.create_task(self._run(handler, stream), name=f"stream-{stream_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, handler: StreamHandler, stream: Stream) -> None:
        try:
            await handler(stream, stream.request)
            await stream.close(p.CLOSE_NORMAL)
        except p.StreamClosed:
            logger.debug("stream %d ended before its handler finished", stream.id)
        except asyncio.CancelledError:
            stream._end(p.CLOSE_INTERNAL)
            raise
        except Exception:
            logger.exception("stream %d (%s): handler failed", stream.id, stream.kind)
            try:
                await stream.close(p.CLOSE_INTERNAL, "internal error")
            except Exception:
                logger.debug("stream %d: could not send CLOSE", stream.id, exc_info=True)

    async def _on_orphan(self, frame: p.Frame) -> None:
        """A non-OPEN frame for a stream we do not have."""
        if frame.type != p.DATA or frame.stream in self._recently_closed:
            return  # late CREDIT/CLOSE/DATA racing our own CLOSE: nothing to say
        logger.warning("DATA for unknown stream %d", frame.stream)
        await self.send(p.close_frame(frame.stream, p.CLOSE_UNKNOWN_STREAM, "unknown stream"))
        self._recently_closed.append(frame.stream)

    async def _close_id(self, stream_id: int, code: int, reason: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            await stream.close(code, reason)
        else:
            await self._refuse(stream_id, code, reason)

    async def _refuse(self, stream_id: int, code: int, reason: str) -> None:
        logger.warning("stream %d refused: %s", stream_id, reason)
        await self.send(p.close_frame(stream_id, code, reason))
        self._recently_closed.append(stream_id)

    def _forget(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)
        self._recently_closed.append(stream_id)
