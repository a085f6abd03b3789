"""Forwarding of one preview request or WebSocket through the tunnel (stream kinds
`http` and `websocket`, records of `agent.protocol`).

Promises:

* The app never receives the preview cookie, the portal's session or CSRF cookie,
  `Authorization`/`Proxy-Authorization`, hop-by-hop headers, or forwarding headers the
  browser made up; it gets `X-Forwarded-Proto/Host/For` set by the portal.
* Request bodies go to the agent as the server hands them over; response bodies go to
  the browser record by record (`more_body=True`), so nothing is buffered or stored and
  a slow browser holds back the app through the stream's credit.
* Responses keep the app's status, headers (`Location` and host-only `Set-Cookie`
  included) and body; a `Set-Cookie` that names a `Domain` other than the preview host
  itself is dropped (an app may not toss a cookie onto the portal's parent domain), and
  so is one of the portal's or the preview's own names; `X-Frame-Options` is replaced
  by `Content-Security-Policy: frame-ancestors` naming the portal, so the portal's iframe
  can show the app and nobody else can frame it.
* A browser's HTML document gets the preview bridge's tag (`bridge.py` says which answers
  and where); it is held only until the tag's place is found. Every other answer is
  streamed as it comes.
* A failure before the response started is a page (`pages.py`); after it started the
  connection is aborted, so a cut download never looks complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final

from django.conf import settings

from agent import protocol as p
from relay.consumers.preview import bridge
from relay.consumers.preview.pages import Headers, error_page, frame_policy
from relay.consumers.preview.sessions import PreviewSession, cookie_name
from relay.streams import RemoteStream, StreamLike, TunnelUnavailable, open_stream

logger = logging.getLogger(__name__)

HEAD_TIMEOUT: Final = 130.0
"""How long to wait for the response head: the agent's own 120 s limit, plus margin."""
WATCH_AFTER: Final = 0.05
"""Seconds a body-less request waits for its answer before the portal watches for the
browser going away (a streamed answer is watched from its first byte)."""
BODY_CHUNK: Final = p.MAX_PAYLOAD - p.RECORD_HEADER.size
_HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NEVER_FORWARDED: Final = _HOP_BY_HOP | {
    b"authorization",
    b"proxy-authorization",
    b"expect",  # the portal's server already answered `100-continue`
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-forwarded-port",
    b"x-real-ip",
}
_WEBSOCKET_HANDSHAKE: Final = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"content-length",
    }
)
_DROPPED_RESPONSE: Final = {"x-frame-options", *(h.decode() for h in _HOP_BY_HOP)}


class UpstreamCut(Exception):
    """The response started but its stream ended before the body did (abort it)."""


def preview_cookie_name() -> str:
    return cookie_name()


def cookies(scope: dict[str, Any]) -> dict[str, str]:
    """The request's cookies by name (first value wins)."""
    result: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, sep, val = part.strip().partition("=")
                if sep and key not in result:
                    result[key] = val
    return result


