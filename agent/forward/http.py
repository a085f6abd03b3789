"""Forwarding of preview traffic: ``http`` and ``websocket`` streams to a workspace port.

The portal opens one stream per browser request (or WebSocket) with the workspace id
and the *declared* port; the agent maps that to the loopback port the runtime
allocated and talks to the app itself. The record sequences are documented in
``docs/agent.md`` ("Preview streams").

Guarantees:

* Only ports the environment declares are reachable, and only while it runs; the
  answer otherwise is a response head with an ``error`` code, never a hang:
  ``workspace_not_found`` (404), ``port_not_declared`` (404),
  ``workspace_not_running`` (409), ``upstream_unavailable`` (502, nothing listens),
  ``upstream_protocol_error`` (502), ``upstream_timeout`` (504).
* Nothing is buffered beyond one 64 KiB chunk: request bodies are written to the app
  as they arrive, response bodies are read from the app only as fast as the stream's
  credit allows, so a slow browser throttles the app. Each chunk is sent as soon as it
  is read (server-sent events arrive one by one).
* The request reaches the app with the browser's ``Host`` and the headers the portal
  forwarded (already stripped of portal credentials); hop-by-hop headers are removed
  again here, and the body framing (``Content-Length`` or chunked) is the agent's own.
* A stream closed by the portal (browser gone) ends the upstream request at once.
  Keep-alive connections to the app are reused only after a complete exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from agent import protocol as p
from agent.multiplex import Stream
from agent.runtimes.base import NOT_FOUND, Runtime, RuntimeFailure

logger = logging.getLogger(__name__)

BODY_CHUNK: Final = p.MAX_PAYLOAD - p.RECORD_HEADER.size
"""Body bytes per record: one record fills one DATA frame exactly."""
MAX_RESPONSE_HEAD: Final = 64 * 1024
IDLE_CONNECTIONS_PER_PORT: Final = 16
IDLE_CONNECTION_TTL: Final = 30.0
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_WS_HANDSHAKE_HEADERS: Final = frozenset(
    {"host", "content-length", "user-agent", "origin"}
    | {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)


class ForwardError(Exception):
    """Why a request cannot reach the app: an HTTP status, a stable code and a sentence."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(code, detail)
        self.status = status
        self.code = code
        self.detail = detail

    def head(self) -> dict[str, Any]:
        return {"status": self.status, "headers": [], "error": self.code, "detail": self.detail}


