"""The builder's pages: HTML served, and editor open to a terminal prompt in Chromium.

One portal (the production launcher, embedded defaults: SQLite, the in-process channel
layer, the 5-second discovery cache) and a real agent with the local runtime, on
loopback. A builder owns `--workspaces` stopped environments, written straight to the
agent's disk before it starts (as bench/discovery.py does), so discovery lists them all.

* (a) HTML served: a `requests` session signed in through the sign-in page GETs the
  dashboard (`/`) and the editor of one of those workspaces (`/workspaces/<id>/`),
  `--requests` times each, one after the other. Target: p50 ≤ 100 ms.
* (b) Editor open → terminal prompt: the builder launches the demo blueprint and waits
  until it runs; then headless Chromium (Playwright, the Debian binary) opens the editor
  `--loads` times, each in a new page of one signed-in context (a new page has its own
  session storage, so each load starts a new shell, as a builder opening the editor
  does; the HTTP cache is warm after one load that is not counted). The figure is the
  page's own clock from navigation start (`performance.now()`) to the first moment the
  terminal's `.xterm-rows` text contains the shell prompt (`$`), seen by a
  MutationObserver installed before any script of the page. Target: p50 ≤ 1 s. The
  stages before it are printed too: the document parsed (DOMContentLoaded, its module
  scripts run), the xterm.js modules loaded and the shell ticket asked for and
  answered (the page's resource timing), the terminal's WebSocket open.

Bounded: at most twice `--requests` requests and `--loads` + 1 page loads, each load
given 30 s; everything stops by itself.

Run: `make bench` or `.venv/bin/python bench/pages.py [--workspaces 200] [--requests 200]
[--loads 10]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from agent.protocol import STOPPED  # noqa: E402
from agent.runtimes.local.store import new_environment  # noqa: E402
from agent.runtimes.records import write_atomic  # noqa: E402
from bench.discovery import SPEC, percentile  # noqa: E402
from tests import browser  # noqa: E402
from tests.harness import (  # noqa: E402
    Agent,
    Api,
    Portal,
    create_member,
    loopback_session,
    manage,
    wait_until,
)

BUILDER = "builder@example.com"
PASSWORD = "bench-builder-password-1"
LOAD_TIMEOUT_MS = 30_000
STAGES = {
    "page": "page parsed (DOMContentLoaded)",
    "xterm": "xterm.js loaded",
    "asked": "shell ticket asked",
    "ticket": "shell ticket answered",
    "socket": "terminal socket open",
    "prompt": "prompt visible",
}
"""The stages of an editor load, in order (ms from navigation start)."""
TIMING = """
window.__enclaveTimes = {};
const seen = (stage) => { window.__enclaveTimes[stage] ??= performance.now(); };
document.addEventListener("DOMContentLoaded", () => seen("page"));
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    const terminal = String(args[0]).includes("/ws/terminal/");
    if (terminal) this.addEventListener("open", () => seen("socket"));
  }
};
new MutationObserver((records, observer) => {
  const rows = document.querySelector(".xterm-rows");
  if (rows && rows.textContent.includes("$")) {
    seen("prompt");
    observer.disconnect();
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
"""Runs in every page before its own scripts and notes, on the page's clock (ms since
navigation start): DOMContentLoaded ("page"), the terminal's WebSocket open ("socket"),
the prompt in the terminal's rows ("prompt")."""
STAGES_SEEN = """() => {
  const times = { ...window.__enclaveTimes };
  for (const entry of performance.getEntriesByType("resource")) {
    const end = entry.responseEnd;
    if (entry.name.includes("/vendor/xterm/")) times.xterm = Math.max(times.xterm || 0, end);
    if (entry.name.endsWith("/shell-ticket")) {
      times.asked ??= entry.startTime;
      times.ticket ??= end;
    }
  }
  return times;
}"""
"""The noted stages with three from the page's resource timing: the xterm.js modules
loaded ("xterm"), the first shell ticket asked for ("asked") and answered ("ticket")."""


def seed_environments(data_dir: Path, owner: str, count: int) -> list[str]:
    """`count` stopped environments of the demo blueprint owned by `owner`, written as
    the local runtime writes them (its own record code); their ids."""
    root = data_dir / "environments"
    root.mkdir(parents=True, exist_ok=True)
    ids = []
    for index in range(count):
        metadata = {
            "BLUEPRINT_KEY": "demo",
            "BLUEPRINT_PROJECT_ID": "1",
            "RDE_OWNER_EMAIL": owner,
            "RDE_DISPLAY_NAME": f"workspace {index}",
        }
        env = new_environment(root, SPEC, metadata)
        env.home.mkdir()
        env.data.update(status=STOPPED, phase=None)
        write_atomic(env.path / "environment.json", json.dumps(env.data))
        ids.append(env.id)
    return ids


def signed_in_session(portal: Portal) -> requests.Session:
    """A session that signed in as the builder through the sign-in form."""
    session = loopback_session()
    session.get(f"{portal.url}/login/", timeout=30).raise_for_status()
    token = session.cookies["__Host-enclave_csrftoken"]
    form = {"username": BUILDER, "password": PASSWORD, "csrfmiddlewaretoken": token, "next": "/"}
    response = session.post(f"{portal.url}/login/", data=form, timeout=30, allow_redirects=False)
    assert response.status_code == 302, (response.status_code, response.text[:500])
    return session


def measure_html(session: requests.Session, url: str, count: int) -> tuple[float, float, int]:
    """p50 and p99 in ms of `count` GETs of `url`, and the page's size in bytes."""
    session.get(url, timeout=30).raise_for_status()  # warm up
    samples = []
    size = 0
    for _ in range(count):
        start = time.perf_counter()
        response = session.get(url, timeout=30)
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return statistics.median(samples), percentile(samples, 99), size


def editor_loads(origin: str, workspace_id: str, loads: int) -> list[dict[str, float]]:
    """The stages (`STAGES`, ms from navigation start) of `loads` editor loads."""
    times = []
    with sync_playwright() as playwright:
        chromium = browser.launch(playwright)
        try:
            context = browser.new_context(chromium)
            context.add_init_script(TIMING)
            page = context.new_page()
            browser.sign_in(page, origin, BUILDER, PASSWORD)
            page.close()
            for index in range(loads + 1):
                page = context.new_page()
                page.goto(f"{origin}/workspaces/{workspace_id}/", wait_until="commit")
                page.wait_for_function(
                    "() => window.__enclaveTimes.prompt !== undefined",  # a function: no eval (CSP)
                    timeout=LOAD_TIMEOUT_MS,
                    polling=50,
                )
                if index:  # the first load fills the HTTP cache
                    times.append(page.evaluate(STAGES_SEEN))
                page.close()
            context.close()
        finally:
            chromium.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=200, help="the builder's workspaces")
    parser.add_argument("--requests", type=int, default=200, help="GETs per page")
    parser.add_argument("--loads", type=int, default=10, help="editor loads in Chromium")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        tmp_path = Path(tmp)
        portal = Portal(var_dir=tmp_path / "portal", env_extra={"LOG_LEVEL": "WARNING"})
        origin = f"http://portal.localhost:{portal.port}"
        portal.env_extra["PORTAL_URL"] = origin
        portal.prepare()
        manage(portal.var_dir, "shell", "-c", _LIMITS, env=portal.env)
        create_member(portal, BUILDER, PASSWORD)
        seeded = seed_environments(tmp_path / "agent", BUILDER, args.workspaces)
        portal.start()
        agent = Agent(portal.url, portal.agent_token, tmp_path / "agent").start()
        try:
            api = Api(portal.url, portal.token_for(BUILDER))
            wait_until(
                lambda: len(api("GET", "/workspaces").json()["results"]) == len(seeded),
                timeout=60,
                what=f"the agent listing {len(seeded)} workspaces",
            )
            session = signed_in_session(portal)
            dashboard = measure_html(session, f"{portal.url}/", args.requests)
            editor = measure_html(session, f"{portal.url}/workspaces/{seeded[0]}/", args.requests)

            launched = api("POST", "/workspaces", json={"blueprint": "demo", "name": "Warm"})
            launched.raise_for_status()
            workspace_id = launched.json()["id"]
            api.wait_status(workspace_id, "running", timeout=60)
            loads = editor_loads(origin, workspace_id, args.loads)
        finally:
            agent.stop()
            agent.kill_workspaces()
            portal.stop()

    print(
        f"\nBuilder pages: HTML served (one portal, embedded defaults, "
        f"{args.workspaces} workspaces of the builder in discovery, {args.requests} requests)"
    )
    print(f"{'page':<10} | {'p50':>9} | {'p99':>9} | {'bytes':>8}")
    print("-" * 45)
    for name, (p50, p99, size) in (("dashboard", dashboard), ("editor", editor)):
        print(f"{name:<10} | {p50:>7.1f}ms | {p99:>7.1f}ms | {size:>8}")
    print(
        f"\nEditor open -> terminal prompt visible (headless Chromium, running workspace, "
        f"{len(loads)} loads; ms from navigation start)"
    )
    print(f"{'stage':<36} | {'p50':>7} | {'p99':>7} | {'min':>7} | {'max':>7}")
    print("-" * 74)
    for stage, label in STAGES.items():
        values = [load[stage] for load in loads]
        print(
            f"{label:<36} | {statistics.median(values):>5.0f}ms | "
            f"{percentile(values, 99):>5.0f}ms | {min(values):>5.0f}ms | {max(values):>5.0f}ms"
        )


_LIMITS = (
    "from core.models import OrganizationSettings as O; o = O.load(); "
    "o.api_rate_per_minute = 100000; o.launch_rate_per_minute = 1000; o.save()"
)


if __name__ == "__main__":
    main()
