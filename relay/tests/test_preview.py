"""The preview origin in-process: host routing, cookie sessions, stripping, firewall, ending.

A scripted agent holds the tunnel (as in test_tunnel.py) and answers the `http` and
`websocket` streams the preview app opens.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator, WebsocketCommunicator

from accounts.services import member_set_active
from agent import protocol as p
from clusters.services import cluster_create
from relay.streams import LOCAL_TUNNELS
from relay.tests.asgi import application
from security_center.choices import FirewallAction
from security_center.models import ConnectionSession, FirewallEvent, FirewallRule
from security_center.services import connection_terminate
from workspaces.choices import TicketKind
from workspaces.links import preview_auth_url, preview_host
from workspaces.services import ticket_issue

pytestmark = pytest.mark.django_db(transaction=True)

WORKSPACE = "env-0123456789ab"
OTHER = "env-ba9876543210"
CLIENT = ("127.0.0.1", 50123)


async def app_with_client(scope, receive, send):
    """The portal as a server would call it: with the socket's peer address."""
    return await application({**scope, "client": CLIENT}, receive, send)


def _host(workspace: str = WORKSPACE, port: int = 3000) -> bytes:
    return f"{preview_host(workspace, port)}:8000".encode()


async def http(path: str, *, host: bytes | None = None, headers=(), method="GET", body=b""):
    query = ""
    if "?" in path:
        path, query = path.split("?", 1)
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", host or _host()), *headers],
    }
    communicator = ApplicationCommunicator(app_with_client, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(5)
    assert start["type"] == "http.response.start", start
    content = b""
    while True:
        message = await communicator.receive_output(5)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers_out = [(n.decode(), v.decode()) for n, v in start["headers"]]
    return start["status"], headers_out, content


def header(headers, name):
    return [v for n, v in headers if n.lower() == name]


class ScriptedAgent:
    """The agent end of a tunnel, driven step by step by a test."""

    def __init__(self, token: str) -> None:
        self.buffered: list[p.Frame] = []
        self.ws = WebsocketCommunicator(
            application,
            "/agent/v1/tunnel",
            headers=[(b"authorization", f"Bearer {token}".encode())],
        )

    async def connect(self) -> None:
        assert (await self.ws.connect())[0]

    async def frame(self) -> p.Frame:
        while not self.buffered:
            message = await self.ws.receive_output(5)
            if message.get("bytes") is not None:
                self.buffered.extend(map(p.decode_frame, p.split_message(message["bytes"])))
        return self.buffered.pop(0)

    async def opened(self) -> tuple[int, dict]:
        while (frame := await self.frame()).type != p.OPEN:
            pass
        return frame.stream, p.decode_open(frame)

    async def records(self, stream_id: int, until: int) -> list[tuple[int, bytes]]:
        """Records the portal sends on a stream, up to one of type `until`."""
        received: list[tuple[int, bytes]] = []
        reader = p.RecordReader(lambda: self._data(stream_id))
        while True:
            record = await reader.next()
            assert record is not None
            received.append(record)
            if record[0] == until:
                return received

    async def _data(self, stream_id: int) -> bytes:
        while True:
            frame = await self.frame()
            if frame.stream == stream_id and frame.type == p.DATA:
                return frame.payload
            if frame.stream == stream_id and frame.type == p.CLOSE:
                return b""

    async def send(self, stream_id: int, data: bytes, *, close: bool = False) -> None:
        for piece in p.chunks(data):
            await self.ws.send_to(bytes_data=p.data_frame(stream_id, piece))
        if close:
            await self.ws.send_to(bytes_data=p.close_frame(stream_id))

    async def answer(self, stream_id: int, status=200, headers=(), body=b"") -> None:
        head = {"status": status, "headers": [list(h) for h in headers]}
        data = p.encode_json_record(p.REC_HEAD, head)
        data += p.encode_record(p.REC_BODY, body) + p.encode_record(p.REC_END)
        await self.send(stream_id, data, close=True)


@pytest.fixture
async def setup(member):
    cluster, token = await sync_to_async(cluster_create)(name="edge", actor=None)
    agent = ScriptedAgent(token)
    await agent.connect()
    yield cluster, agent, member
    await agent.ws.disconnect()


async def _ticket(user, cluster, workspace=WORKSPACE, port=3000) -> str:
    _, raw = await sync_to_async(ticket_issue)(
        kind=TicketKind.PREVIEW, user=user, environment_id=workspace, cluster=cluster, port=port
    )
    return raw


async def _login(user, cluster, workspace=WORKSPACE, port=3000) -> tuple[str, str]:
    """Redeem a ticket on the preview host; returns (`name=value` cookie, raw ticket)."""
    raw = await _ticket(user, cluster, workspace, port)
    url = preview_auth_url(workspace, port, raw, "/app?x=1")
    status, headers, _ = await http(url.split(":8000", 1)[1], host=_host(workspace, port))
    assert status == 302, headers
    assert header(headers, "location") == ["/app?x=1"]
    (cookie,) = header(headers, "set-cookie")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Domain" not in cookie
    return cookie.split(";", 1)[0], raw


async def _forwarded(agent, request_coro):
    """Run a request; the scripted agent answers its stream. Returns (response, OPEN)."""
    task = asyncio.ensure_future(request_coro)
    stream_id, opened = await agent.opened()
    await agent.answer(
        stream_id,
        headers=[
            ("Content-Type", "text/plain"),
            ("X-Frame-Options", "DENY"),
            ("Set-Cookie", "a=1"),
        ],
        body=b"from the app",
    )
    return await task, opened


async def test_a_preview_host_never_reaches_django(setup):
    cluster, agent, member = setup
    status, headers, body = await http("/admin/")
    assert status == 401 and header(headers, "x-enclave-error") == ["unauthenticated"]
    assert b"Django" not in body and not header(headers, "x-frame-options")
    cookie, _ = await _login(member, cluster)
    (status, headers, body), opened = await _forwarded(
        agent, http("/admin/login/?next=/admin/", headers=[(b"cookie", cookie.encode())])
    )
    assert opened["kind"] == "http" and opened["path"] == "/admin/login/?next=/admin/"
    assert (opened["environment"], opened["port"]) == (WORKSPACE, 3000)
    assert status == 200 and body == b"from the app"


@pytest.mark.parametrize(
    "host",
    [
        b"preview.portal.localhost",
        b"nonsense.preview.portal.localhost",
        b"env-1-x.preview.portal.localhost",
    ],
)
async def test_a_preview_host_that_does_not_parse_is_404(setup, host):
    status, headers, _ = await http("/", host=host)
    assert status == 404 and header(headers, "x-enclave-error") == ["not_found"]


async def test_the_portal_still_serves_its_own_host(setup):
    status, _, _ = await http("/healthz", host=b"127.0.0.1:8000")
    assert status == 200


async def test_without_a_cookie_http_is_401_and_the_upgrade_is_refused(setup):
    status, _, _ = await http("/")
    assert status == 401
    socket = WebsocketCommunicator(app_with_client, "/hmr", headers=[(b"host", _host())])
    connected, _ = await socket.connect()
    assert not connected


async def test_a_ticket_works_once(setup):
    cluster, _, member = setup
    _, raw = await _login(member, cluster)
    status, headers, _ = await http(f"/__enclave__/auth?ticket={raw}&next=/")
    assert status == 403 and header(headers, "x-enclave-error") == ["ticket_invalid"]
    assert not header(headers, "set-cookie")


async def test_a_ticket_for_another_port_is_rejected(setup):
    cluster, _, member = setup
    raw = await _ticket(member, cluster, port=3001)
    status, _, _ = await http(f"/__enclave__/auth?ticket={raw}")
    assert status == 403


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example/x", "/\\evil"])
async def test_auth_redirects_only_to_a_path_on_the_same_host(setup, next_path):
    cluster, _, member = setup
    raw = await _ticket(member, cluster)
    status, headers, _ = await http(f"/__enclave__/auth?ticket={raw}&next={next_path}")
    assert status == 302 and header(headers, "location") == ["/"]


async def test_a_cookie_for_workspace_a_opens_neither_b_nor_another_port(setup):
    cluster, _, member = setup
    cookie, _ = await _login(member, cluster)
    for host in (_host(OTHER, 3000), _host(WORKSPACE, 3001)):
        status, _, _ = await http("/", host=host, headers=[(b"cookie", cookie.encode())])
        assert status == 401


async def test_portal_credentials_are_stripped_and_forwarding_headers_set(setup):
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    cookies = f"enclave_session=portal-secret; {cookie}; enclave_csrftoken=csrf; app=kept"
    headers = [
        (b"cookie", cookies.encode()),
        (b"authorization", b"Token portal-token"),
        (b"x-forwarded-for", b"6.6.6.6"),
        (b"connection", b"keep-alive"),
        (b"accept", b"text/html"),
    ]
    (_, out, _), opened = await _forwarded(agent, http("/page", headers=headers))
    sent = {name.lower(): value for name, value in opened["headers"]}
    assert sent["cookie"] == "app=kept"
    assert "authorization" not in sent and "connection" not in sent
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert sent["x-forwarded-host"] == _host().decode()
    assert sent["x-forwarded-proto"] == "http"
    assert sent["accept"] == "text/html"
    assert not header(out, "x-frame-options")
    assert header(out, "set-cookie") == ["a=1"]
    (policy,) = header(out, "content-security-policy")
    assert policy.startswith("frame-ancestors 'self' http")


async def test_request_body_is_streamed_to_the_agent(setup):
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    headers = [(b"cookie", cookie.encode()), (b"content-length", b"11")]
    task = asyncio.ensure_future(http("/echo", method="POST", headers=headers, body=b"hello world"))
    stream_id, opened = await agent.opened()
    assert opened["body"] is True and opened["method"] == "POST"
    records = await agent.records(stream_id, until=p.REC_END)
    assert b"".join(payload for kind, payload in records if kind == p.REC_BODY) == b"hello world"
    await agent.answer(stream_id, status=201, body=b"ok")
    status, _, body = await task
    assert (status, body) == (201, b"ok")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("workspace_not_running", 409),
        ("upstream_unavailable", 502),
        ("upstream_timeout", 504),
    ],
)
async def test_agent_errors_become_pages(setup, error, status):
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    task = asyncio.ensure_future(http("/", headers=[(b"cookie", cookie.encode())]))
    stream_id, _ = await agent.opened()
    head = {"status": status, "headers": [], "error": error, "detail": "Port 3000 says no."}
    await agent.send(stream_id, p.encode_json_record(p.REC_HEAD, head), close=True)
    got, headers, body = await task
    assert got == status and header(headers, "x-enclave-error") == [error]
    assert b"Port 3000 says no." in body


