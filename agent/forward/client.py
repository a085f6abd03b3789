"""HTTP/1.1 to the app in a workspace: request heads, response heads and bodies, keep-alive.

Hand-written on asyncio streams; nothing here knows about tunnel streams or records.
Guarantees:

* `request_head` writes the method, path and headers it is given, with the agent's own
  body framing: the request's ``Content-Length`` when it has one (several different
  ones, or one that is not a number, are a ``bad_request``), else chunked when a body
  follows.
* `read_response_head` skips informational answers (1xx but 101), reads at most
  `MAX_RESPONSE_HEAD` bytes of head (the limit the pool's connections are opened with)
  and turns every failure into a `ForwardError`
  (``upstream_timeout``, ``upstream_unavailable``, ``upstream_protocol_error``), except
  a reused connection closed before any answer: `Retry`, the request may be sent again.
* `read_body` reads at most `BODY_CHUNK` bytes at a time and only when asked for more,
  so a slow reader throttles the app.
* `ConnectionPool` keeps at most `IDLE_CONNECTIONS_PER_PORT` idle connections per port,
  none longer than `IDLE_CONNECTION_TTL` seconds.

Why not h11 (pure-Python, well kept): measured with ``bench/http_client.py`` (loopback,
requests one after the other on one kept-alive connection, the app in another process
on another CPU; best of 3 rounds, two runs; Python 3.11.7, h11 0.16.0), h11 costs about
1.5 times the client CPU per request for the same work (the same ``str`` headers in and
out):

* 1 KiB with ``Content-Length``: 115 µs and 5,700-5,800 req/s here; 175-195 µs and
  3,900-4,100 req/s with h11;
* 1 MiB chunked (16 KiB chunks): 1,220-1,320 µs and 710-750 req/s here; 1,900-1,960 µs
  and 480-490 req/s with h11.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from agent import protocol as p
from agent.forward.request import TOKEN, ForwardError, Upstream, not_answering, not_listening

BODY_CHUNK: Final = p.MAX_PAYLOAD - p.RECORD_HEADER.size
"""Body bytes per record: one record fills one DATA frame exactly."""
MAX_RESPONSE_HEAD: Final = 64 * 1024
IDLE_CONNECTIONS_PER_PORT: Final = 16
IDLE_CONNECTION_TTL: Final = 30.0
LAST_CHUNK: Final = b"0\r\n\r\n"
"""The end of a chunked body (no trailers)."""


class Retry(Exception):
    """A reused keep-alive connection turned out to be closed before any answer."""


@dataclass
class Connection:
    """One connection to a loopback port of the workspace."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    key: tuple[str, int]
    reused: bool = False
    idle_since: float = 0.0

    def usable(self) -> bool:
        """False once either side has closed."""
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        """Close the connection (it is never reused)."""
        self.writer.close()


class ConnectionPool:
    """Idle keep-alive connections by workspace and port; expired ones are closed on acquire."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    async def acquire(self, upstream: Upstream, *, fresh: bool, timeout: float) -> Connection:
        """An idle connection to ``upstream`` (unless ``fresh``), else a new one."""
        now = time.monotonic()
        for key in list(self._idle):
            alive = []
            for conn in self._idle[key]:
                if now - conn.idle_since < IDLE_CONNECTION_TTL and conn.usable():
                    alive.append(conn)
                else:
                    conn.close()
            self._idle[key] = alive
        idle = self._idle.get(upstream.key)
        if idle and not fresh:
            conn = idle.pop()
            conn.reused = True
            return conn
        try:
            sock = await upstream.connect(timeout)
            reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_RESPONSE_HEAD)
        except TimeoutError:
            raise ForwardError(504, "upstream_timeout", not_answering(upstream.port)) from None
        except OSError:
            raise ForwardError(502, "upstream_unavailable", not_listening(upstream.port)) from None
        return Connection(reader, writer, upstream.key)

    def release(self, conn: Connection) -> None:
        """Keep ``conn`` for the next request after a complete exchange (or close it)."""
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= IDLE_CONNECTIONS_PER_PORT or not conn.usable():
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conn.reused = False
        idle.append(conn)


def request_head(
    method: str, path: str, headers: list[tuple[str, str]], has_body: bool
) -> tuple[bytes, bool]:
    """The request line and headers for the app, and whether the body must be chunked."""
    lengths = [v for n, v in headers if n.lower() == "content-length"]
    if len(set(lengths)) > 1 or (lengths and not lengths[0].isdigit()):
        raise ForwardError(400, "bad_request", "invalid Content-Length")
    headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
    chunked = False
    if lengths:
        headers.append(("Content-Length", lengths[0]))
    elif has_body:
        headers.append(("Transfer-Encoding", "chunked"))
        chunked = True
    lines = [f"{method} {path} HTTP/1.1"] + [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace"), chunked


def chunk(payload: bytes) -> bytes:
    """``payload`` as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)


