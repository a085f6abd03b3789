"""Headless Chromium: the portal page embeds a preview; the app works but sees no portal secret.

The portal runs on `portal.localhost` and previews on `*.preview.portal.localhost` (the
embedded default's names): same site, different origins, as in production.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import preview_app
from tests.chromium import Chromium
from tests.harness import Agent, Portal, create_blueprint, manage, setup_script_writing, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
]

ADMIN = "admin@portal.localhost"
PASSWORD = "browser-test-password-1"
SET_PASSWORD = (
    "from accounts.models import User; u = User.objects.get(email='{email}'); "
    "u.set_password('{password}'); u.save()"
)


@pytest.fixture
def portal(tmp_path):
    """A portal whose public name is `portal.localhost` (overrides the conftest one)."""
    server = Portal(var_dir=tmp_path / "portal")
    server.env_extra["PORTAL_URL"] = f"http://portal.localhost:{server.port}"
    server.prepare()
    manage(
        server.var_dir,
        "shell",
        "-c",
        SET_PASSWORD.format(email=ADMIN, password=PASSWORD),
        env=server.env,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def browser(tmp_path):
    chromium = Chromium(tmp_path / "chromium-profile")
    yield chromium
    chromium.stop()


def test_the_portal_embeds_the_preview_and_the_app_cannot_read_portal_cookies(
    portal, connected, admin_api, browser
):
    create_blueprint(
        admin_api,
        "browser-app",
        setup_script=setup_script_writing("app.py", Path(preview_app.__file__).read_text()),
        start_command="exec python3 app.py",
    )
    response = admin_api("POST", "/workspaces", json={"blueprint": "browser-app"})
    assert response.status_code == 201, response.text
    workspace_id = response.json()["id"]
    admin_api.wait_status(workspace_id, "running", timeout=60)

    origin = f"http://portal.localhost:{portal.port}"
    page = browser.new_page()
    page.navigate(f"{origin}/admin/login/?next=/workspaces/{workspace_id}/preview")
    # A script-readable portal cookie: the preview must not see it.
    page.evaluate("document.cookie = 'portal_marker=visible; path=/'")
    page.evaluate(
        f"document.getElementById('id_username').value = {json.dumps(ADMIN)};"
        f"document.getElementById('id_password').value = {json.dumps(PASSWORD)};"
        "document.querySelector('#login-form').submit()"
    )
    page.wait_for(f"location.pathname === '/workspaces/{workspace_id}/preview'")
    portal_cookies = page.wait_for("document.readyState === 'complete' && document.cookie")
    assert "portal_marker=visible" in portal_cookies

    preview_host = f"{workspace_id}-3000.preview.portal.localhost:{portal.port}"

    def preview_frame():
        frames = [f for f in page.frames() if preview_host in f["url"]]
        return frames[0] if frames and frames[0]["url"].endswith(f"{preview_host}/") else None

    frame = page.wait_for_value(preview_frame)
    context = page.frame_context(frame["id"])
    report = page.wait_for(
        "(document.getElementById('out') || {}).textContent?.includes('websocket') && "
        "document.getElementById('out').textContent",
        timeout=20,
        context_id=context,
    )
    seen = json.loads(report)
    assert seen["page"] is True  # the app's page and its script loaded
    assert seen["websocket"] == "echo-me"  # its WebSocket works through the preview
    for name in ("enclave_session", "enclave_csrftoken", "portal_marker", "enclave_preview"):
        # (substrings: the `__Host-` names of the portal's and the preview's cookies too)
        assert name not in seen["cookie"], seen["cookie"]
    assert seen["parent"] == "blocked"  # the portal's document is another origin

    # Cookie tossing: the app writes cookies for the portal's parent domain from its
    # origin. Browsers refuse a `__Host-` cookie with a Domain, and the portal reads only
    # its `__Host-` names, so the builder stays who they are.
    page.evaluate(
        "for (const c of ["
        "'enclave_session=attacker; domain=portal.localhost; path=/',"
        "'__Host-enclave_session=attacker; domain=portal.localhost; path=/; secure',"
        "'__Host-enclave_csrftoken=attacker; domain=portal.localhost; path=/; secure',"
        "'enclave_csrftoken=attacker; domain=localhost; path=/'"
        "]) document.cookie = c;",
        context_id=context,
    )
    who = page.wait_for(
        "fetch('/api/v1/me', {credentials: 'same-origin'}).then(r => r.json()).then(b => b.email)",
        context_id=None,
    )
    assert who == ADMIN
    portal_cookies = page.evaluate("document.cookie")
    assert "__Host-enclave_csrftoken=attacker" not in portal_cookies
    page.close()


ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "test-artifacts"


def test_an_unisolated_cluster_is_flagged_where_builders_work(portal, admin_api, browser, tmp_path):
    """An agent started with --insecure-no-sandbox: the builder's pages say so."""
    agent = Agent(
        portal.url, portal.agent_token, tmp_path / "agent", args=["--insecure-no-sandbox"]
    )
    agent.start()
    try:
        wait_until(
            lambda: admin_api("GET", "/workspaces").json()["unreachable_clusters"] == [],
            what="agent connected",
        )
        response = admin_api("POST", "/workspaces", json={"blueprint": "demo", "name": "Shop"})
        workspace_id = response.json()["id"]
        admin_api.wait_status(workspace_id, "running", timeout=60)

        origin = f"http://portal.localhost:{portal.port}"
        page = browser.new_page()
        page.navigate(f"{origin}/admin/login/?next=/")
        page.evaluate(
            f"document.getElementById('id_username').value = {json.dumps(ADMIN)};"
            f"document.getElementById('id_password').value = {json.dumps(PASSWORD)};"
            "document.querySelector('#login-form').submit()"
        )
        page.wait_for("location.pathname === '/' && document.readyState === 'complete'")
        notice = "Not isolated: other workspaces on this cluster can reach this one"
        assert page.wait_for(f"document.body.innerText.includes({json.dumps(notice)})")
        page.screenshot(ARTIFACTS / "dashboard-not-isolated.png")
        page.navigate(f"{origin}/workspaces/{workspace_id}/terminal")
        assert page.wait_for(f"document.body.innerText.includes({json.dumps(notice)})")
        page.screenshot(ARTIFACTS / "terminal-not-isolated.png")
        page.navigate(f"{origin}/admin/clusters/cluster/")
        assert page.wait_for("document.body.innerText.includes('Workspaces are not isolated')")
        page.screenshot(ARTIFACTS / "console-clusters-not-isolated.png")
        page.close()
    finally:
        agent.stop()
        agent.kill_workspaces()