async def test_an_unreachable_cluster_is_503(setup):
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    await agent.ws.disconnect()
    await asyncio.sleep(1.1)  # past the session's revalidation: the tunnel channel is gone
    status, headers, _ = await http("/", headers=[(b"cookie", cookie.encode())])
    assert status == 503 and header(headers, "x-enclave-error") == ["cluster_unavailable"]


async def test_websocket_frames_both_ways(setup):
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    socket = WebsocketCommunicator(
        app_with_client,
        "/hmr",
        headers=[(b"host", _host()), (b"cookie", cookie.encode())],
        subprotocols=["vite-hmr"],
    )
    connecting = asyncio.ensure_future(socket.connect(timeout=5))
    stream_id, opened = await agent.opened()
    assert opened["kind"] == "websocket" and opened["subprotocols"] == ["vite-hmr"]
    accepted = {"accepted": True, "subprotocol": "vite-hmr"}
    await agent.send(stream_id, p.encode_json_record(p.REC_HEAD, accepted))
    assert await connecting == (True, "vite-hmr")
    await socket.send_to(text_data="ping")
    assert await agent.records(stream_id, until=p.REC_TEXT) == [(p.REC_TEXT, b"ping")]
    await agent.send(stream_id, p.encode_record(p.REC_BINARY, b"\x00\x01"))
    assert await socket.receive_from(5) == b"\x00\x01"
    await agent.send(stream_id, p.encode_json_record(p.REC_WS_CLOSE, {"code": 4001}))
    assert (await socket.receive_output(5)) == {"type": "websocket.close", "code": 4001}


