"""``websocket`` streams: a browser's WebSocket spliced onto one to the app, message by message.

The agent dials the app with the browser's ``Host``, ``Origin``, ``User-Agent``,
subprotocols and end-to-end headers, then answers a HEAD record: accepted (with the
chosen subprotocol and the app's ``Set-Cookie`` headers) or refused with an ``error``
code (see `agent.forward.request`; ``upgrade_refused`` carries the app's status).
Guarantees: text and binary messages keep their type and boundaries in both
directions; a close from either side ends both, the app's close code and reason
reaching the browser, and only codes a client may send (1000, 1001, 3000-4999)
reaching the app; no compression and no pings are added on the way.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from agent import protocol as p
from agent.forward.request import (
    ForwardError,
    Upstream,
    end_to_end,
    not_answering,
    not_listening,
    parse_headers,
    parse_path,
    resolve_port,
)
from agent.multiplex import Stream
from agent.runtimes.base import Runtime

_HANDSHAKE_HEADERS: Final = frozenset(
    {"host", "content-length", "user-agent", "origin"}
    | {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
"""Headers the WebSocket client writes itself (from the request, when it has them)."""


class WebSocketForwarder:
    """Serves ``websocket`` streams for the environments of one runtime."""

    def __init__(
        self, runtime: Runtime, *, connect_timeout: float, response_timeout: float
    ) -> None:
        self.runtime = runtime
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout

    async def handle(self, stream: Stream, request: dict[str, Any]) -> None:
        """Splice a WebSocket to the app onto the stream, message by message."""
        try:
            upstream = await resolve_port(self.runtime, request)
            path = parse_path(request.get("path"))
            headers = parse_headers(request.get("headers", []))
            ws = await self._dial(upstream, path, headers, request)
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
        upstream: Upstream,
        path: str,
        headers: list[tuple[str, str]],
        request: dict[str, Any],
    ) -> ClientConnection:
        by_name = {n.lower(): v for n, v in headers}
        port = upstream.port
        authority = by_name.get("host") or f"127.0.0.1:{port}"
        extra = [(n, v) for n, v in end_to_end(headers) if n.lower() not in _HANDSHAKE_HEADERS]
        subprotocols = [s for s in request.get("subprotocols") or [] if isinstance(s, str)]
        try:
            sock = await upstream.connect(self.connect_timeout)
        except TimeoutError:
            raise ForwardError(504, "upstream_timeout", not_answering(port)) from None
        except OSError:
            raise ForwardError(502, "upstream_unavailable", not_listening(port)) from None
        try:
            return await connect(
                f"ws://{authority}{path}",
                sock=sock,
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
            raise ForwardError(504, "upstream_timeout", not_answering(port)) from None
        except OSError:
            raise ForwardError(502, "upstream_unavailable", not_listening(port)) from None
        except (WebSocketException, ValueError) as exc:
            raise ForwardError(502, "upstream_protocol_error", str(exc)[:200]) from None


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
