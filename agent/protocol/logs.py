"""Logs streams: a workspace's recent output, then its new output as it is written."""

from __future__ import annotations

from typing import Any, Final

from agent.protocol.core import (
    CLOSE_PROTOCOL_ERROR,
    MAX_PAYLOAD,
    ProtocolError,
    _dumps,
    _loads,
)

# -- logs streams ---------------------------------------------------------------------------
#
# OPEN payload (see :func:`logs_open_request`):
#   {"kind": "logs", "environment": id, "tail": int}   ``tail``: 1..MAX_LOG_TAIL lines
#                                                       (DEFAULT_LOG_TAIL when absent)
# Only the agent sends DATA; whatever the portal sends is read and ignored. DATA carries
# *log records* (DATA frame boundaries follow credit, not records): one JSON object per
# line of UTF-8 text, newline-terminated, at most MAX_LOG_RECORD bytes with the newline.
#   {"type": "lines", "lines": [str, ...]}  output lines, oldest first, without line ends;
#                                           a line longer than MAX_LOG_LINE bytes is cut
#                                           there and ends with LOG_LINE_CUT
#   {"type": "live"}                        once, after the tail (the `tail` last lines, at
#                                           most MAX_LOG_TAIL_BYTES): later lines are new
#   {"type": "end", "code": str, "detail": str}    last, then CLOSE(CLOSE_NORMAL, code);
#                                           ``code`` is one of LOG_END_CODES
#   {"type": "error", "code": str, "detail": str}  refused (the only record), then
#                                           CLOSE(CLOSE_REFUSED, code): ``not_found``, or
#                                           ``unsupported`` (a runtime without logs)
# The agent sends new output in bursts — all that was written since its last record, one
# record per MAX_LOG_RECORD bytes — and only as credit allows, so a chatty workspace is
# followed as fast as the reader reads, never faster.

DEFAULT_LOG_TAIL: Final = 200
MAX_LOG_TAIL: Final = 2000
MAX_LOG_TAIL_BYTES: Final = 1024 * 1024
"""At most this many bytes of line text in the tail: its newest lines that fit."""
MAX_LOG_LINE: Final = 8 * 1024
"""Longest line in bytes of UTF-8 (before LOG_LINE_CUT is appended)."""
LOG_LINE_CUT: Final = " […]"
MAX_LOG_RECORD: Final = MAX_PAYLOAD
"""Largest log record with its newline: any record fits one DATA frame."""
LOG_END_DELETED: Final = "environment_deleted"
"""End code: the environment was deleted."""
LOG_END_SHUTDOWN: Final = "agent_shutdown"
"""End code: the agent is shutting down."""
LOG_END_CODES: Final = frozenset({LOG_END_DELETED, LOG_END_SHUTDOWN})
LOG_RECORD_TYPES: Final = frozenset({"lines", "live", "end", "error"})

_LINES_OPEN = b'{"type":"lines","lines":['
_LINES_CLOSE = b"]}\n"


def logs_open_request(environment: str, *, tail: int = DEFAULT_LOG_TAIL) -> dict[str, Any]:
    """OPEN payload of a logs stream; raises ProtocolError for invalid values."""
    request = {"kind": "logs", "environment": environment, "tail": tail}
    parse_logs_open(request)
    return request


def parse_logs_open(request: dict[str, Any]) -> dict[str, Any]:
    """Validated ``environment`` and ``tail`` of a logs OPEN payload; ProtocolError when
    malformed."""
    environment = request.get("environment")
    if not isinstance(environment, str) or not 0 < len(environment) <= 100:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "logs OPEN needs an environment id")
    tail = request.get("tail", DEFAULT_LOG_TAIL)
    if not isinstance(tail, int) or isinstance(tail, bool) or not 1 <= tail <= MAX_LOG_TAIL:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"tail must be an integer in 1..{MAX_LOG_TAIL}")
    return {"environment": environment, "tail": tail}


def clip_log_line(raw: bytes) -> str:
    """One line of output as the stream carries it: without its ``\\r\\n`` or ``\\n``,
    decoded (invalid UTF-8 replaced), cut at MAX_LOG_LINE bytes with LOG_LINE_CUT."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if len(raw) <= MAX_LOG_LINE:
        return raw.decode("utf-8", "replace")
    # A character cut in two is dropped rather than shown as a replacement character.
    return raw[:MAX_LOG_LINE].decode("utf-8", "ignore") + LOG_LINE_CUT


def log_lines_records(lines: list[str]) -> bytes:
    """``lines`` as ``lines`` records, as few as MAX_LOG_RECORD allows (none when empty).

    Raises ProtocolError for a line that cannot fit a record on its own (longer than a
    clipped line can be).
    """
    records: list[bytes] = []
    batch: list[bytes] = []
    size = len(_LINES_OPEN) + len(_LINES_CLOSE)
    for line in lines:
        item = _dumps(line).encode()
        if len(_LINES_OPEN) + len(item) + len(_LINES_CLOSE) > MAX_LOG_RECORD:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "log line too long for a record")
        if batch and size + 1 + len(item) > MAX_LOG_RECORD:
            records.append(_LINES_OPEN + b",".join(batch) + _LINES_CLOSE)
            batch, size = [], len(_LINES_OPEN) + len(_LINES_CLOSE)
        size += len(item) + (1 if batch else 0)
        batch.append(item)
    if batch:
        records.append(_LINES_OPEN + b",".join(batch) + _LINES_CLOSE)
    return b"".join(records)


def log_control_record(obj: dict[str, Any]) -> bytes:
    """A ``live``, ``end`` or ``error`` record."""
    if not isinstance(obj, dict) or obj.get("type") not in LOG_RECORD_TYPES - {"lines"}:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "log control record needs a known type")
    record = _dumps(obj).encode() + b"\n"
    if len(record) > MAX_LOG_RECORD:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "log control record too large")
    return record


class LogRecordParser:
    """Incremental parser of log records: ``feed(chunk)`` returns the complete ones.

    Raises ProtocolError on a record that is not a JSON object of a known type (a
    ``lines`` record must carry a list of strings) or longer than MAX_LOG_RECORD. Memory
    is bounded by one record plus one chunk.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        data = self._pending + data if self._pending else data
        *complete, rest = data.split(b"\n")
        if len(rest) >= MAX_LOG_RECORD:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "log record too long")
        self._pending = rest
        return [self._decode(raw) for raw in complete]

    @staticmethod
    def _decode(raw: bytes) -> dict[str, Any]:
        if len(raw) >= MAX_LOG_RECORD:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "log record too long")
        try:
            obj = _loads(raw)
        except ValueError:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "log record is not JSON") from None
        if not isinstance(obj, dict) or obj.get("type") not in LOG_RECORD_TYPES:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "log record has no known type")
        if obj["type"] == "lines":
            lines = obj.get("lines")
            if not isinstance(lines, list) or not all(isinstance(s, str) for s in lines):
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "log lines must be strings")
        return obj


__all__ = [
    "DEFAULT_LOG_TAIL",
    "LOG_END_CODES",
    "LOG_END_DELETED",
    "LOG_END_SHUTDOWN",
    "LOG_LINE_CUT",
    "LOG_RECORD_TYPES",
    "MAX_LOG_LINE",
    "MAX_LOG_RECORD",
    "MAX_LOG_TAIL",
    "MAX_LOG_TAIL_BYTES",
    "LogRecordParser",
    "clip_log_line",
    "log_control_record",
    "log_lines_records",
    "logs_open_request",
    "parse_logs_open",
]
