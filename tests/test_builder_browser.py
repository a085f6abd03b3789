"""The builder's day in headless Chromium: sign in, launch, terminal, files, preview, lifecycle.

A real portal (the production launcher) on `portal.localhost` and a real agent with
sandboxed workspaces; Chromium (Playwright, the Debian binary) finds everything by its
accessible name — roles and labels are the contract of the pages. Every page and state
the journey passes through is saved as `var/test-artifacts/builder-*.png`.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests import browser
from tests.harness import Api, Portal, create_blueprint, create_member, setup_script_writing

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ADA = "ada@example.com"
BEN = "ben@example.com"
PASSWORD = "builder-password-1"

SITE_PAGES = {
    "index.html": (
        "<!doctype html><html><head><meta charset='utf-8'><title>Site</title></head><body>"
        "<h1>Version one</h1><a href='/about.html'>About</a></body></html>"
    ),
    "about.html": (
        "<!doctype html><html><head><meta charset='utf-8'><title>About</title></head><body>"
        "<h1>About this site</h1><a href='/spa.html'>Single-page app</a></body></html>"
    ),
    "spa.html": (
        "<!doctype html><html><head><meta charset='utf-8'><title>App</title></head><body>"
        "<h1>Single-page app</h1><button type='button' "
        "onclick=\"history.pushState({}, '', '/spa/settings'); "
        "document.querySelector('h1').textContent = 'Settings'\">Open settings</button>"
        "</body></html>"
    ),
}
EDITED_INDEX = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Site</title></head><body>\n"
    "<h1>Version two</h1>\n<a href='/about.html'>About</a>\n</body></html>\n"
)
PHASES = [  # the blueprints here have no repository: no cloning phase is shown
    "Validating",
    "Creating",
    "Configuring",
    "Starting the app",
    "Finalizing",
]
"""The launch dialog's steps, in order."""
SLOW_SETUP = "sleep 3\n"
"""Ends the setup script: the launch dialog shows its phases long enough to be watched."""


