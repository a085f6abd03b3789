"""End to end: a real portal (daphne, then uvicorn) + a real agent + a small real app in a
workspace, seen through a preview."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from relay.consumers.preview import bridge
from tests import preview_app
from tests.harness import (
    Portal,
    PreviewClient,
    create_blueprint,
    setup_script_writing,
    wait_until,
)

pytestmark = pytest.mark.integration

APP_SOURCE = Path(preview_app.__file__).read_text()


@pytest.fixture(params=["daphne", "uvicorn"])
def portal(request, tmp_path):
    """The portal under daphne, then under uvicorn (the production default)."""
    server = Portal(var_dir=tmp_path / "portal", server=request.param)
    server.prepare()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workspace(portal, connected, admin_api) -> str:
    create_blueprint(
        admin_api,
        "preview-app",
        setup_script=setup_script_writing("app.py", APP_SOURCE),
        start_command="exec python3 app.py",
        ports=[{"port": 3000, "name": "app"}, {"port": 3001, "name": "idle"}],
    )
    response = admin_api("POST", "/workspaces", json={"blueprint": "preview-app"})
    assert response.status_code == 201, response.text
    workspace_id = response.json()["id"]
    admin_api.wait_status(workspace_id, "running", timeout=60)
    return workspace_id


def _preview(portal, admin_api, workspace_id: str, port: int = 3000) -> PreviewClient:
    response = admin_api("POST", f"/workspaces/{workspace_id}/preview-ticket", json={"port": port})
    assert response.status_code == 201 or response.status_code == 200, response.text
    ticket = response.json()
    assert {"ticket", "expires_at", "url"} <= set(ticket)
    assert urlsplit(ticket["url"]).hostname == f"{workspace_id}-{port}.preview.portal.localhost"
    return PreviewClient.from_ticket_url(portal, ticket["url"])


def test_preview_end_to_end(portal, admin_api, workspace):
    client = _preview(portal, admin_api, workspace)
    wait_until(lambda: client.get("/").status_code == 200, what="app answering via preview")

    page = client.get("/")
    assert page.status_code == 200 and b"Preview app" in page.content
    assert "X-Frame-Options" not in page.headers
    assert page.headers["Content-Security-Policy"] == f"frame-ancestors 'self' {portal.url}"

    # A page asked for as a browser asks for a document gets the preview bridge's tag, its
    # length fixed; the app is asked not to compress it; the script is public.
    document = {"Sec-Fetch-Dest": "document", "Accept-Encoding": "gzip, br"}
    framed = client.get("/", headers=document)
    tag = (
        f'<script src="{bridge.BRIDGE_PATH}?v={bridge.VERSION}" data-portal="{portal.url}">'
        "</script>"
    ).encode()
    assert framed.content == page.content.replace(b"<head>", b"<head>" + tag, 1)
    assert int(framed.headers["Content-Length"]) == len(framed.content)
    seen = {name.lower(): value for name, value in client.get("/headers", headers=document).json()}
    assert seen["accept-encoding"] == "identity"
    script = PreviewClient(portal, client.host).get(f"{bridge.BRIDGE_PATH}?v={bridge.VERSION}")
    assert script.status_code == 200 and script.content == bridge.SOURCE
    assert script.headers["Content-Type"] == "application/javascript; charset=utf-8"
    head = client.request("HEAD", bridge.BRIDGE_PATH)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(bridge.SOURCE))

    # POST with a body, sized and chunked.
    body = bytes(range(256)) * 4096
    echoed = client.post("/echo", data=body).json()
    assert echoed == {**echoed, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    chunked = client.post("/echo", data=iter([b"part one, ", b"part two"])).json()
    assert chunked["sha256"] == hashlib.sha256(b"part one, part two").hexdigest()

    # A 20 MiB download arrives intact.
    download = client.get("/download", stream=True)
    digest, size = hashlib.sha256(), 0
    for chunk in download.iter_content(chunk_size=1 << 16):
        digest.update(chunk)
        size += len(chunk)
    expected = preview_app.BLOCK * preview_app.DOWNLOAD_BLOCKS
    assert size == len(expected) == 20 * 1024 * 1024
    assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()

    # Server-sent events arrive one by one, as the app writes them.
    events = client.get("/sse", stream=True)
    assert events.headers["Content-Type"] == "text/event-stream"
    arrivals = []
    for line in events.iter_lines(chunk_size=1):
        if line.startswith(b"data:"):
            arrivals.append(time.monotonic())
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 0.9  # 4 gaps of 0.3 s: not buffered to the end

    # Redirects and Set-Cookie from the app are kept.
    redirect = client.get("/redirect")
    assert redirect.status_code == 302 and redirect.headers["Location"] == "/headers"
    assert redirect.raw.headers.getlist("Set-Cookie") == ["app_cookie=yes; Path=/", "second=2"]


def test_the_app_never_sees_portal_credentials(portal, admin_api, workspace):
    client = _preview(portal, admin_api, workspace)
    wait_until(lambda: client.get("/").status_code == 200, what="app answering via preview")
    seen = client.get(
        "/headers",
        headers={
            "Cookie": "enclave_session=portal-session; enclave_csrftoken=csrf; app_cookie=yes",
            "Authorization": "Token not-for-the-app",
            "X-Forwarded-For": "6.6.6.6",
        },
    ).json()
    headers = {name.lower(): value for name, value in seen}
    assert headers["cookie"] == "app_cookie=yes"
    assert "authorization" not in headers
    # The portal sets X-Forwarded-For to the client it resolved, never the browser's chain:
    # neither server believes the header (the launcher runs uvicorn without proxy headers;
    # only TRUSTED_PROXIES makes the portal read it).
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["host"] == headers["x-forwarded-host"] == client.host


def test_a_portal_page_is_not_reachable_through_a_preview_host(portal, admin_api, workspace):
    client = _preview(portal, admin_api, workspace)
    wait_until(lambda: client.get("/").status_code == 200, what="app answering via preview")
    for path in ("/admin/", "/api/v1/me", "/healthz"):
        response = client.get(path, headers={"Authorization": "Token whatever"})
        assert response.content == b"no such page in the app", path
    anonymous = PreviewClient(portal, client.host)
    response = anonymous.get("/admin/")
    assert response.status_code == 401 and response.headers["X-Enclave-Error"] == "unauthenticated"


def test_websocket_echo_through_the_preview(portal, admin_api, workspace):
    client = _preview(portal, admin_api, workspace)
    wait_until(lambda: client.get("/").status_code == 200, what="app answering via preview")
    sock = socket.create_connection(("127.0.0.1", portal.port))
    with ws_connect(
        f"ws://{client.host}/ws", sock=sock, additional_headers={"Cookie": client.cookie}
    ) as ws:
        ws.send("hello through the tunnel")
        assert ws.recv(timeout=10) == "hello through the tunnel"
        ws.send(b"\x00" * 100_000)
        assert ws.recv(timeout=10) == b"\x00" * 100_000
    refused = socket.create_connection(("127.0.0.1", portal.port))
    with pytest.raises(InvalidStatus) as refusal:
        ws_connect(f"ws://{client.host}/ws", sock=refused, open_timeout=10)
    assert refusal.value.response.status_code in (401, 403)


def test_clear_pages_for_a_silent_port_and_a_stopped_workspace(portal, admin_api, workspace):
    idle = _preview(portal, admin_api, workspace, port=3001)
    response = idle.get("/")
    assert response.status_code == 502 and response.headers["X-Enclave-Error"] == (
        "upstream_unavailable"
    )
    assert b"3001" in response.content
    client = _preview(portal, admin_api, workspace)
    assert admin_api("POST", f"/workspaces/{workspace}/stop").status_code == 200
    admin_api.wait_status(workspace, "stopped")
    response = client.get("/")
    assert response.status_code == 409
    assert response.headers["X-Enclave-Error"] == "workspace_not_running"


def test_tickets_are_single_use_and_bound_to_their_workspace(portal, admin_api, workspace):
    response = admin_api("POST", f"/workspaces/{workspace}/preview-ticket", json={"port": 3000})
    url = response.json()["url"]
    parts = urlsplit(url)
    first = PreviewClient(portal, parts.netloc).get(f"{parts.path}?{parts.query}")
    assert first.status_code == 302
    replay = PreviewClient(portal, parts.netloc).get(f"{parts.path}?{parts.query}")
    assert replay.status_code == 403 and replay.headers["X-Enclave-Error"] == "ticket_invalid"
    cookie = first.headers["Set-Cookie"].split(";", 1)[0]
    other_port = PreviewClient(portal, parts.netloc.replace("-3000.", "-3001.", 1))
    other_port.cookie = cookie
    assert other_port.get("/").status_code == 401
    listing = json.loads(admin_api("GET", "/admin/connections").text)
    rows = listing.get("results", listing) if isinstance(listing, dict) else listing
    assert any(row.get("kind") == "preview" for row in rows)
