"""Forwarding of ``http`` and ``websocket`` streams to a real app on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket

import pytest
from websockets.asyncio.server import serve

from agent import protocol as p
from agent.forward import Forwarder
from agent.multiplex import Multiplexer
from agent.runtimes.base import NOT_FOUND, Runtime, RuntimeFailure

BIG = bytes(range(256)) * 16384  # 4 MiB


class App:
    """A tiny HTTP/1.1 app with keep-alive: echo, chunked, SSE, a big download."""

    def __init__(self) -> None:
        self.sse_next = asyncio.Event()
        self.seen: list[dict] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await self._body(reader, headers)
                self.seen.append({"method": method, "path": path, "headers": headers})
                if not await self._route(writer, method, path, headers, body):
                    return
        finally:
            writer.close()

    async def _body(self, reader, headers) -> bytes:
        if "content-length" in headers:
            return await reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding") == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readexactly(2)
            return b"".join(parts)
        return b""

    async def _route(self, writer, method, path, headers, body) -> bool:
        if path == "/echo":
            payload = json.dumps({"method": method, "body": body.decode(), "headers": headers})
            self._send(writer, 200, payload.encode(), [("Content-Type", "application/json")])
        elif path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"alpha-", b"beta-", b"gamma"):
                writer.write(b"%x\r\n%b\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
        elif path == "/sse":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
            writer.write(b"Connection: close\r\n\r\ndata: one\n\n")
            await writer.drain()
            await self.sse_next.wait()
            writer.write(b"data: two\n\n")
            await writer.drain()
            return False
        elif path == "/big":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG))
            for i in range(0, len(BIG), 65536):
                writer.write(BIG[i : i + 65536])
                await writer.drain()
        elif path == "/redirect":
            extra = [("Location", "/echo"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")]
            self._send(writer, 302, b"", extra)
        else:
            self._send(writer, 404, b"no such page", [])
        await writer.drain()
        return True

    @staticmethod
    def _send(writer, status, body, headers) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
        lines += [f"{n}: {v}" for n, v in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


class FakeRuntime:
    connect_port = Runtime.connect_port  # the host_port on the loopback

    def __init__(self, ports: dict[int, int | None], status: str = "running") -> None:
        self.ports = ports
        self.status = status

    async def get(self, env_id: str) -> dict:
        if env_id != "env-000000000001":
            raise RuntimeFailure(NOT_FOUND, "no such environment")
        ports = [{"port": k, "name": "x", "host_port": v} for k, v in self.ports.items()]
        return {"id": env_id, "status": self.status, "ports": ports}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Wire:
    def __init__(self) -> None:
        self.peer: Multiplexer | None = None
        self.data_bytes = 0

    async def send(self, data: bytes) -> None:
        for frame in map(p.decode_frame, p.split_message(data)):
            if frame.type == p.DATA:
                self.data_bytes += len(frame.payload)
        await self.peer.feed(data)


@pytest.fixture
async def setup():
    app = App()
    server = await asyncio.start_server(app.handle, "127.0.0.1", 0)
    http_port = server.sockets[0].getsockname()[1]

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    ws_server = await serve(echo, "127.0.0.1", 0, compression=None)
    ws_port = ws_server.sockets[0].getsockname()[1]
    runtime = FakeRuntime({3000: http_port, 3001: ws_port, 3002: _closed_port(), 3003: None})
    forwarder = Forwarder(runtime, connect_timeout=2, response_timeout=2)
    to_portal, to_agent = Wire(), Wire()
    handlers = {"http": forwarder.handle_http, "websocket": forwarder.handle_websocket}
    agent = Multiplexer(to_portal.send, handlers)
    portal = Multiplexer(to_agent.send, role="portal")
    to_portal.peer, to_agent.peer = portal, agent
    yield app, runtime, portal, to_portal
    await agent.aclose()
    server.close()
    ws_server.close()


def _request(path: str, *, method: str = "GET", port: int = 3000, body=False, headers=()):
    return {
        "kind": "http",
        "environment": "env-000000000001",
        "port": port,
        "method": method,
        "path": path,
        "headers": [["Host", "env-000000000001-3000.preview.test"], *map(list, headers)],
        "body": body,
    }


async def _response(stream) -> tuple[dict, bytes]:
    records = p.RecordReader(stream.read)
    kind, payload = await asyncio.wait_for(records.next(), 5)
    assert kind == p.REC_HEAD
    head = p.decode_json_record(payload)
    body = bytearray()
    while (record := await asyncio.wait_for(records.next(), 5)) is not None:
        kind, payload = record
        if kind == p.REC_END:
            break
        assert kind == p.REC_BODY
        body += payload
    return head, bytes(body)


async def test_get_keeps_host_and_reuses_the_connection(setup):
    app, _, portal, _ = setup
    for _ in range(3):
        stream = await portal.open_stream(_request("/echo", headers=[("X-Test", "1")]))
        head, body = await _response(stream)
        assert head["status"] == 200
        echoed = json.loads(body)
        assert echoed["headers"]["host"] == "env-000000000001-3000.preview.test"
        assert echoed["headers"]["x-test"] == "1"
    assert app.connections == 1


async def test_post_with_streamed_body_in_chunks(setup):
    app, _, portal, _ = setup
    stream = await portal.open_stream(_request("/echo", method="POST", body=True))
    for part in (b"hello ", b"streamed ", b"world"):
        await stream.write(p.encode_record(p.REC_BODY, part))
    await stream.write(p.encode_record(p.REC_END))
    head, body = await _response(stream)
    assert head["status"] == 200
    assert json.loads(body)["body"] == "hello streamed world"
    assert app.seen[-1]["headers"]["transfer-encoding"] == "chunked"


async def test_post_with_content_length(setup):
    app, _, portal, _ = setup
    request = _request("/echo", method="POST", body=True, headers=[("Content-Length", "4")])
    stream = await portal.open_stream(request)
    await stream.write(p.encode_record(p.REC_BODY, b"data") + p.encode_record(p.REC_END))
    _, body = await _response(stream)
    assert json.loads(body)["body"] == "data"
    assert "transfer-encoding" not in app.seen[-1]["headers"]


async def test_chunked_response_is_dechunked_and_hop_by_hop_dropped(setup):
    _, _, portal, _ = setup
    head, body = await _response(await portal.open_stream(_request("/chunked")))
    assert body == b"alpha-beta-gamma"
    assert all(name.lower() != "transfer-encoding" for name, _ in head["headers"])


async def test_redirect_and_cookies_are_kept(setup):
    _, _, portal, _ = setup
    head, _ = await _response(await portal.open_stream(_request("/redirect")))
    assert head["status"] == 302
    assert ["Location", "/echo"] in head["headers"]
    cookies = [v for n, v in head["headers"] if n.lower() == "set-cookie"]
    assert cookies == ["a=1; Path=/", "b=2"]


async def test_server_sent_events_arrive_one_by_one(setup):
    app, _, portal, _ = setup
    stream = await portal.open_stream(_request("/sse"))
    records = p.RecordReader(stream.read)
    kind, payload = await asyncio.wait_for(records.next(), 5)
    assert kind == p.REC_HEAD and p.decode_json_record(payload)["status"] == 200
    assert await asyncio.wait_for(records.next(), 5) == (p.REC_BODY, b"data: one\n\n")
    app.sse_next.set()
    assert await asyncio.wait_for(records.next(), 5) == (p.REC_BODY, b"data: two\n\n")
    assert (await asyncio.wait_for(records.next(), 5))[0] == p.REC_END


async def test_large_body_is_throttled_by_credit_then_intact(setup):
    _, _, portal, to_portal = setup
    stream = await portal.open_stream(_request("/big"))
    await asyncio.sleep(0.5)  # nobody reads: the agent must stop at the credit window
    assert to_portal.data_bytes <= p.INITIAL_WINDOW
    head, body = await _response(stream)
    assert head["status"] == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest()


@pytest.mark.parametrize(
    ("port", "environment_status", "status", "code"),
    [
        (3002, "running", 502, "upstream_unavailable"),
        (3003, "running", 502, "upstream_unavailable"),
        (3999, "running", 404, "port_not_declared"),
        (3000, "stopped", 409, "workspace_not_running"),
    ],
)
async def test_errors_are_answered_with_a_head(setup, port, environment_status, status, code):
    _, runtime, portal, _ = setup
    runtime.status = environment_status
    head, _ = await _response(await portal.open_stream(_request("/", port=port)))
    assert (head["status"], head["error"]) == (status, code)
    if code == "upstream_unavailable":
        assert str(port) in head["detail"]


@contextlib.asynccontextmanager
async def serving_port_3000(runtime, handler):
    """Declared port 3000 answered by `handler` (an asyncio stream handler) meanwhile."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    runtime.ports[3000] = server.sockets[0].getsockname()[1]
    try:
        yield
    finally:
        server.close()