async def test_firewall_deny_is_403_and_recorded(setup):
    cluster, _, member = setup
    cookie, _ = await _login(member, cluster)
    await sync_to_async(FirewallRule.objects.create)(
        action=FirewallAction.DENY, cidr="127.0.0.0/8", priority=1
    )
    await asyncio.sleep(1.1)  # rules are cached for at most a second
    status, headers, _ = await http("/", headers=[(b"cookie", cookie.encode())])
    assert status == 403 and header(headers, "x-enclave-error") == ["firewall_blocked"]
    event = await sync_to_async(FirewallEvent.objects.get)()
    assert (event.kind, event.ip, event.user_email) == ("preview", "127.0.0.1", member.email)
    socket = WebsocketCommunicator(
        app_with_client, "/", headers=[(b"host", _host()), (b"cookie", cookie.encode())]
    )
    assert not (await socket.connect())[0]
    raw = await _ticket(member, cluster)
    status, _, _ = await http(f"/__enclave__/auth?ticket={raw}")
    assert status == 403
    assert await sync_to_async(FirewallEvent.objects.count)() == 3


async def test_one_session_per_cookie_with_batched_counters(setup):
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    for _ in range(3):
        await _forwarded(agent, http("/", headers=[(b"cookie", cookie.encode())]))
    session = await sync_to_async(ConnectionSession.objects.get)()
    assert (session.kind, session.environment_id, session.port) == ("preview", WORKSPACE, 3000)
    assert session.ended_at is None and session.requests <= 1  # not written per request
    from relay.consumers.preview.sessions import registry

    await (await registry()).flush()
    await sync_to_async(session.refresh_from_db)()
    assert session.requests == 4 and session.bytes_out == 3 * len(b"from the app")
    assert LOCAL_TUNNELS[cluster.pk].mux.streams == 0  # every stream was closed


