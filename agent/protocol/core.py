"""Frames, text messages, RPC bodies and credit windows of the tunnel (see the package)."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

HEADER: Final = struct.Struct("!BII")

OPEN: Final = 1
DATA: Final = 2
CLOSE: Final = 3
CREDIT: Final = 4
FRAME_TYPES: Final = frozenset({OPEN, DATA, CLOSE, CREDIT})
BATCH: Final = 5
"""Header type of a binary message that carries several frames (see `batch_message`)."""
BATCH_LENGTH: Final = struct.Struct("!I")

MAX_PAYLOAD: Final = 64 * 1024
"""Largest DATA (and OPEN) payload in bytes."""
MAX_CLOSE_REASON: Final = 1024
"""Largest CLOSE payload: an optional UTF-8 reason for logs."""
MAX_FRAME: Final = HEADER.size + MAX_PAYLOAD
MAX_BATCH: Final = 256 * 1024
"""Largest binary message: a single frame, or a BATCH of frames, in bytes."""
MAX_MESSAGE: Final = 1024 * 1024
"""Largest text message in bytes once UTF-8 encoded (events carry environments)."""
MAX_RPC_BODY: Final = 8 * 1024 * 1024
"""Largest request body of an RPC, in bytes (a file the Files tab saves: 5 MiB at most)."""
INITIAL_WINDOW: Final = 256 * 1024
"""Credit each side starts with, per stream and per direction."""
MAX_WINDOW: Final = 2**31 - 1
"""Credit a sender may hold at once; more means the peer is misbehaving."""
MAX_STREAM_ID: Final = 2**32 - 1

CLOSE_NORMAL: Final = 0
CLOSE_PROTOCOL_ERROR: Final = 1
CLOSE_FLOW_CONTROL: Final = 2
CLOSE_UNKNOWN_STREAM: Final = 3
CLOSE_REFUSED: Final = 4
CLOSE_INTERNAL: Final = 5
CLOSE_TIMEOUT: Final = 6

STREAM_KINDS: Final = frozenset({"rpc", "shell", "logs", "http", "websocket"})
MESSAGE_TYPES: Final = frozenset({"hello", "ping", "pong", "event"})
EVENT_UPDATED: Final = "environment.updated"
EVENT_DELETED: Final = "environment.deleted"
TUNNEL_CLOSE_REVOKED: Final = 4403
"""WebSocket close code of a live tunnel whose agent token was rotated or whose cluster
was deleted: the agent must be restarted with a new token (it keeps retrying meanwhile)."""


class ProtocolError(Exception):
    """Malformed or forbidden input; ``code`` is the CLOSE code to answer with.

    ``stream`` is the stream id when the frame header could be read (so the
    receiver can close just that stream), else ``None`` (drop the tunnel).
    """

    def __init__(self, code: int, reason: str, *, stream: int | None = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.stream = stream

    def __str__(self) -> str:
        return f"protocol error {self.code}: {self.reason}"


class StreamClosed(Exception):
    """The stream ended (CLOSE sent or received, or the tunnel dropped)."""


class RpcError(Exception):
    """A failure the caller may show: a machine-readable ``code`` and a ``message``.

    It is both ends of one RPC error: the agent raises it (as
    ``agent.runtimes.RuntimeFailure``, the same class) and answers ``{"ok": false,
    "error": {"code", "message"}}``; `decode_rpc_response` raises it again on the portal
    side. The message never contains secrets or tracebacks.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded binary frame. ``payload`` is always ``bytes``; an OPEN decoded by
    `decode_frame` also carries its parsed ``request`` (validated once, parsed once)."""

    type: int
    stream: int
    arg: int
    payload: bytes = b""
    request: dict[str, Any] | None = field(default=None, compare=False, repr=False)


# -- frames ---------------------------------------------------------------------------------


def _check_frame(frame_type: int, stream: int, arg: int, payload: bytes) -> Any:
    """Raise ProtocolError unless the fields form a frame the peer accepts; an OPEN's
    parsed request is returned."""
    if not 0 < stream <= MAX_STREAM_ID:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "stream id out of range")
    if frame_type not in FRAME_TYPES:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown frame type {frame_type}", stream=stream)
    if not 0 <= arg <= 0xFFFFFFFF:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "arg out of range", stream=stream)
    size = len(payload)
    if frame_type in (OPEN, DATA) and size > MAX_PAYLOAD:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"payload of {size} bytes", stream=stream)
    if frame_type == OPEN:
        return _parse_open(payload, stream)
    if frame_type == CLOSE:
        if size > MAX_CLOSE_REASON:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "CLOSE reason too long", stream=stream)
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(
                CLOSE_PROTOCOL_ERROR, "CLOSE reason is not UTF-8", stream=stream
            ) from None
    elif frame_type == CREDIT:
        if size:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "CREDIT with payload", stream=stream)
        if arg == 0:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "CREDIT of zero bytes", stream=stream)
    return None


def encode_frame(frame_type: int, stream: int, arg: int = 0, payload: bytes = b"") -> bytes:
    """Encode one frame; raises ProtocolError if the peer would reject it."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "payload must be bytes")
    payload = bytes(payload)
    _check_frame(frame_type, stream, arg, payload)
    return HEADER.pack(frame_type, stream, arg) + payload