async def test_timeout_is_504(setup):
    async def silent(reader, writer):
        await asyncio.sleep(10)

    _, runtime, portal, _ = setup
    async with serving_port_3000(runtime, silent):
        head, _ = await _response(await portal.open_stream(_request("/")))
        assert (head["status"], head["error"]) == (504, "upstream_timeout")


async def test_portal_closing_the_stream_ends_the_upstream_request(setup):
    app, _, portal, _ = setup
    stream = await portal.open_stream(_request("/sse"))
    records = p.RecordReader(stream.read)
    await asyncio.wait_for(records.next(), 5)
    await stream.close(p.CLOSE_NORMAL)
    await asyncio.sleep(0.1)
    app.sse_next.set()  # the app writes to a connection the agent already closed
    assert await portal_streams_settle(portal) == 0


async def test_portal_closing_before_the_answer_drops_the_app_connection(setup):
    """A body-less request the app has not answered yet: the portal's CLOSE (browser gone)
    ends the exchange at once and the connection to the app is closed, not reused."""
    dropped = asyncio.Event()

    async def slow(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        if not await reader.read(1):  # EOF: the agent closed the connection
            dropped.set()

    _, runtime, portal, _ = setup
    async with serving_port_3000(runtime, slow):
        stream = await portal.open_stream(_request("/slow"))
        await asyncio.sleep(0.1)
        await stream.close(p.CLOSE_NORMAL)
        await asyncio.wait_for(dropped.wait(), 5)


async def portal_streams_settle(portal) -> int:
    for _ in range(50):
        if portal.streams == 0:
            break
        await asyncio.sleep(0.02)
    return portal.streams


async def test_websocket_echo_text_and_binary(setup):
    _, _, portal, _ = setup
    stream = await portal.open_stream(
        {
            "kind": "websocket",
            "environment": "env-000000000001",
            "port": 3001,
            "path": "/hmr?x=1",
            "headers": [["Host", "env-000000000001-3001.preview.test"]],
            "subprotocols": [],
        }
    )
    records = p.RecordReader(stream.read)
    kind, payload = await asyncio.wait_for(records.next(), 5)
    assert kind == p.REC_HEAD and p.decode_json_record(payload)["accepted"] is True
    big = bytes(200_000)
    await stream.write(p.encode_record(p.REC_TEXT, "héllo".encode()))
    await stream.write(p.encode_record(p.REC_BINARY, big))
    assert await asyncio.wait_for(records.next(), 5) == (p.REC_TEXT, "héllo".encode())
    assert await asyncio.wait_for(records.next(), 5) == (p.REC_BINARY, big)
    await stream.write(p.encode_json_record(p.REC_WS_CLOSE, {"code": 1000, "reason": "bye"}))
    with contextlib.suppress(p.ProtocolError):
        while (record := await asyncio.wait_for(records.next(), 5)) is not None:
            assert record[0] == p.REC_WS_CLOSE


async def test_websocket_to_a_closed_port_is_refused(setup):
    _, _, portal, _ = setup
    stream = await portal.open_stream(
        {
            "kind": "websocket",
            "environment": "env-000000000001",
            "port": 3002,
            "path": "/",
            "headers": [],
        }
    )
    kind, payload = await asyncio.wait_for(p.RecordReader(stream.read).next(), 5)
    head = p.decode_json_record(payload)
    assert kind == p.REC_HEAD
    assert head["accepted"] is False and head["error"] == "upstream_unavailable"