async def test_a_preview_through_another_processs_tunnel(setup):
    """The tunnel lives in another portal process: frames go through the channel layer."""
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    local = LOCAL_TUNNELS.pop(cluster.pk)  # this process no longer holds the tunnel
    try:
        (status, _, body), opened = await _forwarded(
            agent, http("/remote", headers=[(b"cookie", cookie.encode())])
        )
    finally:
        LOCAL_TUNNELS[cluster.pk] = local
    assert (status, body, opened["path"]) == (200, b"from the app", "/remote")


async def test_ending_the_session_stops_the_cookie_at_once(setup, admin_member):
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    (status, _, _), _ = await _forwarded(agent, http("/", headers=[(b"cookie", cookie.encode())]))
    assert status == 200
    session = await sync_to_async(ConnectionSession.objects.get)()
    assert session.channel_name
    ended = await sync_to_async(connection_terminate)(session=session, actor=admin_member)
    assert ended
    for _ in range(50):
        status, _, _ = await http("/", headers=[(b"cookie", cookie.encode())])
        if status == 401:
            break
        await asyncio.sleep(0.01)
    assert status == 401


async def test_suspending_the_member_ends_the_preview_session_within_a_second(setup, admin_member):
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    (status, _, _), _ = await _forwarded(agent, http("/", headers=[(b"cookie", cookie.encode())]))
    assert status == 200
    unused = await _ticket(member, cluster)
    await sync_to_async(member_set_active)(user=member, active=False, actor=admin_member)
    session = await sync_to_async(ConnectionSession.objects.get)()
    assert session.close_reason == "member_suspended" and session.ended_at is not None
    deadline = asyncio.get_running_loop().time() + 1.0
    while asyncio.get_running_loop().time() < deadline:
        status, _, _ = await http("/", headers=[(b"cookie", cookie.encode())])
        if status == 401:
            break
        await asyncio.sleep(0.01)
    assert status == 401
    status, headers, _ = await http(f"/__enclave__/auth?ticket={unused}&next=/")
    assert status == 403 and header(headers, "x-enclave-error") == ["ticket_invalid"]