def decode_frame(data: bytes | bytearray | memoryview) -> Frame:
    """Decode and validate one binary message; only ProtocolError can escape."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "frame must be binary")
    data = bytes(data)
    if len(data) < HEADER.size:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"short frame of {len(data)} bytes")
    frame_type, stream, arg = HEADER.unpack_from(data)
    payload = data[HEADER.size :]
    request = _check_frame(frame_type, stream, arg, payload)
    return Frame(frame_type, stream, arg, payload, request)


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(data: bytes | str) -> Any:
    """Strict JSON (no NaN/Infinity); raises ValueError on anything malformed."""
    try:
        return json.loads(data, parse_constant=_json_constant)
    except (ValueError, RecursionError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(str(exc)) from None


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"not JSON-serialisable: {exc}") from None


def _parse_open(payload: bytes, stream: int) -> dict[str, Any]:
    try:
        obj = _loads(payload)
    except ValueError:
        raise ProtocolError(
            CLOSE_PROTOCOL_ERROR, "OPEN payload is not JSON", stream=stream
        ) from None
    if not isinstance(obj, dict):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "OPEN payload is not an object", stream=stream)
    if obj.get("kind") not in STREAM_KINDS:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "OPEN has no valid kind", stream=stream)
    return obj


def decode_open(frame: Frame) -> dict[str, Any]:
    """The JSON object of an OPEN frame (``kind`` guaranteed in STREAM_KINDS)."""
    if frame.type != OPEN:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "not an OPEN frame", stream=frame.stream)
    if frame.request is not None:
        return frame.request
    return _parse_open(frame.payload, frame.stream)


def open_frame(stream: int, obj: dict[str, Any]) -> bytes:
    """OPEN frame carrying ``obj`` (must have a valid ``kind``).

    Validates the object itself rather than re-parsing the JSON it just wrote: an OPEN
    is sent for every preview request, so this is a hot path.
    """
    if not 0 < stream <= MAX_STREAM_ID:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "stream id out of range")
    if not isinstance(obj, dict) or obj.get("kind") not in STREAM_KINDS:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "OPEN has no valid kind", stream=stream)
    payload = _dumps(obj).encode()
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"payload of {len(payload)} bytes", stream=stream)
    return HEADER.pack(OPEN, stream, 0) + payload


def data_frame(stream: int, payload: bytes) -> bytes:
    """DATA frame; ``payload`` is at most MAX_PAYLOAD bytes."""
    return encode_frame(DATA, stream, 0, payload)


def close_frame(stream: int, code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    """CLOSE frame with ``code`` and an optional short reason (truncated to fit)."""
    raw = reason.encode("utf-8")[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode()
    return encode_frame(CLOSE, stream, code, raw)


def credit_frame(stream: int, granted: int) -> bytes:
    """CREDIT frame granting ``granted`` (> 0) more bytes to the peer."""
    return encode_frame(CREDIT, stream, granted)


def chunks(data: bytes, size: int = MAX_PAYLOAD) -> list[bytes]:
    """Split ``data`` into DATA-sized pieces (no piece for empty input)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- batches --------------------------------------------------------------------------------


def batch_message(frames: list[bytes]) -> bytes:
    """One binary message carrying ``frames`` (already encoded, in order).

    Layout: a header with type BATCH, stream 0 and arg = the number of frames, then
    each frame as ``length u32`` + frame. A single frame is sent as it is, without a
    batch around it. The sender keeps the whole message within MAX_BATCH.
    """
    if len(frames) == 1:
        return frames[0]
    parts = [HEADER.pack(BATCH, 0, len(frames))]
    for frame in frames:
        parts.append(BATCH_LENGTH.pack(len(frame)))
        parts.append(frame)
    return b"".join(parts)


def batch_size(frame: bytes) -> int:
    """Bytes ``frame`` takes inside a batch."""
    return BATCH_LENGTH.size + len(frame)


