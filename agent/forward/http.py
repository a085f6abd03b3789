"""``http`` streams: one browser request forwarded to the app, its response streamed back.

The portal sends the request head in OPEN, then body records; the agent answers a
HEAD record, body records and END (``docs/agent.md``, "Preview streams"). Guarantees:

* Every failure before the app's answer is a response head with an ``error`` code
  (see `agent.forward.request`), never a hang.
* Nothing is buffered beyond one chunk: request bodies are written to the app as they
  arrive, the response is read only as fast as the stream's credit allows, and each
  chunk is sent as soon as it is read.
* A stream the portal ends (browser gone) ends the upstream request at once, and its
  connection is closed; a connection is kept for reuse only after a complete exchange.
* A request without a body that meets a reused connection already closed by the app
  is sent once more, on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from agent import protocol as p
from agent.forward import client
from agent.forward.client import BODY_CHUNK, Connection, ConnectionPool, Framing, Retry
from agent.forward.request import (
    ForwardError,
    end_to_end,
    not_listening,
    parse_headers,
    parse_method,
    parse_path,
    resolve_port,
)
from agent.multiplex import Stream
from agent.runtimes.base import Runtime

_END: Final = p.encode_record(p.REC_END)


class HttpForwarder:
    """Serves ``http`` streams for the environments of one runtime, over pooled connections."""

    def __init__(
        self, runtime: Runtime, *, connect_timeout: float, response_timeout: float
    ) -> None:
        self.runtime = runtime
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self._pool = ConnectionPool()

    async def handle(self, stream: Stream, request: dict[str, Any]) -> None:
        """One request/response exchange; see the module docstring for the guarantees."""
        records = p.RecordReader(stream.read)
        has_body = bool(request.get("body"))
        try:
            upstream = await resolve_port(self.runtime, request)
            method = parse_method(request.get("method"))
            path = parse_path(request.get("path"))
            headers = end_to_end(parse_headers(request.get("headers", [])))
            head, chunked = client.request_head(method, path, headers, has_body)
        except ForwardError as exc:
            await stream.write(p.encode_json_record(p.REC_HEAD, exc.head()) + _END)
            return
        port = int(request["port"])
        for attempt in (0, 1):
            conn: Connection | None = None
            try:
                conn = await self._pool.acquire(
                    upstream, fresh=attempt > 0, timeout=self.connect_timeout
                )
                await self._exchange(stream, records, conn, head, method, chunked, has_body, port)
                return
            except Retry:
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

    async def _exchange(
        self,
        stream: Stream,
        records: p.RecordReader,
        conn: Connection,
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
                raise Retry from None
            raise ForwardError(502, "upstream_unavailable", not_listening(port)) from None
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
                self._pool.release(conn)
            else:
                conn.close()
            return
        sent = asyncio.Event()
        upload = asyncio.create_task(_upload(records, conn, chunked, sent))
        response = asyncio.create_task(self._response(stream, conn, method, port))
        try:
            done, _ = await asyncio.wait({upload, response}, return_when=asyncio.FIRST_COMPLETED)
            if response not in done:
                # The portal ended the stream (browser gone) or the upload failed first.
                upload.result()
                raise p.StreamClosed("the portal ended the request")
            reusable = response.result()
            if reusable and sent.is_set():
                self._pool.release(conn)
            else:
                conn.close()
        finally:
            for task in (upload, response):
                task.cancel()
            await asyncio.gather(upload, response, return_exceptions=True)

    async def _response(self, stream: Stream, conn: Connection, method: str, port: int) -> bool:
        """Read the app's response and write it as records; True if the connection may be reused."""
        head = await client.read_response_head(conn, method, port, self.response_timeout)
        out_headers = [[n, v] for n, v in end_to_end(head.headers)]
        head_record = p.encode_json_record(
            p.REC_HEAD, {"status": head.status, "headers": out_headers}
        )
        if head.framing is Framing.NONE:
            await stream.write(head_record + _END)
            return head.keep_alive
        if head.framing is Framing.LENGTH and head.length <= BODY_CHUNK:
            # Small bodies travel with their head in one frame: the common case is fast.
            data = await client.read_exact(conn.reader, head.length)
            await stream.write(head_record + p.encode_record(p.REC_BODY, data) + _END)
            return head.keep_alive
        await stream.write(head_record)
        async for chunk in client.read_body(conn.reader, head):
            await stream.write(p.encode_record(p.REC_BODY, chunk))
        await stream.write(_END)
        return head.keep_alive


async def _upload(
    records: p.RecordReader, conn: Connection, chunked: bool, sent: asyncio.Event
) -> None:
    """Request body records → the app; then wait for the stream to end."""
    while not sent.is_set():
        record = await records.next()
        if record is None:
            return
        kind, payload = record
        if kind == p.REC_BODY and payload:
            conn.writer.write(client.chunk(payload) if chunked else payload)
        elif kind == p.REC_END:
            if chunked:
                conn.writer.write(client.LAST_CHUNK)
            sent.set()
        with contextlib.suppress(OSError):
            await conn.writer.drain()
    while await records.next() is not None:
        pass  # nothing more is expected; returns when the stream ends
