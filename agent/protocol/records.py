"""Records: typed, length-prefixed messages inside a stream (HTTP and WebSocket forwarding)."""

from __future__ import annotations

import struct
from typing import Any, Final

from agent.protocol.core import (
    CLOSE_PROTOCOL_ERROR,
    ProtocolError,
    _dumps,
    _loads,
)

# -- records: messages inside an http / websocket stream -------------------------------------
#
# A stream is a byte pipe: DATA frame boundaries follow the credit window, not the
# writer's calls. ``http`` and ``websocket`` streams therefore carry *records*, each a
# 5-byte header (``type u8``, ``length u32``, big-endian) and its payload, in both
# directions. See docs/agent.md "Preview streams" for the sequence of each kind.

RECORD_HEADER: Final = struct.Struct("!BI")

REC_HEAD: Final = 1
"""JSON object: the response head (http) or the upstream's answer to the upgrade (websocket)."""
REC_BODY: Final = 2
"""Bytes of an HTTP request or response body."""
REC_END: Final = 3
"""End of an HTTP body (empty payload). A response ends with it, then CLOSE(0)."""
REC_TEXT: Final = 4
"""One WebSocket text message (UTF-8)."""
REC_BINARY: Final = 5
"""One WebSocket binary message."""
REC_WS_CLOSE: Final = 6
"""JSON ``{"code": int, "reason": str}``: one side of a WebSocket closed."""
RECORD_TYPES: Final = frozenset({REC_HEAD, REC_BODY, REC_END, REC_TEXT, REC_BINARY, REC_WS_CLOSE})

MAX_RECORD: Final = 16 * 1024 * 1024
"""Largest record payload: bounds a WebSocket message (bodies use 64 KiB records)."""
MAX_HEAD: Final = 256 * 1024
"""Largest REC_HEAD payload (request and response heads, headers included)."""


def encode_record(record_type: int, payload: bytes = b"") -> bytes:
    """One record; raises ProtocolError for an unknown type or an oversized payload."""
    if record_type not in RECORD_TYPES:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown record type {record_type}")
    limit = MAX_HEAD if record_type == REC_HEAD else MAX_RECORD
    if len(payload) > limit:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"record of {len(payload)} bytes")
    return RECORD_HEADER.pack(record_type, len(payload)) + payload


def encode_json_record(record_type: int, obj: dict[str, Any]) -> bytes:
    """A record whose payload is a JSON object (REC_HEAD, REC_WS_CLOSE)."""
    return encode_record(record_type, _dumps(obj).encode())


def decode_json_record(payload: bytes) -> dict[str, Any]:
    """The JSON object of a REC_HEAD / REC_WS_CLOSE payload; ProtocolError otherwise."""
    try:
        obj = _loads(bytes(payload))
    except ValueError:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "record payload is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "record payload is not an object")
    return obj


class RecordReader:
    """Reassembles records from a stream's ``read()`` (which returns ``b""`` at its end).

    ``next()`` returns ``(type, payload)`` or ``None`` once the stream ended between
    records; a stream ending inside a record, an unknown type or an oversized length
    raise ProtocolError. Memory is bounded by one record plus one DATA chunk.
    """

    def __init__(self, read: Any) -> None:
        self._read = read
        self._buffer = bytearray()
        self._ended = False

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            if self._ended:
                return False
            chunk = await self._read()
            if not chunk:
                self._ended = True
                return False
            self._buffer += chunk
        return True

    def ready(self) -> bool:
        """Whether a whole record is already buffered (``next()`` will not wait)."""
        if len(self._buffer) < RECORD_HEADER.size:
            return False
        _, length = RECORD_HEADER.unpack_from(self._buffer)
        return len(self._buffer) >= RECORD_HEADER.size + length

    async def next(self) -> tuple[int, bytes] | None:
        if not await self._fill(RECORD_HEADER.size):
            if self._buffer:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "stream ended inside a record")
            return None
        record_type, length = RECORD_HEADER.unpack_from(self._buffer)
        if record_type not in RECORD_TYPES:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown record type {record_type}")
        if length > (MAX_HEAD if record_type == REC_HEAD else MAX_RECORD):
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"record of {length} bytes")
        end = RECORD_HEADER.size + length
        if not await self._fill(end):
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "stream ended inside a record")
        payload = bytes(self._buffer[RECORD_HEADER.size : end])
        del self._buffer[:end]
        return record_type, payload


__all__ = [
    "MAX_HEAD",
    "MAX_RECORD",
    "RECORD_HEADER",
    "RECORD_TYPES",
    "REC_BINARY",
    "REC_BODY",
    "REC_END",
    "REC_HEAD",
    "REC_TEXT",
    "REC_WS_CLOSE",
    "RecordReader",
    "decode_json_record",
    "encode_json_record",
    "encode_record",
]
