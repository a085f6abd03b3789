"""Headless Chromium (Playwright, the Debian binary): the preview bridge between a page on the
portal's origin and a real preview in its iframe.

The portal page is a test page written into a document of the real portal (so it has the
portal's origin and address): Playwright's `route` would answer it from the browser, which
Chromium counts as a public address, and its Local Network Access checks then refuse that
page frames on loopback. The app is `tests/preview_app.py` in a real workspace.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Frame, Page, expect, sync_playwright

from tests import browser, preview_app
from tests.harness import Portal, PreviewClient, create_blueprint, setup_script_writing, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]

EDITOR = """<!doctype html><html><head><meta charset="utf-8"><title>Editor (test page)</title>
<style>body{font:14px system-ui,sans-serif;margin:1rem}iframe{width:46%;height:250px;
border:1px solid #999;vertical-align:top;margin:0 .5rem .5rem 0}
pre{font-size:12px;white-space:pre-wrap}</style></head>
<body><h1>Portal origin: the editor's preview frame (test page)</h1>
<iframe title="Preview" src="__PREVIEW_URL__"></iframe>
<iframe title="Foreign" src="__FOREIGN_URL__"></iframe>
<pre id="log"></pre>
<script>
window.received = [];
addEventListener("message", (event) => {
  if (!event.data || event.data.source !== "enclave-preview") return;
  received.push({origin: event.origin, data: event.data});
  document.getElementById("log").textContent =
    received.map((m) => m.origin + " " + JSON.stringify(m.data)).join("\\n");
});
window.command = (message) => {
  const frame = document.querySelector("iframe[title=Preview]").contentWindow;
  frame.postMessage({source: "enclave-portal", ...message}, __PREVIEW_ORIGIN__);
};
window.viaForeign = (message) => frames[1].postMessage(message, "*");
window.addPreview = (url) => {
  const frame = document.createElement("iframe");
  frame.title = "Idle port";
  frame.src = url;
  document.body.insertBefore(frame, document.getElementById("log"));
};
</script></body></html>"""
"""What the editor does with the bridge: a frame, a message listener, commands."""

FOREIGN = (
    "<!doctype html><title>foreign</title><p>Another origin (opaque)</p><script>"
    "addEventListener('message', (e) => parent.frames[0].postMessage(e.data, '*'));"
    "</script>"
)
"""A frame of another origin that passes what it is given on to the preview."""

FIND = """([after, origin, wanted]) => {
  const found = window.received.slice(after).find((m) => m.origin === origin &&
    Object.keys(wanted).every((k) => JSON.stringify(m.data[k]) === JSON.stringify(wanted[k])));
  return found ? found.data : null;
}"""


@pytest.fixture
def portal(tmp_path):
    """A portal whose public name is `portal.localhost` (previews on its subdomains)."""
    server = Portal(var_dir=tmp_path / "portal")
    server.env_extra["PORTAL_URL"] = f"http://portal.localhost:{server.port}"
    server.prepare()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def chromium():
    with sync_playwright() as playwright:
        launched = browser.launch(playwright)
        yield launched
        launched.close()


def _received(page: Page, after: int, origin: str, kind: str, **fields) -> dict:
    """The first message from `origin` of type `kind` with `fields`, after the first `after`."""
    wanted = {"type": kind, **fields}
    return page.wait_for_function(FIND, arg=[after, origin, wanted]).json_value()


def _count(page: Page) -> int:
    return page.evaluate("window.received.length")


def _frame(page: Page, origin: str) -> Frame:
    return next(frame for frame in page.frames if frame.url.startswith(origin))


def _app_log(frame: Frame, entries: int) -> list[dict]:
    """The app's own log of the messages its page received, once it holds `entries`."""
    text = frame.wait_for_function(
        """n => { const text = document.getElementById("log").textContent;
                  return JSON.parse(text).length >= n && text; }""",
        arg=entries,
    ).json_value()
    return json.loads(text)


def test_the_bridge_tells_the_portal_where_the_preview_is_and_obeys_only_the_portal(
    portal, connected, admin_api, chromium
):
    """A page on the portal's origin frames a real preview, as the editor does: it hears
    every change of location, drives back, forward, navigate and reload, and a foreign
    frame's command is ignored; an idle port's error page reports itself and retries with
    a growing delay, also in a tab of its own."""
    create_blueprint(
        admin_api,
        "bridge-app",
        setup_script=setup_script_writing("app.py", Path(preview_app.__file__).read_text()),
        start_command="exec python3 app.py",
        ports=[{"port": 3000, "name": "app"}, {"port": 3001, "name": "idle"}],
    )
    response = admin_api("POST", "/workspaces", json={"blueprint": "bridge-app"})
    assert response.status_code == 201, response.text
    workspace_id = response.json()["id"]
    admin_api.wait_status(workspace_id, "running", timeout=60)

    def ticket_url(port: int, path: str) -> str:
        body = {"port": port, "path": path}
        response = admin_api("POST", f"/workspaces/{workspace_id}/preview-ticket", json=body)
        assert response.status_code == 201, response.text
        return response.json()["url"]

    probe = PreviewClient.from_ticket_url(portal, ticket_url(3000, "/"))
    wait_until(lambda: probe.get("/spa").status_code == 200, what="app answering via preview")

    origin = f"http://portal.localhost:{portal.port}"
    preview_origin = f"http://{workspace_id}-3000.preview.portal.localhost:{portal.port}"
    idle_origin = preview_origin.replace("-3000.", "-3001.")
    context = browser.new_context(chromium)
    page = context.new_page()
    page.goto(f"{origin}/healthz")
    page.set_content(
        EDITOR.replace("__PREVIEW_URL__", ticket_url(3000, "/spa"))
        .replace("__FOREIGN_URL__", "data:text/html," + quote(FOREIGN))
        .replace("__PREVIEW_ORIGIN__", json.dumps(preview_origin))
    )
    assert page.url == f"{origin}/healthz"  # the portal's origin, the test's page
    app = page.get_by_title("Preview", exact=True).content_frame

    def location(after: int, path: str, **fields) -> dict:
        return _received(page, after, preview_origin, "location", path=path, **fields)

    # On load, after the app's pushState (with the title it set), after a hash change.
    assert location(0, "/spa", title="SPA app")
    mark = _count(page)
    app.get_by_role("button", name="Push /spa/pushed").click()
    assert location(mark, "/spa/pushed", title="Pushed")
    mark = _count(page)
    app.get_by_role("link", name="To the section").click()
    assert location(mark, "/spa/pushed#section")

    # Back and forward within the frame's own history (popstate).
    mark = _count(page)
    page.evaluate("command({type: 'back'})")
    assert location(mark, "/spa/pushed")
    mark = _count(page)
    page.evaluate("command({type: 'forward'})")
    assert location(mark, "/spa/pushed#section")

    # Commands that must be ignored: from a foreign origin, or to another origin. The
    # app's log shows each arrived, and that no navigation started while it was handled.
    frame = _frame(page, preview_origin)
    seen = len(_app_log(frame, 0))  # back and forward so far
    page.evaluate(
        "viaForeign({source: 'enclave-portal', type: 'navigate', path: '/spa/pushed#foreign'})"
    )
    assert _app_log(frame, seen + 1)[seen]["origin"] == "null"
    for path in ("//evil.example/x", "/\\evil.example/x", "https://evil.example/"):
        page.evaluate("path => command({type: 'navigate', path})", path)
    # The same command from the portal is obeyed: the fragment changes at once.
    mark = _count(page)
    page.evaluate("command({type: 'navigate', path: '/spa/pushed#foreign'})")
    log = _app_log(frame, seen + 5)[seen:]
    assert [entry["origin"] for entry in log] == ["null", origin, origin, origin, origin]
    assert [entry["navigating"] for entry in log[:4]] == [None] * 4
    assert [entry["hash"] for entry in log[:4]] == ["#section"] * 4
    assert log[4]["hash"] == "#foreign"
    assert log[4]["navigating"] == f"{preview_origin}/spa/pushed#foreign"
    assert location(mark, "/spa/pushed#foreign")
    paths = [m["data"].get("path", "") for m in page.evaluate("window.received")]
    assert not [path for path in paths if "evil" in path]

    # Navigate to another page of the app, then reload it: a fresh document each time,
    # and a good load forgets the error-page retries of its path.
    mark = _count(page)
    page.evaluate("command({type: 'navigate', path: '/spa?via=navigate'})")
    assert location(mark, "/spa?via=navigate", title="SPA app")
    load_id = app.get_by_role("status", name="Load id")
    expect(load_id).not_to_have_text("")
    loaded = load_id.text_content()
    retry_key = "enclave-preview-retry:/spa?via=navigate"
    frame.evaluate("key => sessionStorage.setItem(key, '3')", retry_key)
    mark = _count(page)
    page.evaluate("command({type: 'reload'})")
    assert location(mark, "/spa?via=navigate")
    expect(load_id).not_to_have_text(re.compile(rf"^({re.escape(loaded)})?$"))
    assert frame.evaluate("key => sessionStorage.getItem(key)", retry_key) is None

    # A port where nothing listens: the error page reports itself, then retries in 1 s, 2 s.
    mark = _count(page)
    page.evaluate("url => addPreview(url)", ticket_url(3001, "/"))
    first = _received(page, mark, idle_origin, "error", code="upstream_unavailable", retry_in=1)
    assert first["status"] == 502 and "3001" in first["detail"]
    assert _received(page, mark, idle_origin, "location", path="/")
    assert _received(page, mark, idle_origin, "error", code="upstream_unavailable", retry_in=2)
    page.set_viewport_size({"width": 1280, "height": 1000})
    browser.screenshot(page, "preview-bridge-editor")

    # The same page in a tab of its own says when it will try again.
    tab = context.new_page()
    tab.set_viewport_size({"width": 900, "height": 420})
    tab.goto(ticket_url(3001, "/"))
    status = tab.get_by_role("status")
    expect(status).to_have_text(re.compile(r"^Retrying in \d+ s…$"))
    tab.wait_for_function("Number(sessionStorage.getItem('enclave-preview-retry:/')) >= 2")
    expect(status).to_have_text(re.compile(r"^Retrying in \d+ s…$"))  # after reloading itself
    browser.screenshot(tab, "preview-bridge-error-tab")
    context.close()