@pytest.fixture
def portal(tmp_path):
    """A portal whose public name is `portal.localhost` (previews on its subdomains),
    with two builders who sign in with a password."""
    server = Portal(var_dir=tmp_path / "portal")
    server.env_extra["PORTAL_URL"] = f"http://portal.localhost:{server.port}"
    server.prepare()
    for email in (ADA, BEN):
        create_member(server, email, PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        launched = browser.launch(playwright)
        yield launched
        launched.close()


def _origin(portal: Portal) -> str:
    return f"http://portal.localhost:{portal.port}"


def _site_blueprint(admin_api: Api) -> dict:
    """A static site on port 3000 served from the home, with a terminal and a files tab."""
    setup = "".join(setup_script_writing(name, page) for name, page in SITE_PAGES.items())
    tabs = [{"kind": "terminal", "title": "Terminal"}, {"kind": "files", "title": "Files"}]
    return create_blueprint(
        admin_api,
        "static-site",
        name="Static site",
        setup_script=setup + SLOW_SETUP,
        start_command='exec python3 -m http.server "$PORT" --bind 127.0.0.1',
        layout={"tabs": tabs, "locked": False, "preview": True, "path_bar": True},
    )


def _status(page: Page):
    """The workspace's status badge in the editor bar (role status, raw `data-status`)."""
    return page.locator("#ws-status")


def _actions(page: Page):
    return page.get_by_role("group", name="Workspace actions")


def _launch(page: Page, blueprint_name: str, workspace_name: str, *, shoot: str = "") -> str:
    """Launch from the catalog through the dialog; returns the workspace id once the
    editor has opened by itself. With `shoot`, the dialog is saved as
    `<shoot>-launch-*.png` while its phases show (the setup script sleeps)."""
    page.get_by_role("button", name=f"Launch {blueprint_name}").click()
    dialog = page.get_by_role("dialog")
    name = dialog.get_by_label("Workspace name")
    expect(name).to_be_visible()
    name.fill(workspace_name)
    if shoot:
        browser.screenshot(page, f"{shoot}-launch-dialog")
    dialog.get_by_role("button", name="Launch", exact=True).click()
    expect(dialog.get_by_role("heading", name=f"Launching {workspace_name}")).to_be_visible()
    if shoot:
        expect(dialog.get_by_role("listitem")).to_have_text(PHASES)
        expect(dialog.locator("[aria-current=step]")).to_have_count(1)
        browser.screenshot(page, f"{shoot}-launch-phases")
    page.wait_for_url(re.compile(r"/workspaces/[^/]+/$"), timeout=60_000)
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def _terminal(page: Page, tab: str):
    """The terminal of the open tab `tab`."""
    return page.get_by_role("tabpanel", name=tab, exact=True).get_by_label("Terminal", exact=True)


@pytest.mark.timeout(900)
def test_the_builders_journey_from_sign_in_to_delete(portal, connected, admin_api, chromium):
    _site_blueprint(admin_api)
    origin = _origin(portal)
    ada_api = Api(portal.url, portal.token_for(ADA))
    context = browser.new_context(chromium)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    page = context.new_page()

    page.goto(f"{origin}/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    browser.screenshot(page, "builder-01-sign-in")
    browser.sign_in(page, origin, ADA, PASSWORD)
    expect(page.get_by_role("heading", name="Build something")).to_be_visible()
    expect(page.get_by_role("heading", name="Your workspaces")).to_be_hidden()
    browser.screenshot(page, "builder-02-welcome")

    workspace_id = _launch(page, "Static site", "Site one", shoot="builder-03")
    expect(page.get_by_role("heading", name="Site one", level=1)).to_be_visible()
    expect(_status(page)).to_have_attribute("data-status", "running")
    tabs = page.get_by_role("tablist", name="Workspace tabs")
    expect(tabs.get_by_role("tab")).to_have_text(["Terminal", "Files"])

    # The terminal of the layout's first tab.
    browser.run_in_terminal(page, _terminal(page, "Terminal"), "echo hello-$((6*7))", "hello-42")
    browser.screenshot(page, "builder-04-editor-terminal")

    # A second shell, then closed again.
    page.get_by_role("button", name="New terminal").click()
    expect(tabs.get_by_role("tab", name="Terminal 2")).to_have_attribute("aria-selected", "true")
    second = _terminal(page, "Terminal 2")
    browser.run_in_terminal(page, second, "echo second-$((5*5))", "second-25")
    browser.screenshot(page, "builder-05-second-terminal")
    page.get_by_role("button", name="Close Terminal 2").click()
    expect(tabs.get_by_role("tab")).to_have_text(["Terminal", "Files"])

    # The app in the preview, then edited through the Files tab.
    preview = page.get_by_title("Preview", exact=True).content_frame
    expect(preview.get_by_role("heading", name="Version one")).to_be_visible()
    tabs.get_by_role("tab", name="Files").click()
    tree = page.get_by_role("tree", name="Workspace files")
    tree.get_by_role("button", name="index.html", exact=True).click()
    editor = page.locator(".monaco-editor")
    expect(editor).to_contain_text("Version one")
    browser.screenshot(page, "builder-06-files-open")
    editor.click()
    page.keyboard.press("Control+A")
    # Pasted: typed HTML would get Monaco's closing tags and indentation on top.
    page.evaluate("text => navigator.clipboard.writeText(text)", EDITED_INDEX)
    page.keyboard.press("Control+V")
    expect(page.get_by_role("status").filter(has_text="Unsaved changes")).to_be_visible()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status").filter(has_text=re.compile(r"^Saved$"))).to_be_visible()
    saved = ada_api(
        "GET", f"/workspaces/{workspace_id}/files/content", params={"path": "index.html"}
    )
    assert saved.json()["content"] == EDITED_INDEX
    page.get_by_role("button", name="Reload preview").click()
    expect(preview.get_by_role("heading", name="Version two")).to_be_visible()
    browser.screenshot(page, "builder-07-files-saved-preview-reloaded")
    page.get_by_role("button", name="New file").click()
    create = page.get_by_role("dialog", name="New file")
    create.get_by_label("Path in your workspace").fill("notes.txt")
    create.get_by_role("button", name="Create").click()
    expect(tree.get_by_role("button", name="notes.txt", exact=True)).to_be_visible()
    browser.screenshot(page, "builder-08-new-file")
    listing = ada_api("GET", f"/workspaces/{workspace_id}/files", params={"path": ""})
    assert "notes.txt" in [entry["name"] for entry in listing.json()["entries"]]

    # The path bar follows the app: a link, Back, a typed path, a pushState route.
    path = page.get_by_label("Preview path")
    expect(path).to_have_value("/")
    preview.get_by_role("link", name="About").click()
    expect(preview.get_by_role("heading", name="About this site")).to_be_visible()
    expect(path).to_have_value("/about.html")
    page.get_by_role("button", name="Back").click()
    expect(path).to_have_value("/")
    page.get_by_role("button", name="Forward").click()
    expect(path).to_have_value("/about.html")
    path.fill("/spa.html")
    path.press("Enter")
    expect(preview.get_by_role("heading", name="Single-page app")).to_be_visible()
    expect(path).to_have_value("/spa.html")
    preview.get_by_role("button", name="Open settings").click()
    expect(path).to_have_value("/spa/settings")
    browser.screenshot(page, "builder-09-preview-pushstate")
    page.get_by_role("button", name="Back").click()
    expect(path).to_have_value("/spa.html")

    expect(page.get_by_label("Port")).to_have_value("3000")
    page.get_by_role("button", name="Mobile").click()
    expect(page.get_by_role("button", name="Mobile")).to_have_attribute("aria-pressed", "true")
    browser.screenshot(page, "builder-10-preview-mobile")
    page.get_by_role("button", name="Tablet").click()
    expect(page.get_by_role("button", name="Tablet")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Desktop").click()
    expect(page.get_by_role("button", name="Desktop")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name="Publish")).to_be_disabled()

    with context.expect_page() as opened:
        page.get_by_role("button", name="Open preview in a new tab").click()
    tab = opened.value
    expect(tab.get_by_role("heading", name="Single-page app")).to_be_visible()
    assert tab.url.startswith(f"http://{workspace_id.lower()}-3000.preview.portal.localhost:")
    tab.close()

    # Rename inline: Enter saves, the bar shows the new name.
    page.get_by_role("button", name="Rename", exact=True).click()
    rename = page.get_by_label("Workspace name")
    rename.fill("Site renamed")
    browser.screenshot(page, "builder-11-rename-input")
    rename.press("Enter")
    expect(page.get_by_role("heading", name="Site renamed", level=1)).to_be_visible()
    expect(page).to_have_title(re.compile(r"^Site renamed · "))
    browser.screenshot(page, "builder-12-renamed")

    # The start command's output, live in the logs drawer.
    page.get_by_role("button", name="Logs").click()
    expect(page.get_by_label("Log lines")).to_contain_text("GET /about.html")
    browser.screenshot(page, "builder-13-logs")
    page.get_by_role("button", name="Close the logs").click()
    expect(page.get_by_label("Log lines")).to_be_hidden()

    # Stop and start follow live, without a reload; the shell comes back after a start.
    browser.mark_page(page)
    _actions(page).get_by_role("button", name="Stop", exact=True).click()
    expect(_status(page)).to_have_attribute("data-status", "stopped")
    preview_panel = page.get_by_role("region", name="Preview panel")
    expect(preview_panel.get_by_role("button", name="Start")).to_be_visible()
    browser.screenshot(page, "builder-14-stopped")
    _actions(page).get_by_role("button", name="Start", exact=True).click()
    expect(_status(page)).to_have_attribute("data-status", "running", timeout=60_000)
    tabs.get_by_role("tab", name="Terminal").click()
    browser.run_in_terminal(page, _terminal(page, "Terminal"), "echo back-$((2*4))", "back-8")
    assert browser.same_page(page)
    browser.screenshot(page, "builder-15-started")

    # Delete, confirmed in a dialog: back on the dashboard, the row goes by itself.
    _actions(page).get_by_role("button", name="Delete", exact=True).click()
    confirm = page.get_by_role("dialog").get_by_role("button", name="Delete Site renamed")
    expect(confirm).to_be_visible()
    browser.screenshot(page, "builder-16-delete-confirm")
    confirm.click()
    page.wait_for_url(f"{origin}/")
    browser.mark_page(page)
    expect(page.get_by_role("link", name="Open Site renamed")).to_have_count(0, timeout=60_000)
    assert browser.same_page(page)
    expect(page.get_by_role("heading", name="Build something")).to_be_visible()
    browser.screenshot(page, "builder-17-deleted")
    context.close()


ANSWER_LATE = """() => {
  const fetch = window.fetch;
  window.fetch = async (url, options = {}) => {
    const response = await fetch(url, options);
    if (options.method === "POST" && String(url).endsWith("/api/v1/workspaces")) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return response;
  };
}"""
"""The launch's answer reaches the page's script a second late, after the first events
about the new workspace: the request and the event socket race on any network."""


@pytest.mark.timeout(600)
def test_the_launch_dialog_follows_the_phases_when_events_beat_the_answer(
    portal, connected, admin_api, chromium
):
    _site_blueprint(admin_api)
    page = browser.new_context(chromium).new_page()
    browser.sign_in(page, _origin(portal), ADA, PASSWORD)
    page.get_by_role("button", name="Launch Static site").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Workspace name").fill("Late answer")
    page.evaluate(ANSWER_LATE)
    dialog.get_by_role("button", name="Launch", exact=True).click()
    expect(dialog.get_by_role("heading", name="Launching Late answer")).to_be_visible()
    browser.screenshot(page, "builder-launch-late-answer")
    # The setup script sleeps: the dialog sits on "Configuring", earlier phases done.
    expect(dialog.locator("[aria-current=step]")).to_have_text("Configuring")
    row = page.get_by_role("listitem").filter(has=page.get_by_role("link", name="Open Late answer"))
    expect(row.get_by_role("status")).to_have_text("Deploying · Configuring")
    page.wait_for_url(re.compile(r"/workspaces/[^/]+/$"), timeout=60_000)
    expect(page.get_by_role("heading", name="Late answer", level=1)).to_be_visible()
    page.context.close()


WATCH_FOR = """name => {
  window.__enclaveSaw = false;
  const look = () => { if (document.body.innerText.includes(name)) window.__enclaveSaw = true; };
  new MutationObserver(look).observe(document.body,
    { subtree: true, childList: true, characterData: true, attributes: true });
  look();
}"""
"""Records whether `name` ever shows on the page, however briefly."""


def _watch_for(page: Page, name: str) -> None:
    page.evaluate(WATCH_FOR, name)


def _saw(page: Page) -> bool:
    return bool(page.evaluate("window.__enclaveSaw"))


def _signed_in(chromium: Browser, origin: str, email: str) -> Page:
    page = browser.new_context(chromium).new_page()
    browser.sign_in(page, origin, email, PASSWORD)
    return page


@pytest.mark.timeout(600)
def test_builders_see_only_their_own_workspaces_and_an_admin_stop_arrives_live(
    portal, connected, admin_api, chromium
):
    _site_blueprint(admin_api)
    origin = _origin(portal)
    ada, ben = _signed_in(chromium, origin, ADA), _signed_in(chromium, origin, BEN)

    _watch_for(ada, "Ben site")
    ben_id = _launch(ben, "Static site", "Ben site")
    ben.get_by_role("link", name="Back to the dashboard").click()
    expect(ben.get_by_role("link", name="Open Ben site")).to_be_visible()
    assert not _saw(ada)
    expect(ada.get_by_role("heading", name="Build something")).to_be_visible()

    _watch_for(ben, "Ada site")
    ada_id = _launch(ada, "Static site", "Ada site")
    expect(_status(ada)).to_have_attribute("data-status", "running")
    preview = ada.get_by_title("Preview", exact=True).content_frame
    expect(preview.get_by_role("heading", name="Version one")).to_be_visible()
    browser.mark_page(ada)

    response = admin_api("POST", f"/admin/workspaces/{ada_id}/stop")
    assert response.status_code == 200, response.text
    expect(_status(ada)).to_have_attribute("data-status", "stopped")
    panel = ada.get_by_role("region", name="Preview panel")
    expect(panel.get_by_role("button", name="Start")).to_be_visible()
    assert browser.same_page(ada)
    browser.screenshot(ada, "builder-admin-stopped-live")

    assert not _saw(ben)
    expect(ben.get_by_role("link", name="Open Ada site")).to_have_count(0)
    expect(ben.get_by_role("link", name="Open Ben site")).to_be_visible()
    assert admin_api("GET", f"/admin/workspaces/{ben_id}").json()["status"] == "running"
    for page in (ada, ben):
        page.context.close()


MOBILE = {"width": 390, "height": 844}


@pytest.mark.timeout(600)
def test_the_dashboard_on_a_phone_searches_and_tags(portal, connected, chromium):
    api = Api(portal.url, portal.token_for(ADA))
    names = ["alpha shop", "beta blog", "gamma api"]
    for name in names:
        response = api("POST", "/workspaces", json={"blueprint": "demo", "name": name})
        assert response.status_code == 201, response.text
        api.wait_status(response.json()["id"], "running", timeout=60)
    origin = _origin(portal)
    page = browser.new_context(chromium, viewport=MOBILE, is_mobile=True).new_page()
    browser.sign_in(page, origin, ADA, PASSWORD)
    for name in names:
        expect(page.get_by_role("link", name=f"Open {name}")).to_be_visible()
    browser.screenshot(page, "builder-mobile-dashboard")
    assert page.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]

    search = page.get_by_role("searchbox", name="Search workspaces")
    search.press_sequentially("bet")
    expect(page.get_by_role("link", name="Open beta blog")).to_be_visible()
    for name in ("alpha shop", "gamma api"):
        expect(page.get_by_role("link", name=f"Open {name}")).to_have_count(0)
    browser.screenshot(page, "builder-mobile-search")
    search.fill("")
    for name in names:
        expect(page.get_by_role("link", name=f"Open {name}")).to_be_visible()

    # Tags: two added (Enter adds one, Save tags the last typed), then one removed.
    page.get_by_role("button", name="Tags beta blog").click()
    dialog = page.get_by_role("dialog", name="Tags of beta blog")
    field = dialog.get_by_label("Add a tag")
    field.fill("client-a")
    field.press("Enter")
    field.fill("urgent")
    browser.screenshot(page, "builder-mobile-tags-dialog")
    dialog.get_by_role("button", name="Save tags").click()
    expect(dialog).to_be_hidden()
    filters = page.get_by_role("group", name="Filter by tag")
    expect(filters.get_by_role("button")).to_have_text(["All", "client-a", "urgent"])
    filters.get_by_role("button", name="urgent").click()
    expect(page.get_by_role("link", name="Open beta blog")).to_be_visible()
    expect(page.get_by_role("link", name="Open alpha shop")).to_have_count(0)
    browser.screenshot(page, "builder-mobile-tag-filter")
    filters.get_by_role("button", name="All").click()
    search.press_sequentially("client")
    expect(page.get_by_role("link", name="Open beta blog")).to_be_visible()
    expect(page.get_by_role("link", name="Open gamma api")).to_have_count(0)
    search.fill("")

    page.get_by_role("button", name="Tags beta blog").click()
    dialog.get_by_role("button", name="Remove tag urgent").click()
    dialog.get_by_role("button", name="Save tags").click()
    expect(dialog).to_be_hidden()
    expect(filters.get_by_role("button")).to_have_text(["All", "client-a"])
    tagged = {w["name"]: w["tags"] for w in api("GET", "/workspaces").json()["results"]}
    assert tagged == {"alpha shop": [], "beta blog": ["client-a"], "gamma api": []}
    browser.screenshot(page, "builder-mobile-tagged")
    page.context.close()