def split_message(data: bytes | bytearray | memoryview) -> list[bytes]:
    """The frames of one binary message: the message itself, or a BATCH's frames.

    Frames are returned undecoded (`decode_frame` validates each). Raises ProtocolError
    (``stream=None``: drop the tunnel) if the message exceeds MAX_BATCH or a batch is
    malformed — a count that does not match, a length past the end, a frame shorter
    than a header or longer than MAX_FRAME, or bytes after the last frame.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "frame must be binary")
    data = bytes(data)
    if len(data) > MAX_BATCH:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"binary message of {len(data)} bytes")
    if len(data) < HEADER.size or data[0] != BATCH:
        return [data]
    _, stream, count = HEADER.unpack_from(data)
    if stream != 0 or count < 1:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "malformed batch header")
    frames = []
    offset = HEADER.size
    end = len(data)
    for _ in range(count):
        if offset + BATCH_LENGTH.size > end:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "batch ends inside a length")
        (size,) = BATCH_LENGTH.unpack_from(data, offset)
        offset += BATCH_LENGTH.size
        if not HEADER.size <= size <= MAX_FRAME or offset + size > end:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "batch frame length out of range")
        frames.append(data[offset : offset + size])
        offset += size
    if offset != end:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "bytes after the last frame of a batch")
    return frames


# -- text messages --------------------------------------------------------------------------


def encode_message(obj: dict[str, Any]) -> str:
    """Encode a text message; ``obj`` must be an object with a known ``type``."""
    if not isinstance(obj, dict) or obj.get("type") not in MESSAGE_TYPES:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "message needs a known type")
    text = _dumps(obj)
    if len(text.encode()) > MAX_MESSAGE:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "message too large")
    return text


def decode_message(text: str) -> dict[str, Any]:
    """Decode a text message: a JSON object with a string ``type``.

    Unknown types are returned as-is so newer peers stay compatible; callers
    ignore what they do not understand.
    """
    if not isinstance(text, str):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "message must be text")
    if len(text) > MAX_MESSAGE:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "message too large")
    try:
        obj = _loads(text)
    except ValueError:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "message is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "message is not an object")
    if not isinstance(obj.get("type"), str):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "message has no type")
    return obj


def hello_message(
    *,
    version: str,
    runtime: str,
    capabilities: list[str],
    environments: int,
    isolation: Mapping[str, str],
) -> dict[str, Any]:
    """First message the agent sends on every connection.

    ``isolation`` says how the runtime keeps workspaces apart (``sandbox``, ``network``,
    ``limits``; the values of `agent.protocol.ISOLATION`).
    """
    return {
        "type": "hello",
        "version": version,
        "runtime": runtime,
        "capabilities": list(capabilities),
        "environments": environments,
        "isolation": dict(isolation),
    }


def ping_message(ts: float) -> dict[str, Any]:
    return {"type": "ping", "ts": ts}


def pong_message(ts: Any) -> dict[str, Any]:
    """Answer to a ping, echoing its ``ts``."""
    return {"type": "pong", "ts": ts}


def event_message(event: str, environment: dict[str, Any]) -> dict[str, Any]:
    """Agent → portal notification that an environment changed or disappeared."""
    if event not in (EVENT_UPDATED, EVENT_DELETED):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown event {event!r}")
    return {"type": "event", "event": event, "environment": environment}


# -- RPC ------------------------------------------------------------------------------------


def rpc_request(
    method: str, params: dict[str, Any] | None = None, *, body: int | None = None
) -> dict[str, Any]:
    """OPEN payload of an RPC stream; the response comes back as DATA then CLOSE.

    ``body`` is the length of a request body that follows as DATA (raw bytes that would
    not fit an OPEN, such as a file's content); ``None`` when the request has none.
    """
    if not isinstance(method, str) or not method:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RPC method must be a non-empty string")
    request: dict[str, Any] = {"kind": "rpc", "method": method, "params": dict(params or {})}
    if body is not None:
        request["body"] = rpc_body_length(body)
    return request


def rpc_body_length(value: Any) -> int:
    """``value`` if it is a valid RPC request body length (0..MAX_RPC_BODY), else
    ProtocolError."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_RPC_BODY:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"an RPC body is 0 to {MAX_RPC_BODY} bytes long")
    return value


def encode_rpc_result(result: Any) -> bytes:
    """Body of a successful RPC response."""
    return _dumps({"ok": True, "result": result}).encode()


def encode_rpc_error(code: str, message: str) -> bytes:
    """Body of a failed RPC response."""
    return _dumps({"ok": False, "error": {"code": code, "message": message}}).encode()


def decode_rpc_response(body: bytes) -> Any:
    """Result of a concatenated RPC response body; raises RpcError if it failed.

    A body that is not a well-formed response raises ProtocolError.
    """
    try:
        obj = _loads(bytes(body))
    except (ValueError, TypeError):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RPC response is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RPC response has no ok flag")
    if obj["ok"]:
        return obj.get("result")
    error = obj.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RPC error has no code")
    raise RpcError(error["code"], str(error.get("message", "")))


# -- flow control ---------------------------------------------------------------------------


class SendWindow:
    """Credit the peer granted us for one stream: how many DATA bytes we may send.

    ``acquire`` waits for credit, so a sender never buffers beyond its window.
    ``consume`` takes credit synchronously and raises ProtocolError
    (CLOSE_FLOW_CONTROL) on overdraw. ``grant`` raises the same if the peer
    grants more than MAX_WINDOW outstanding. ``abort`` makes every waiter raise
    StreamClosed.
    """

    def __init__(self, initial: int = INITIAL_WINDOW) -> None:
        self.available = initial
        self._changed = asyncio.Event()
        self._closed = False

    def grant(self, n: int) -> None:
        if n <= 0 or self.available + n > MAX_WINDOW:
            raise ProtocolError(CLOSE_FLOW_CONTROL, f"invalid credit grant of {n} bytes")
        self.available += n
        self._changed.set()

    def consume(self, n: int) -> None:
        if n < 0 or n > self.available:
            raise ProtocolError(
                CLOSE_FLOW_CONTROL, f"{n} bytes exceed the {self.available} bytes of credit"
            )
        self.available -= n

    async def acquire(self, wanted: int) -> int:
        """Wait until some credit is available, take up to ``wanted`` bytes of it.

        Returns the number of bytes taken (1..wanted). Raises StreamClosed once
        aborted.
        """
        if wanted <= 0:
            raise ValueError("wanted must be positive")
        while True:
            if self._closed:
                raise StreamClosed("stream closed while waiting for credit")
            if self.available > 0:
                taken = min(wanted, self.available)
                self.available -= taken
                return taken
            self._changed.clear()
            await self._changed.wait()

    def abort(self) -> None:
        self._closed = True
        self._changed.set()


class ReceiveWindow:
    """Credit we granted the peer for one stream, and when to grant more.

    ``received(n)`` raises ProtocolError(CLOSE_FLOW_CONTROL) when the peer
    sends more than it was granted. ``delivered(n)`` records that ``n`` bytes
    left our buffers and returns how many bytes of credit to grant back now:
    0 until at least half a window is pending, so CREDIT frames are batched.
    """

    def __init__(self, window: int = INITIAL_WINDOW) -> None:
        self.window = window
        self.remaining = window
        self.buffered = 0
        self._pending = 0

    def received(self, n: int) -> None:
        if n > self.remaining:
            raise ProtocolError(
                CLOSE_FLOW_CONTROL, f"peer sent {n} bytes with {self.remaining} of credit"
            )
        self.remaining -= n
        self.buffered += n

    def delivered(self, n: int) -> int:
        if n < 0 or n > self.buffered:
            raise ValueError(f"cannot deliver {n} of {self.buffered} buffered bytes")
        self.buffered -= n
        self._pending += n
        if self._pending < self.window // 2:
            return 0
        grant, self._pending = self._pending, 0
        self.remaining += grant
        return grant


__all__ = [
    "BATCH",
    "BATCH_LENGTH",
    "CLOSE",
    "CLOSE_FLOW_CONTROL",
    "CLOSE_INTERNAL",
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_REFUSED",
    "CLOSE_TIMEOUT",
    "CLOSE_UNKNOWN_STREAM",
    "CREDIT",
    "DATA",
    "EVENT_DELETED",
    "EVENT_UPDATED",
    "FRAME_TYPES",
    "HEADER",
    "INITIAL_WINDOW",
    "MAX_BATCH",
    "MAX_CLOSE_REASON",
    "MAX_FRAME",
    "MAX_MESSAGE",
    "MAX_PAYLOAD",
    "MAX_RPC_BODY",
    "MAX_STREAM_ID",
    "MAX_WINDOW",
    "MESSAGE_TYPES",
    "OPEN",
    "STREAM_KINDS",
    "TUNNEL_CLOSE_REVOKED",
    "Frame",
    "ProtocolError",
    "ReceiveWindow",
    "RpcError",
    "SendWindow",
    "StreamClosed",
    "batch_message",
    "batch_size",
    "chunks",
    "close_frame",
    "credit_frame",
    "data_frame",
    "decode_frame",
    "decode_message",
    "decode_open",
    "decode_rpc_response",
    "encode_frame",
    "encode_message",
    "encode_rpc_error",
    "encode_rpc_result",
    "event_message",
    "hello_message",
    "open_frame",
    "ping_message",
    "pong_message",
    "rpc_body_length",
    "rpc_request",
    "split_message",
]
