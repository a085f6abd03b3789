"""An invited builder's first sign-in, in headless Chromium: the invitation link opens a
welcome page, a password is chosen, the dashboard follows, their account page issues an
API token; the same link then says it cannot be used. Screenshots:
`var/test-artifacts/invitation-*.png`, `account-token-created.png`."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests import browser
from tests.harness import Api, create_member

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PASSWORD = "my first passphrase 42"


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        launched = browser.launch(playwright)
        yield launched
        launched.close()


@pytest.mark.timeout(300)
def test_an_invited_builder_chooses_a_password_and_lands_on_the_dashboard(
    portal, admin_api: Api, chromium: Browser
):
    invited = admin_api("POST", "/admin/members", json={"email": "ivy@example.com"})
    assert invited.status_code == 201, invited.text
    origin = portal.url

    # The console: the pending member's page gives a new link to pass on, shown once.
    create_member(portal, "boss@example.com", "boss passphrase 1", admin=True)
    console = browser.new_context(chromium)
    admin_page = console.new_page()
    admin_page.goto(f"{origin}/admin/accounts/user/{invited.json()['id']}/change/")
    admin_page.get_by_label("Email").fill("boss@example.com")
    admin_page.get_by_label("Password").fill("boss passphrase 1")
    admin_page.get_by_role("button", name=re.compile("log in|sign in", re.I)).click()
    expect(admin_page.get_by_role("button", name="Resend invitation")).to_be_visible()
    browser.screenshot(admin_page, "invitation-console-pending")
    admin_page.get_by_role("button", name="Copy invitation link").click()
    shown = admin_page.get_by_text("it is not shown again")
    expect(shown).to_be_visible()
    console.grant_permissions(["clipboard-read", "clipboard-write"])
    shown.get_by_role("button", name="Copy").click()
    expect(shown.get_by_role("button", name="Copied")).to_be_visible()
    browser.screenshot(admin_page, "invitation-console-link")
    link = admin_page.evaluate("navigator.clipboard.readText()")
    assert link == shown.locator("code").inner_text()
    console.close()
    path = link.split("://", 1)[1].split("/", 1)[1]

    context = browser.new_context(chromium)
    page = context.new_page()
    page.goto(f"{origin}/{path}")
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    expect(page.get_by_text("ivy@example.com")).to_be_visible()
    page.get_by_label("Choose a password").fill("password")
    page.get_by_label("Type it again").fill("password")
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("too common")
    browser.screenshot(page, "invitation-weak-password")
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("Type it again").fill(PASSWORD)
    browser.screenshot(page, "invitation-welcome")
    page.get_by_role("button", name="Set password and sign in").click()
    page.wait_for_url(f"{origin}/")
    expect(page.get_by_text("Welcome! Your account is ready.")).to_be_visible()
    browser.screenshot(page, "invitation-dashboard")

    # Their account page: a personal API token, shown once, then listed by its prefix.
    page.get_by_role("link", name="ivy@example.com").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    tokens = page.get_by_role("region", name="API tokens")
    tokens.get_by_label("Name").fill("My script")
    tokens.get_by_role("button", name="Create token").click()
    notice = page.get_by_role("status").filter(has_text="Copy it now")
    expect(notice).to_be_visible()
    raw = notice.locator("code").inner_text()
    assert raw.startswith("enc_")
    assert Api(portal.url, raw)("GET", "/me").json()["email"] == "ivy@example.com"
    expect(tokens.get_by_role("cell", name="My script", exact=True)).to_be_visible()
    page.screenshot(path=str(browser.ARTIFACTS / "account-token-created.png"), full_page=True)
    page.reload()
    expect(page.get_by_text(raw)).to_have_count(0)
    context.close()

    members = admin_api("GET", "/admin/members?q=ivy").json()
    assert [(m["email"], m["status"]) for m in members] == [("ivy@example.com", "active")]

    again = browser.new_context(chromium)
    page = again.new_page()
    response = page.goto(f"{origin}/{path}")
    assert response is not None and response.status == 410
    expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
    browser.screenshot(page, "invitation-used")
    again.close()