class Framing(enum.Enum):
    """How the body of a response is delimited."""

    NONE = "none"
    """No body: a ``HEAD`` request, or status 204 or 304."""
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_EOF = "until-eof"
    """Neither length nor chunks: the body ends with the connection."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """The status and headers of a response, and how its body is framed."""

    status: int
    headers: list[tuple[str, str]]
    keep_alive: bool
    """The connection may serve another request once the body is read."""
    framing: Framing
    length: int = 0
    """The body's size when `framing` is `Framing.LENGTH`."""


async def read_response_head(
    conn: Connection, method: str, port: int, timeout: float
) -> ResponseHead:
    """The app's final response head to a ``method`` request; its body is left unread."""
    status, version, headers = await _read_head(conn, port, timeout)
    lower = [(n.lower(), v) for n, v in headers]
    connection = ",".join(v for n, v in lower if n == "connection").lower()
    keep_alive = ("close" not in connection) and (
        version == "HTTP/1.1" or "keep-alive" in connection
    )
    if method == "HEAD" or status in (204, 304):
        return ResponseHead(status, headers, keep_alive, Framing.NONE)
    encoding = ",".join(v for n, v in lower if n == "transfer-encoding").lower()
    if "chunked" in encoding:
        return ResponseHead(status, headers, keep_alive, Framing.CHUNKED)
    lengths = {v.strip() for n, v in lower if n == "content-length"}
    if lengths:
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise ForwardError(502, "upstream_protocol_error", "Invalid Content-Length.")
        return ResponseHead(status, headers, keep_alive, Framing.LENGTH, int(next(iter(lengths))))
    return ResponseHead(status, headers, False, Framing.UNTIL_EOF)


async def read_exact(reader: asyncio.StreamReader, length: int) -> bytes:
    """Exactly ``length`` bytes of a body (``upstream_protocol_error`` if it is cut)."""
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ForwardError(502, "upstream_protocol_error", "The app cut its response.") from None


def read_body(reader: asyncio.StreamReader, head: ResponseHead) -> AsyncIterator[bytes]:
    """The body's bytes, `BODY_CHUNK` at most at a time; a cut body raises StreamClosed."""
    if head.framing is Framing.CHUNKED:
        return _chunked_body(reader)
    if head.framing is Framing.UNTIL_EOF:
        return _until_eof(reader)
    return _sized_body(reader, head.length)  # no body at all: a length of 0


async def _read_head(
    conn: Connection, port: int, timeout: float
) -> tuple[int, str, list[tuple[str, str]]]:
    while True:
        try:
            async with asyncio.timeout(timeout):
                raw = await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise ForwardError(504, "upstream_timeout", not_answering(port)) from None
        except asyncio.IncompleteReadError as exc:
            if conn.reused and not exc.partial:
                raise Retry from None
            raise ForwardError(
                502, "upstream_unavailable", f"The app on port {port} closed the connection."
            ) from None
        except (asyncio.LimitOverrunError, OSError) as exc:
            raise ForwardError(502, "upstream_protocol_error", str(exc)) from None
        status, version, headers = _parse_head(raw)
        if status >= 200 or status == 101:
            return status, version, headers
        # 1xx informational answers (100 Continue, 103 Early Hints) are not forwarded.


def _parse_head(raw: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ForwardError(502, "upstream_protocol_error", "The app did not answer HTTP/1.x.")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not TOKEN.match(name):
            raise ForwardError(502, "upstream_protocol_error", "The app sent an invalid header.")
        headers.append((name, value.strip()))
    return int(parts[1]), parts[0], headers


async def _sized_body(reader: asyncio.StreamReader, length: int) -> AsyncIterator[bytes]:
    remaining = length
    while remaining:
        data = await reader.read(min(remaining, BODY_CHUNK))
        if not data:
            raise p.StreamClosed("the app cut its response")
        remaining -= len(data)
        yield data


async def _until_eof(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while data := await reader.read(BODY_CHUNK):
        yield data


async def _chunked_body(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    try:
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers are dropped
                return
            async for data in _sized_body(reader, size):
                yield data
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("chunk not terminated by CRLF")
    except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise p.StreamClosed("the app sent a malformed chunked body") from None