async def test_an_idle_session_ends_on_its_next_request(setup):
    cluster, _, member = setup
    cookie, _ = await _login(member, cluster)
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(hours=1)
    await sync_to_async(ConnectionSession.objects.update)(last_activity_at=long_ago)
    from relay.consumers.preview.sessions import registry

    reg = await registry()
    for session in reg.sessions.values():
        session.last_activity = 0.0
        session.checked_at = 0.0
    status, _, _ = await http("/", headers=[(b"cookie", cookie.encode())])
    assert status == 401
    session = await sync_to_async(ConnectionSession.objects.get)()
    assert session.close_reason == "idle" and session.ended_at is not None


def test_end_idle_previews_command_ends_only_idle_preview_sessions(member):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from security_center.services import connection_open

    idle = connection_open(user=member, ip="127.0.0.1", kind="preview", environment_id=WORKSPACE)
    busy = connection_open(user=member, ip="127.0.0.1", kind="preview", environment_id=WORKSPACE)
    shell = connection_open(user=member, ip="127.0.0.1", kind="shell", environment_id=WORKSPACE)
    long_ago = timezone.now() - timedelta(hours=1)
    ConnectionSession.objects.filter(pk__in=[idle.pk, shell.pk]).update(last_activity_at=long_ago)
    call_command("end_idle_previews")
    idle.refresh_from_db()
    busy.refresh_from_db()
    shell.refresh_from_db()
    assert idle.close_reason == "idle" and idle.ended_at is not None
    assert busy.ended_at is None and shell.ended_at is None


def _request_scope(cookie: str, path: str = "/events") -> dict:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", _host()), (b"cookie", cookie.encode())],
    }


async def _closed_by_portal(agent: ScriptedAgent, stream_id: int) -> bool:
    while True:
        frame = await agent.frame()
        if frame.stream == stream_id and frame.type == p.CLOSE:
            return True


@pytest.mark.parametrize("answer", ["streaming", "not_yet"])
async def test_a_browser_that_leaves_ends_the_agent_stream(setup, answer):
    """Whether the answer streams (server-sent events) or has not started yet (a slow
    app, a long poll), a browser going away closes the stream: the app is not left
    writing into nowhere, nor waited for."""
    cluster, agent, member = setup
    cookie, _ = await _login(member, cluster)
    communicator = ApplicationCommunicator(app_with_client, _request_scope(cookie))
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    stream_id, _ = await agent.opened()
    if answer == "streaming":
        head = {"status": 200, "headers": [["Content-Type", "text/event-stream"]]}
        await agent.send(stream_id, p.encode_json_record(p.REC_HEAD, head))
        await agent.send(stream_id, p.encode_record(p.REC_BODY, b"data: 1\n\n"))
        start = await communicator.receive_output(5)
        assert start["type"] == "http.response.start" and start["status"] == 200
        body = b""
        while not body:
            body = (await communicator.receive_output(5))["body"]
        assert body == b"data: 1\n\n"
    else:
        await asyncio.sleep(0.2)  # longer than the portal waits before watching
    await communicator.send_input({"type": "http.disconnect"})
    assert await asyncio.wait_for(_closed_by_portal(agent, stream_id), 5)
    await communicator.wait(5)


@pytest.mark.parametrize(
    ("set_cookie", "kept"),
    [
        ("theme=dark; Path=/", True),
        ("theme=dark; Path=/; HttpOnly; SameSite=Lax", True),
        ("theme=dark; Domain={host}", True),  # scoped to the preview host itself
        ("theme=dark; Domain=.{host}", True),
        ("enclave_session=attacker; Domain=portal.localhost; Path=/", False),  # tossing
        ("x=1; Domain=localhost", False),
        ("x=1; Path=/; domain=PORTAL.localhost", False),
        ("enclave_session=attacker; Path=/", False),  # the portal's own names, host-only too
        ("__Host-enclave_session=attacker; Path=/; Secure", False),
        ("enclave_preview=forged; Path=/", False),
    ],
)
def test_an_app_cannot_toss_a_cookie_onto_the_portal(set_cookie, kept, settings):
    from relay.consumers.preview.proxy import cookie_allowed

    settings.SESSION_COOKIE_NAME = "__Host-enclave_session"
    host = preview_host(WORKSPACE, 3000)
    assert cookie_allowed(set_cookie.format(host=host), host) is kept
