"""Shell streams: terminal records and the OPEN request of a shell."""

from __future__ import annotations

import struct
from typing import Any, Final

from agent.protocol.core import (
    CLOSE_PROTOCOL_ERROR,
    MAX_PAYLOAD,
    ProtocolError,
    _dumps,
    _loads,
)

# -- shell streams --------------------------------------------------------------------------
#
# OPEN payload (see :func:`shell_open_request`):
#   {"kind": "shell", "environment": id, "session": id | null, "command": str | null,
#    "cols": int, "rows": int}
# ``session`` names a detached session to resume; ``command`` (a custom-command or AI tab)
# runs ``bash -lc <command>`` instead of a login shell and is ignored when resuming.
#
# Both directions carry *shell records* (DATA frame boundaries follow credit, not writes):
# a 5-byte header (``type u8``, ``length u32``, big-endian) then the payload.
#   SHELL_DATA     raw bytes: keyboard input (portal → agent), PTY output (agent → portal)
#   SHELL_CONTROL  a JSON object with a ``type``:
#     agent → portal  {"type": "session", "session": id, "resumed": bool}  always first;
#                     {"type": "error", "code": ..., "detail": ...}  refused, then CLOSE;
#                     {"type": "exit", "reason": ..., "code": int | null}  last, then CLOSE.
#     portal → agent  {"type": "resize", "cols": int, "rows": int};
#                     {"type": "terminate"}  end the shell now instead of detaching.
# A resumed session first replays its bounded buffer of recent output, then goes live.

SHELL_RECORD: Final = struct.Struct("!BI")
SHELL_DATA: Final = 0
SHELL_CONTROL: Final = 1
MAX_SHELL_CONTROL: Final = 4096
"""Largest SHELL_CONTROL payload."""
SHELL_CHUNK: Final = MAX_PAYLOAD - SHELL_RECORD.size
"""Largest SHELL_DATA payload: one record then fits one DATA frame."""
MAX_TERMINAL_SIZE: Final = 1000
"""Largest accepted ``cols`` / ``rows``."""
MAX_SHELL_COMMAND: Final = 4096
CLOSE_SHELL_TAKEN_OVER: Final = 16
"""CLOSE code of a shell stream whose session another stream resumed."""


def terminal_dimension(value: Any, name: str) -> int:
    """``value`` if it is a valid terminal width/height, else ProtocolError."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TERMINAL_SIZE:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"{name} must be an integer in 1..1000")
    return value


def shell_open_request(
    environment: str,
    *,
    session: str | None = None,
    command: str | None = None,
    cols: int = 80,
    rows: int = 24,
) -> dict[str, Any]:
    """OPEN payload of a shell stream; raises ProtocolError for invalid values."""
    request = {
        "kind": "shell",
        "environment": environment,
        "session": session,
        "command": command,
        "cols": cols,
        "rows": rows,
    }
    parse_shell_open(request)
    return request


def parse_shell_open(request: dict[str, Any]) -> dict[str, Any]:
    """Validated copy of a shell OPEN payload; raises ProtocolError when malformed."""
    environment = request.get("environment")
    if not isinstance(environment, str) or not 0 < len(environment) <= 100:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "shell OPEN needs an environment id")
    session = request.get("session")
    if session is not None and (not isinstance(session, str) or not 0 < len(session) <= 100):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "shell session must be a short string")
    command = request.get("command")
    if command is not None and (
        not isinstance(command, str) or not command.strip() or len(command) > MAX_SHELL_COMMAND
    ):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "shell command must be non-empty text")
    return {
        "environment": environment,
        "session": session,
        "command": command,
        "cols": terminal_dimension(request.get("cols", 80), "cols"),
        "rows": terminal_dimension(request.get("rows", 24), "rows"),
    }


def shell_data_record(data: bytes) -> bytes:
    """A SHELL_DATA record (at most SHELL_CHUNK bytes keep it within one DATA frame)."""
    return SHELL_RECORD.pack(SHELL_DATA, len(data)) + data


def shell_control_record(obj: dict[str, Any]) -> bytes:
    """A SHELL_CONTROL record carrying ``obj`` (an object with a string ``type``)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "shell control needs a type")
    payload = _dumps(obj).encode()
    if len(payload) > MAX_SHELL_CONTROL:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "shell control message too large")
    return SHELL_RECORD.pack(SHELL_CONTROL, len(payload)) + payload


def decode_shell_control(payload: bytes) -> dict[str, Any]:
    """The object of a SHELL_CONTROL record; ProtocolError unless it has a string type."""
    try:
        obj = _loads(bytes(payload))
    except ValueError:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "shell control is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "shell control has no type")
    return obj


class ShellRecordParser:
    """Incremental parser of shell records: ``feed(chunk)`` returns the complete ones.

    Raises ProtocolError on an unknown type or an oversized length. Memory is bounded
    by one record plus one chunk.
    """

    def __init__(self) -> None:
        self._pending = b""

    @property
    def pending(self) -> int:
        """Bytes of an incomplete record held back."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._pending:
            data = self._pending + data
        records = []
        size, pos, end = SHELL_RECORD.size, 0, len(data)
        while end - pos >= size:
            record_type, length = SHELL_RECORD.unpack_from(data, pos)
            if record_type == SHELL_DATA:
                limit = MAX_PAYLOAD
            elif record_type == SHELL_CONTROL:
                limit = MAX_SHELL_CONTROL
            else:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown shell record {record_type}")
            if length > limit:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"shell record of {length} bytes")
            stop = pos + size + length
            if stop > end:
                break
            records.append((record_type, data[pos + size : stop]))
            pos = stop
        self._pending = data[pos:]
        return records


__all__ = [
    "CLOSE_SHELL_TAKEN_OVER",
    "MAX_SHELL_COMMAND",
    "MAX_SHELL_CONTROL",
    "MAX_TERMINAL_SIZE",
    "SHELL_CHUNK",
    "SHELL_CONTROL",
    "SHELL_DATA",
    "SHELL_RECORD",
    "ShellRecordParser",
    "decode_shell_control",
    "parse_shell_open",
    "shell_control_record",
    "shell_data_record",
    "shell_open_request",
    "terminal_dimension",
]
