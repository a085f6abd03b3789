"""Headless Chromium driven by Python Playwright (sync API), with the Debian binary.

Playwright's own browser downloads are never used: `launch` starts `/usr/bin/chromium`
and fails — it does not skip — with the command that installs it when it is missing.
Pages are found by their accessible names only (roles and labels are the UI's contract
with its users and with these tests). Screenshots go to `var/test-artifacts/`.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, expect

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP *.localhost 127.0.0.1",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "test-artifacts"
WAIT_MS = 30_000
"""How long an action or an assertion waits: the 2-CPU host is shared with other runs."""

expect.set_options(timeout=WAIT_MS)


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium from the Debian package."""
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"Chromium is not installed at {CHROMIUM}: run bin/system-packages chromium "
            "(or: sudo apt-get install chromium)"
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


def new_context(browser: Browser, **options) -> BrowserContext:
    """A fresh profile (cookies, storage) with the suite's generous waits."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **options})
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    return context


def sign_in(page: Page, origin: str, email: str, password: str) -> None:
    """Sign in through the sign-in page; returns on the dashboard."""
    page.goto(f"{origin}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{origin}/")


def screenshot(page: Page, name: str) -> Path:
    """Save `var/test-artifacts/<name>.png` of the viewport."""
    path = ARTIFACTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path


def terminal_rows(terminal: Locator) -> Locator:
    """The rendered rows of an xterm.js terminal (its DOM renderer's text)."""
    return terminal.locator(".xterm-rows")


def run_in_terminal(page: Page, terminal: Locator, command: str, expected: str) -> None:
    """Type `command` into `terminal` once its shell is up and wait until `expected`
    shows in its rows (the command is written so that its echo does not contain it)."""
    rows = terminal_rows(terminal)
    expect(rows).to_contain_text("$", timeout=WAIT_MS)  # the shell's prompt
    terminal.click()
    page.keyboard.type(command)
    page.keyboard.press("Enter")
    expect(rows).to_contain_text(expected, timeout=WAIT_MS)


def mark_page(page: Page) -> None:
    """Mark the current document: `same_page` stays true until the page reloads."""
    page.evaluate("window.__enclaveTestMark = true")


def same_page(page: Page) -> bool:
    return bool(page.evaluate("window.__enclaveTestMark === true"))