class _Retry(Exception):
    """A reused keep-alive connection turned out to be closed before any answer."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    port: int
    reused: bool = False
    idle_since: float = 0.0

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


def _headers(raw: Any) -> list[tuple[str, str]]:
    """Validated ``[[name, value], …]`` from an OPEN payload."""
    if not isinstance(raw, list):
        raise ForwardError(400, "bad_request", "headers must be a list")
    result = []
    for item in raw:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise ForwardError(400, "bad_request", "each header is a [name, value] pair")
        name, value = item
        if not (isinstance(name, str) and isinstance(value, str) and _TOKEN.match(name)):
            raise ForwardError(400, "bad_request", "invalid header")
        if _BAD_VALUE.search(value):
            raise ForwardError(400, "bad_request", f"invalid value for header {name}")
        result.append((name, value))
    return result


def _end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers, including those a ``Connection`` header names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP and n.lower() not in named]


def _path(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.startswith("/") or re.search(r"[\s\x00]", raw):
        raise ForwardError(400, "bad_request", "path must be an absolute path without spaces")
    return raw


class Forwarder:
    """Serves ``http`` and ``websocket`` streams for the environments of one runtime."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        connect_timeout: float = 5.0,
        response_timeout: float = 120.0,
    ) -> None:
        self.runtime = runtime
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self._idle: dict[int, list[_Conn]] = {}

    # -- target ----------------------------------------------------------------------------

    async def _target(self, request: dict[str, Any]) -> int:
        """The loopback port serving the declared port of a running environment."""
        env_id, port = request.get("environment"), request.get("port")
        if not isinstance(env_id, str) or not isinstance(port, int) or isinstance(port, bool):
            raise ForwardError(400, "bad_request", "environment and port are required")
        try:
            env = await self.runtime.get(env_id)
        except RuntimeFailure as exc:
            if exc.code == NOT_FOUND:
                detail = "The workspace does not exist."
                raise ForwardError(404, "workspace_not_found", detail) from None
            raise ForwardError(502, "upstream_unavailable", exc.message) from None
        if env.get("status") != "running":
            status = env.get("status", "unknown")
            raise ForwardError(409, "workspace_not_running", f"The workspace is {status}.")
        declared = [item for item in env.get("ports") or () if item.get("port") == port]
        if not declared:
            raise ForwardError(404, "port_not_declared", f"Port {port} is not declared.")
        host_port = declared[0].get("host_port")
        if not host_port:
            raise ForwardError(502, "upstream_unavailable", _not_listening(port))
        return int(host_port)

    # -- http ------------------------------------------------------------------------------

    async def handle_http(self, stream: Stream, request: dict[str, Any]) -> None:
        """One request/response exchange; see the module docstring for the guarantees."""
        records = p.RecordReader(stream.read)
        try:
            host_port = await self._target(request)
            method = request.get("method")
            if not isinstance(method, str) or not _TOKEN.match(method):
                raise ForwardError(400, "bad_request", "invalid method")
            head, chunked = self._request_head(method, _path(request.get("path")), request)
        except ForwardError as exc:
            await stream.write(p.encode_json_record(p.REC_HEAD, exc.head()) + _END)
            return
        has_body = bool(request.get("body"))
        port = int(request["port"])
        for attempt in (0, 1):
            conn: _Conn | None = None
            try:
                conn = await self._acquire(host_port, port, fresh=attempt > 0)
                await self._exchange(stream, records, conn, head, method, chunked, has_body, port)
                return
            except _Retry:
                if conn is not None:
                    conn.close()
                if has_body:
                    break
            except ForwardError as exc:
                if conn is not None:
                    conn.close()
                await stream.write(p.encode_json_record(p.REC_HEAD, exc.head()) + _END)
                return
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
        error = ForwardError(502, "upstream_unavailable", "The app closed the connection.")
        await stream.write(p.encode_json_record(p.REC_HEAD, error.head()) + _END)

    def _request_head(self, method: str, path: str, request: dict[str, Any]) -> tuple[bytes, bool]:
        """The request line and headers for the app, and whether the body is chunked."""
        headers = _end_to_end(_headers(request.get("headers", [])))
        lengths = [v for n, v in headers if n.lower() == "content-length"]
        if len(set(lengths)) > 1 or (lengths and not lengths[0].isdigit()):
            raise ForwardError(400, "bad_request", "invalid Content-Length")
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        chunked = False
        if lengths:
            headers.append(("Content-Length", lengths[0]))
        elif request.get("body"):
            headers.append(("Transfer-Encoding", "chunked"))
            chunked = True
        lines = [f"{method} {path} HTTP/1.1"] + [f"{n}: {v}" for n, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace"), chunked

    async def _acquire(self, host_port: int, port: int, *, fresh: bool) -> _Conn:
        now = time.monotonic()
        for key in list(self._idle):
            alive = []
            for conn in self._idle[key]:
                if now - conn.idle_since < IDLE_CONNECTION_TTL and conn.usable():
                    alive.append(conn)
                else:
                    conn.close()
            self._idle[key] = alive
        idle = self._idle.get(host_port)
        if idle and not fresh:
            conn = idle.pop()
            conn.reused = True
            return conn
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", host_port, limit=MAX_RESPONSE_HEAD),
                self.connect_timeout,
            )
        except TimeoutError:
            raise ForwardError(504, "upstream_timeout", _not_answering(port)) from None
        except OSError:
            raise ForwardError(502, "upstream_unavailable", _not_listening(port)) from None
        return _Conn(reader, writer, host_port)

    def _release(self, conn: _Conn) -> None:
        idle = self._idle.setdefault(conn.port, [])
        if len(idle) >= IDLE_CONNECTIONS_PER_PORT or not conn.usable():
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conn.reused = False
        idle.append(conn)

    async def _exchange(
        self,
        stream: Stream,
        records: p.RecordReader,
        conn: _Conn,
        head: bytes,
        method: str,
        chunked: bool,
        has_body: bool,
        port: int,
    ) -> None:
        """Send the request, stream the response; the connection is released or closed."""
        try:
            conn.writer.write(head)
            if not has_body:
                await conn.writer.drain()
        except OSError:
            if conn.reused:
                raise _Retry from None
            raise ForwardError(502, "upstream_unavailable", _not_listening(port)) from None
        if not has_body:
            # No body to upload: read the answer on this task. A portal that ends the
            # stream first (the browser went away) cancels it; the caller then closes the
            # connection to the app.
            task = asyncio.current_task()
            assert task is not None
            forget = stream.call_on_end(task.cancel)
            try:
                reusable = await self._response(stream, conn, method, port)
            finally:
                forget()
            if reusable:
                self._release(conn)
            else:
                conn.close()
            return
        sent = asyncio.Event()
        upload = asyncio.create_task(self._upload(records, conn, chunked, has_body, sent))
        response = asyncio.create_task(self._response(stream, conn, method, port))
        try:
            done, _ = await asyncio.wait({upload, response}, return_when=asyncio.FIRST_COMPLETED)
            if response not in done:
                # The portal ended the stream (browser gone) or the upload failed first.
                upload.result()
                raise p.StreamClosed("the portal ended the request")
            reusable = response.result()
            if reusable and sent.is_set():
                self._release(conn)
            else:
                conn.close()
        finally:
            for task in (upload, response):
                task.cancel()
            await asyncio.gather(upload, response, return_exceptions=True)

    async def _upload(
        self,
        records: p.RecordReader,
        conn: _Conn,
        chunked: bool,
        has_body: bool,
        sent: asyncio.Event,
    ) -> None:
        """Request body records → the app; then wait for the stream to end."""
        while has_body and not sent.is_set():
            record = await records.next()
            if record is None:
                return
            kind, payload = record
            if kind == p.REC_BODY and payload:
                conn.writer.write(_chunk(payload) if chunked else payload)
            elif kind == p.REC_END:
                if chunked:
                    conn.writer.write(b"0\r\n\r\n")
                sent.set()
            with contextlib.suppress(OSError):
                await conn.writer.drain()
        while await records.next() is not None:
            pass  # nothing more is expected; returns when the stream ends

    async def _response(self, stream: Stream, conn: _Conn, method: str, port: int) -> bool:
        """Read the app's response and write it as records; True if the connection may be reused."""
        status, version, headers = await self._read_head(conn, port)
        lower = [(n.lower(), v) for n, v in headers]
        connection = ",".join(v for n, v in lower if n == "connection").lower()
        keep_alive = ("close" not in connection) and (
            version == "HTTP/1.1" or "keep-alive" in connection
        )
        encoding = ",".join(v for n, v in lower if n == "transfer-encoding").lower()
        lengths = {v.strip() for n, v in lower if n == "content-length"}
        out_headers = [[n, v] for n, v in _end_to_end(headers)]
        response_head = {"status": status, "headers": out_headers}
        body_less = method == "HEAD" or status in (204, 304)
        if body_less:
            await stream.write(p.encode_json_record(p.REC_HEAD, response_head) + _END)
            return keep_alive
        if "chunked" in encoding:
            body: AsyncIterator[bytes] = _chunked_body(conn.reader)
        elif lengths:
            if len(lengths) > 1 or not next(iter(lengths)).isdigit():
                raise ForwardError(502, "upstream_protocol_error", "Invalid Content-Length.")
            length = int(next(iter(lengths)))
            if length <= BODY_CHUNK:
                # Small bodies travel with their head in one frame: the common case is fast.
                data = await _read_exact(conn.reader, length)
                await stream.write(
                    p.encode_json_record(p.REC_HEAD, response_head)
                    + p.encode_record(p.REC_BODY, data)
                    + _END
                )
                return keep_alive
            body = _sized_body(conn.reader, length)
        else:
            keep_alive = False
            body = _until_eof(conn.reader)
        await stream.write(p.encode_json_record(p.REC_HEAD, response_head))
        async for chunk in body:
            await stream.write(p.encode_record(p.REC_BODY, chunk))
        await stream.write(_END)
        return keep_alive

    async def _read_head(self, conn: _Conn, port: int) -> tuple[int, str, list[tuple[str, str]]]:
        while True:
            try:
                async with asyncio.timeout(self.response_timeout):
                    raw = await conn.reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                raise ForwardError(504, "upstream_timeout", _not_answering(port)) from None
            except asyncio.IncompleteReadError as exc:
                if conn.reused and not exc.partial:
                    raise _Retry from None
                raise ForwardError(
                    502, "upstream_unavailable", f"The app on port {port} closed the connection."
                ) from None
            except (asyncio.LimitOverrunError, OSError) as exc:
                raise ForwardError(502, "upstream_protocol_error", str(exc)) from None
            status, version, headers = _parse_head(raw)
            if status >= 200 or status == 101:
                return status, version, headers
            # 1xx informational answers (100 Continue, 103 Early Hints) are not forwarded.

    # -- websocket -------------------------------------------------------------------------

    async def handle_websocket(self, stream: Stream, request: dict[str, Any]) -> None:
        """Splice a WebSocket to the app onto the stream, message by message."""
        try:
            host_port = await self._target(request)
            path = _path(request.get("path"))
            headers = _headers(request.get("headers", []))
            ws = await self._dial(host_port, int(request["port"]), path, headers, request)
        except ForwardError as exc:
            await stream.write(p.encode_json_record(p.REC_HEAD, {"accepted": False, **exc.head()}))
            return
        try:
            cookies = [
                [n, v] for n, v in ws.response.headers.raw_items() if n.lower() == "set-cookie"
            ]
            await stream.write(
                p.encode_json_record(
                    p.REC_HEAD,
                    {"accepted": True, "subprotocol": ws.subprotocol, "headers": cookies},
                )
            )
            tasks = [
                asyncio.create_task(_app_to_stream(ws, stream)),
                asyncio.create_task(_stream_to_app(p.RecordReader(stream.read), ws)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await ws.close()

    async def _dial(
        self,
        host_port: int,
        port: int,
        path: str,
        headers: list[tuple[str, str]],
        request: dict[str, Any],
    ) -> ClientConnection:
        by_name = {n.lower(): v for n, v in headers}
        authority = by_name.get("host") or f"127.0.0.1:{host_port}"
        extra = [(n, v) for n, v in _end_to_end(headers) if n.lower() not in _WS_HANDSHAKE_HEADERS]
        subprotocols = [s for s in request.get("subprotocols") or [] if isinstance(s, str)]
        try:
            return await connect(
                f"ws://{authority}{path}",
                host="127.0.0.1",
                port=host_port,
                origin=by_name.get("origin"),  # type: ignore[arg-type]
                additional_headers=extra,
                user_agent_header=by_name.get("user-agent"),
                subprotocols=subprotocols or None,  # type: ignore[arg-type]
                compression=None,
                max_size=p.MAX_RECORD,
                ping_interval=None,
                proxy=None,
                open_timeout=self.connect_timeout + self.response_timeout,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ForwardError(
                status, "upgrade_refused", f"The app answered HTTP {status}."
            ) from None
        except TimeoutError:
            raise ForwardError(504, "upstream_timeout", _not_answering(port)) from None
        except OSError:
            raise ForwardError(502, "upstream_unavailable", _not_listening(port)) from None
        except (WebSocketException, ValueError) as exc:
            raise ForwardError(502, "upstream_protocol_error", str(exc)[:200]) from None


_END: Final = p.encode_record(p.REC_END)


def _not_listening(port: int) -> str:
    return f"Nothing is listening on port {port} in the workspace."


def _not_answering(port: int) -> str:
    return f"The app on port {port} did not answer in time."


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
        if not sep or not _TOKEN.match(name):
            raise ForwardError(502, "upstream_protocol_error", "The app sent an invalid header.")
        headers.append((name, value.strip()))
    return int(parts[1]), parts[0], headers


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(payload), payload)


async def _read_exact(reader: asyncio.StreamReader, length: int) -> bytes:
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ForwardError(502, "upstream_protocol_error", "The app cut its response.") from None


async def _sized_body(reader: asyncio.StreamReader, length: int) -> AsyncIterator[bytes]:
    remaining = length
    while remaining:
        chunk = await reader.read(min(remaining, BODY_CHUNK))
        if not chunk:
            raise p.StreamClosed("the app cut its response")
        remaining -= len(chunk)
        yield chunk


async def _until_eof(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while chunk := await reader.read(BODY_CHUNK):
        yield chunk


async def _chunked_body(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    try:
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers are dropped
                return
            async for chunk in _sized_body(reader, size):
                yield chunk
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("chunk not terminated by CRLF")
    except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise p.StreamClosed("the app sent a malformed chunked body") from None


async def _app_to_stream(ws: ClientConnection, stream: Stream) -> None:
    try:
        async for message in ws:
            if isinstance(message, str):
                await stream.write(p.encode_record(p.REC_TEXT, message.encode()))
            else:
                await stream.write(p.encode_record(p.REC_BINARY, message))
    except ConnectionClosed:
        pass
    close = {"code": ws.close_code or 1000, "reason": ws.close_reason or ""}
    await stream.write(p.encode_json_record(p.REC_WS_CLOSE, close))


async def _stream_to_app(records: p.RecordReader, ws: ClientConnection) -> None:
    try:
        while (record := await records.next()) is not None:
            kind, payload = record
            if kind == p.REC_TEXT:
                await ws.send(payload.decode("utf-8", "replace"))
            elif kind == p.REC_BINARY:
                await ws.send(payload)
            elif kind == p.REC_WS_CLOSE:
                close = p.decode_json_record(payload)
                await ws.close(_close_code(close.get("code")), str(close.get("reason", ""))[:120])
                return
        await ws.close(1001, "browser went away")
    except ConnectionClosed:
        return


def _close_code(code: Any) -> int:
    """A code a client may send: 1000, or an application code passed through."""
    if isinstance(code, int) and (code in (1000, 1001) or 3000 <= code <= 4999):
        return code
    return 1000
