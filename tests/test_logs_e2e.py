"""End to end: a signed-in builder follows their workspace's logs — the portal (uvicorn),
the tunnel, a real agent and the start command in its sandbox."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import websockets

from tests.harness import Api, create_blueprint, loopback_session, manage

pytestmark = pytest.mark.integration

BUILDER = "builder@example.com"
PASSWORD = "logs-test-password-1"
SET_PASSWORD = (
    "from accounts.models import User; u = User.objects.get(email='{email}'); "
    "u.set_password('{password}'); u.save()"
)
# A line at start, then one every 0.3 s: the follower must see new ones arrive.
TICKING = (
    "echo hello-from-the-start-command; n=0; while :; do n=$((n+1)); echo tick-$n; sleep 0.3; done"
)


def _sign_in(portal, email: str, password: str) -> str:
    """The session cookie of a member signed in through the login page."""
    session = loopback_session()
    page = session.get(f"{portal.url}/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{portal.url}/login/",
        data={"csrfmiddlewaretoken": token, "username": email, "password": password},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text
    name = "__Host-enclave_session"  # a loopback portal's session cookie
    return f"{name}={session.cookies[name]}"


def _logs_url(portal, workspace_id: str, tail: int) -> str:
    return f"ws://127.0.0.1:{portal.port}/ws/logs/?workspace={workspace_id}&tail={tail}"


async def _message(socket) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(decode=True), 60))


def _ticks(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.fullmatch(r"tick-(\d+)", line))]


async def test_a_builder_follows_the_start_command_live(portal, connected, admin_api):
    invited = admin_api("POST", "/admin/members", json={"email": BUILDER, "role": "user"})
    assert invited.status_code == 201, invited.text
    set_password = SET_PASSWORD.format(email=BUILDER, password=PASSWORD)
    manage(portal.var_dir, "shell", "-c", set_password, env=portal.env)
    create_blueprint(admin_api, "ticker", start_command=TICKING, ports=[])
    builder = Api(portal.url, portal.token_for(BUILDER))
    launched = builder("POST", "/workspaces", json={"blueprint": "ticker", "name": "Ticker"})
    assert launched.status_code == 201, launched.text
    workspace_id = launched.json()["id"]
    builder.wait_status(workspace_id, "running", timeout=60)
    cookie = _sign_in(portal, BUILDER, PASSWORD)

    async with websockets.connect(
        _logs_url(portal, workspace_id, 2000),
        origin=portal.url,
        additional_headers={"Cookie": cookie},
        open_timeout=30,
    ) as socket:
        tail = await _message(socket)
        assert tail["type"] == "lines"
        assert "hello-from-the-start-command" in tail["lines"]
        last_in_tail = max(_ticks(tail["lines"]), default=0)
        while True:  # new output arrives on its own, after the tail
            message = await _message(socket)
            assert message["type"] == "lines", message
            if any(tick > last_in_tail for tick in _ticks(message["lines"])):
                break

    with pytest.raises(websockets.InvalidStatus) as anonymous:
        await websockets.connect(_logs_url(portal, workspace_id, 10), origin=portal.url)
    assert anonymous.value.response.status_code == 403

    # Another builder gets the answer of an unknown id.
    stranger = "stranger@example.com"
    assert admin_api("POST", "/admin/members", json={"email": stranger}).status_code == 201
    set_password = SET_PASSWORD.format(email=stranger, password=PASSWORD)
    manage(portal.var_dir, "shell", "-c", set_password, env=portal.env)
    stranger_cookie = _sign_in(portal, stranger, PASSWORD)
    async with websockets.connect(
        _logs_url(portal, workspace_id, 10),
        origin=portal.url,
        additional_headers={"Cookie": stranger_cookie},
    ) as socket:
        error = await _message(socket)
        assert error == {
            "type": "error",
            "code": "workspace_not_found",
            "detail": "Workspace not found.",
        }
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 60)
        assert closed.value.rcvd.code == 4404