def _private_cookies() -> set[str]:
    """The portal's and the preview's cookie names, with and without `__Host-`."""
    names = {"enclave_preview", settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
    bare = {name.removeprefix("__Host-") for name in names}
    return bare | {f"__Host-{name}" for name in bare}


def forwarded_headers(
    scope: dict[str, Any], ip: str, *, websocket: bool = False, identity: bool = False
) -> tuple[list[list[str]], bool]:
    """Headers for the app, and whether the request has a body to stream. `identity`
    asks the app not to compress its answer (a page the bridge goes into)."""
    private = _private_cookies()
    headers: list[list[str]] = []
    kept_cookies: list[str] = []
    host = ""
    has_body = False
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                part = part.strip()
                if part and part.partition("=")[0].strip() not in private:
                    kept_cookies.append(part)
            continue
        if name == b"host":
            host = value.decode("latin-1")
        if name == b"content-length" and value.strip() != b"0":
            has_body = True
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            has_body = True
        if name in _NEVER_FORWARDED or (websocket and name in _WEBSOCKET_HANDSHAKE):
            continue
        if identity and name == b"accept-encoding":
            continue
        headers.append([name.decode("latin-1"), value.decode("latin-1")])
    if kept_cookies:
        headers.append(["cookie", "; ".join(kept_cookies)])
    if identity:
        headers.append(["accept-encoding", "identity"])
    https = settings.PORTAL_URL.startswith("https://") or scope.get("scheme") in ("https", "wss")
    headers += [
        ["x-forwarded-proto", "https" if https else "http"],
        ["x-forwarded-host", host],
        ["x-forwarded-for", ip],
    ]
    return headers, has_body and not websocket


def _target_path(scope: dict[str, Any]) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def request_host(scope: dict[str, Any]) -> str:
    """The request's host name, lower case, without its port."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            return host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return ""


def cookie_allowed(value: str, host: str) -> bool:
    """Whether the app's `Set-Cookie: value` may reach the browser of preview ``host``:
    not one of the portal's or the preview's cookie names, and host-only or scoped to
    ``host`` itself — never a `Domain` above it (cookie tossing onto the portal)."""
    if value.partition("=")[0].strip() in _private_cookies():
        return False
    for attribute in value.split(";")[1:]:
        key, _, domain = attribute.partition("=")
        if key.strip().lower() == "domain":
            domain = domain.strip().lstrip(".").lower()
            if domain and domain != host:
                return False
    return True


def _response_headers(head: dict[str, Any], host: str) -> Headers:
    result: Headers = []
    for item in head.get("headers") or ():
        name, value = str(item[0]), str(item[1])
        lower = name.lower()
        if lower in _DROPPED_RESPONSE:
            continue
        if lower == "set-cookie" and not cookie_allowed(value, host):
            continue
        result.append((lower.encode("latin-1"), value.encode("latin-1", "replace")))
    result.append(frame_policy())
    return result


async def send_page(send: Any, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def deny_websocket(
    scope: dict[str, Any], send: Any, code: str, detail: str = "", status: int | None = None
) -> None:
    """Refuse an upgrade before accepting it: the page's status when the server can
    send one (ASGI `websocket.http.response`), else a plain refusal (HTTP 403)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        status, headers, body = error_page(code, detail, status)
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close"})


def _stream_error(stream: StreamLike) -> str:
    """Why a stream ended before the agent answered."""
    if stream.close_code == p.CLOSE_REFUSED:
        return "agent_outdated"
    return "cluster_unavailable"


async def _open(session: PreviewSession, request: dict[str, Any]) -> StreamLike:
    if session.cluster_id is None:
        raise TunnelUnavailable("the workspace's cluster was deleted")
    return await open_stream(
        cluster_id=session.cluster_id, tunnel_channel=session.tunnel_channel, request=request
    )


async def _first_record(records: p.RecordReader) -> dict[str, Any] | None:
    async with asyncio.timeout(HEAD_TIMEOUT):  # no extra task, unlike wait_for
        record = await records.next()
    if record is None:
        return None
    if record[0] != p.REC_HEAD:
        raise p.ProtocolError(p.CLOSE_PROTOCOL_ERROR, "the first record is not a head")
    return p.decode_json_record(record[1])


# --- HTTP ----------------------------------------------------------------------------------


async def forward_http(
    scope: dict[str, Any], receive: Any, send: Any, session: PreviewSession, ip: str
) -> None:
    document = bridge.document_request(scope)
    retry = scope["method"] == "GET"  # an error page may reload itself: no form re-posted
    headers, has_body = forwarded_headers(scope, ip, identity=document)
    request = {
        "kind": "http",
        "environment": session.environment_id,
        "port": session.port,
        "method": scope["method"],
        "path": _target_path(scope),
        "headers": headers,
        "body": has_body,
    }
    session.touch(requests=1)
    try:
        stream = await _open(session, request)
    except TunnelUnavailable:
        await send_page(send, *error_page("cluster_unavailable", retry=retry))
        return
    stop = _stopper(stream)
    session.streams.add(stop)
    # The task reading the browser's side (body, disconnect) starts at once for a request
    # with a body; otherwise only once the answer streams or is slow to come: the usual
    # small answer, complete with its head, needs no task of its own.
    upload: asyncio.Task[None] | None = None
    left = asyncio.Event()

    def watch() -> None:
        nonlocal upload
        if upload is None:
            upload = asyncio.create_task(_upload(receive, stream, has_body, session, left))

    timer = None
    if has_body:
        watch()
    else:
        timer = asyncio.get_running_loop().call_later(WATCH_AFTER, watch)
    finished = False
    try:
        finished = await _respond(
            send,
            stream,
            session,
            watch,
            left,
            document=document,
            retry=retry,
            host=request_host(scope),
        )
    finally:
        session.streams.discard(stop)
        if timer is not None:
            timer.cancel()
        if upload is not None:
            upload.cancel()
            await asyncio.gather(upload, return_exceptions=True)
        # After END the agent closes the stream itself: one frame less per request. A
        # stream of another process still needs `close()` to stop its channel reader.
        if not finished or isinstance(stream, RemoteStream):
            await stream.close(p.CLOSE_NORMAL)


_closing: set[asyncio.Future[None]] = set()


def _stopper(stream: StreamLike) -> Callable[[], Any]:
    """A callback that ends `stream` (the session it belongs to was ended)."""

    def stop() -> None:
        task = asyncio.ensure_future(stream.close(p.CLOSE_NORMAL, "preview session ended"))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    return stop


async def _upload(
    receive: Any, stream: StreamLike, has_body: bool, session: PreviewSession, left: asyncio.Event
) -> None:
    """Browser → agent: body records as the server hands them over; closes on disconnect."""
    sending = has_body
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            left.set()
            await stream.close(p.CLOSE_NORMAL, "browser went away")
            return
        if message["type"] != "http.request" or not sending:
            continue
        body = message.get("body", b"")
        session.bytes_in += len(body)
        try:
            for i in range(0, len(body), BODY_CHUNK):
                await stream.write(p.encode_record(p.REC_BODY, body[i : i + BODY_CHUNK]))
            if not message.get("more_body", False):
                await stream.write(p.encode_record(p.REC_END))
                sending = False
        except p.StreamClosed:
            sending = False  # the app answered without reading everything: fine


async def _respond(
    send: Any,
    stream: StreamLike,
    session: PreviewSession,
    watch: Callable[[], None],
    left: asyncio.Event,
    *,
    document: bool,
    retry: bool,
    host: str,
) -> bool:
    """Stream the answer to the browser; True once the agent finished its side (it then
    sends CLOSE itself, so the portal need not). `watch()` is called before a body that
    streams, so a browser that goes away ends the stream. `document`: the browser asked
    for a page, which gets the bridge if it is HTML; `retry`: an error page may reload
    itself (the request was a GET)."""
    records = p.RecordReader(stream.read)
    try:
        head = await _first_record(records)
    except TimeoutError:
        await send_page(send, *error_page("upstream_timeout", retry=retry))
        return False
    except p.ProtocolError:
        await send_page(send, *error_page("upstream_protocol_error"))
        return False
    if head is None:
        await send_page(send, *error_page(_stream_error(stream), retry=retry))
        return True
    if head.get("error"):
        code, detail = str(head["error"]), str(head.get("detail", ""))
        await send_page(send, *error_page(code, detail, head.get("status"), retry=retry))
        return True
    status = head.get("status")
    if not isinstance(status, int) or not 100 <= status <= 999:
        await send_page(send, *error_page("upstream_protocol_error"))
        return False
    # Whatever arrived with the head (a small body, often all of it) goes out at once.
    parts: list[bytes] = []
    complete = False
    while records.ready():
        kind, payload = await records.next()  # type: ignore[misc]
        if kind == p.REC_END:
            complete = True
            break
        parts.append(payload)
    headers = _response_headers(head, host)
    body = b"".join(parts)
    if document and bridge.injectable(status, headers):
        return await _respond_with_bridge(
            send, records, session, watch, left, status, headers, body, complete
        )
    await send({"type": "http.response.start", "status": status, "headers": headers})
    session.bytes_out += len(body)
    await send({"type": "http.response.body", "body": body, "more_body": not complete})
    if not complete:
        watch()
        await _stream_body(send, records, session, left)
    return True


async def _respond_with_bridge(
    send: Any,
    records: p.RecordReader,
    session: PreviewSession,
    watch: Callable[[], None],
    left: asyncio.Event,
    status: int,
    headers: Headers,
    body: bytes,
    complete: bool,
) -> bool:
    """An HTML document: held until the bridge's place is found (nearly always in what
    came with the head), sent with its tag, the rest streamed as it comes."""
    injection = bridge.Injection()
    while (out := injection.feed(body, complete)) is None:
        watch()
        record = await records.next()
        if record is None:
            if not left.is_set():
                cut = "The app cut its response."
                await send_page(send, *error_page("upstream_protocol_error", cut))
            return True
        kind, body = record
        complete = kind == p.REC_END
    if injection.injected:
        headers = bridge.grown_headers(headers, len(injection.tag))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    session.bytes_out += len(out)
    await send({"type": "http.response.body", "body": out, "more_body": not complete})
    if not complete:
        watch()
        await _stream_body(send, records, session, left)
    return True


async def _stream_body(
    send: Any, records: p.RecordReader, session: PreviewSession, left: asyncio.Event
) -> None:
    """The rest of a body that has started, record by record, up to END."""
    while True:
        record = await records.next()
        if record is None:
            if left.is_set():
                return  # the browser went away: nobody to tell
            raise UpstreamCut(f"preview of {session.environment_id}:{session.port} cut")
        kind, payload = record
        if kind == p.REC_END:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        session.bytes_out += len(payload)
        await send({"type": "http.response.body", "body": payload, "more_body": True})


# --- WebSocket -----------------------------------------------------------------------------


async def forward_websocket(
    scope: dict[str, Any], receive: Any, send: Any, session: PreviewSession, ip: str
) -> None:
    headers, _ = forwarded_headers(scope, ip, websocket=True)
    request = {
        "kind": "websocket",
        "environment": session.environment_id,
        "port": session.port,
        "path": _target_path(scope),
        "headers": headers,
        "subprotocols": list(scope.get("subprotocols") or []),
    }
    session.touch(requests=1)
    try:
        stream = await _open(session, request)
    except TunnelUnavailable:
        await deny_websocket(scope, send, "cluster_unavailable")
        return
    records = p.RecordReader(stream.read)
    try:
        try:
            head = await _first_record(records)
        except TimeoutError:
            await deny_websocket(scope, send, "upstream_timeout")
            return
        except p.ProtocolError:
            await deny_websocket(scope, send, "upstream_protocol_error")
            return
        if head is None or not head.get("accepted"):
            code = str(head.get("error", "upgrade_refused")) if head else _stream_error(stream)
            detail = str(head.get("detail", "")) if head else ""
            await deny_websocket(scope, send, code, detail, head.get("status") if head else None)
            return
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if head.get("subprotocol"):
            accept["subprotocol"] = str(head["subprotocol"])
        await send(accept)
        await _splice(receive, send, stream, records, session)
    finally:
        await stream.close(p.CLOSE_NORMAL)


async def _splice(
    receive: Any, send: Any, stream: StreamLike, records: p.RecordReader, session: PreviewSession
) -> None:
    stop = _stopper(stream)
    session.streams.add(stop)
    browser = asyncio.create_task(_browser_to_app(receive, stream, session))
    app = asyncio.create_task(_app_to_browser(send, records, session))
    try:
        done, _ = await asyncio.wait({browser, app}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        session.streams.discard(stop)
        for task in (browser, app):
            task.cancel()
        await asyncio.gather(browser, app, return_exceptions=True)
    if browser in done:
        return  # the browser left: nothing to tell it
    closed = app in done and not app.cancelled() and app.exception() is None and app.result()
    if not closed:
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": 1011})


async def _browser_to_app(receive: Any, stream: StreamLike, session: PreviewSession) -> None:
    with contextlib.suppress(p.StreamClosed):
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                if message.get("text") is not None:
                    data, kind = message["text"].encode(), p.REC_TEXT
                else:
                    data, kind = message.get("bytes") or b"", p.REC_BINARY
                session.touch(bytes_in=len(data))
                await stream.write(p.encode_record(kind, data))
            elif message["type"] == "websocket.disconnect":
                close = {"code": message.get("code", 1000), "reason": ""}
                await stream.write(p.encode_json_record(p.REC_WS_CLOSE, close))
                return


async def _app_to_browser(send: Any, records: p.RecordReader, session: PreviewSession) -> bool:
    """Agent → browser; True once the app's close was passed on, False if the stream ended."""
    while (record := await records.next()) is not None:
        kind, payload = record
        if kind == p.REC_TEXT:
            session.touch(bytes_out=len(payload))
            await send({"type": "websocket.send", "text": payload.decode("utf-8", "replace")})
        elif kind == p.REC_BINARY:
            session.touch(bytes_out=len(payload))
            await send({"type": "websocket.send", "bytes": payload})
        elif kind == p.REC_WS_CLOSE:
            close = p.decode_json_record(payload)
            code = close.get("code")
            valid = isinstance(code, int) and (code in (1000, 1001) or 3000 <= code <= 4999)
            await send({"type": "websocket.close", "code": code if valid else 1000})
            return True
    return False
