"""Live events: an agent's status change → the pages that show it, through the real chain.

Chain: the agent's own tunnel (`agent.tunnel.Tunnel` with the local runtime, in a process
of its own, over environments written straight to its disk as bench/discovery.py does)
publishes `event` messages — each workspace flipping between running and stopped,
stamped with its send time in the display name — → the portal's tunnel consumer →
the channel layer → `/ws/events/` consumers → `--builders` (200) signed-in builder
sockets, each owning one workspace, and `--admins` (2) admin sockets that receive every
event. Events go out at `--rate` per second, round robin over the builders' workspaces,
`--events` in all (the first tenth, at least one per workspace, is warm-up and not
counted). The figure is end to end: the agent's clock at sending to the socket reader's
clock on receipt of the parsed message, both on this host. Configurations (`--configs`):

* single: one portal process (the production launcher), embedded defaults (SQLite, the
  in-process channel layer);
* redis: two portal processes sharing the database and Redis (`--redis-url`, default
  `REDIS_URL` or redis://127.0.0.1:6379/0): the agent's tunnel on one, every measured
  socket on the other.

Prints one table: per configuration and audience, events expected and received,
latency p50/p99/max, and events a builder received about someone else's workspace (must
be 0). `--browser` adds, per configuration, the dashboard of the first builder in
headless Chromium (Playwright, the Debian binary): `--browser-events` (40) changes of
that builder's workspace at 10/s, measured from the agent's send time to the moment a
MutationObserver sees the workspace's `[role=status]` change its `data-status` (the
page's `Date.now()`), while the other sockets stay connected.

Targets (issue): p50 ≤ 50 ms, p99 ≤ 200 ms. Bounded: every wait has a deadline and the
run lasts about `--events`/`--rate` seconds per configuration plus set-up (about 2
minutes with the defaults). Exits 1 if a configuration failed, lost an event or leaked
one. Run: `make bench` or `.venv/bin/python bench/events.py [--builders 200] [--events
2000] [--rate 100] [--configs single,redis] [--browser]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright
from websockets.exceptions import WebSocketException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.protocol import BLUEPRINT_ID_TAG, BLUEPRINT_TAG, EVENT_UPDATED, NAME_TAG, OWNER_TAG
from agent.runtimes.local import LocalRuntime
from agent.runtimes.records import now
from agent.tunnel import Tunnel
from bench.discovery import SPEC, percentile
from tests.browser import ARGS, CHROMIUM
from tests.events_client import SESSION_COOKIE, EventsClient
from tests.harness import Portal, sign_in

ADMIN = "admin@portal.localhost"
STAMP = "t="
CONNECT_BATCH = 20
DELIVERY_GRACE = 15.0
BROWSER_RATE = 10.0
CONFIGS = {"single": "one process, in-process layer", "redis": "two processes, Redis"}
DOM_WATCH = """() => {
  window.__statusChanges = [];
  new MutationObserver((records) => {
    const at = Date.now();
    for (const record of records) {
      const status = record.target.getAttribute("data-status");
      const row = record.target.closest("[data-workspace]");
      if (row && record.target.getAttribute("role") === "status" && status !== record.oldValue) {
        window.__statusChanges.push({ at, id: row.dataset.workspace, status });
      }
    }
  }).observe(document.body, {
    subtree: true, attributes: true, attributeFilter: ["data-status"], attributeOldValue: true,
  });
}"""


# --- the agent (a process of its own) ----------------------------------------------------


async def emitter(portal_url: str, data_dir: str, ids_file: str) -> None:
    """The agent's tunnel over `data_dir`; publishes what each stdin command asks.

    Prints `ready` once connected; then for each JSON line `{"targets": [ids], "count",
    "rate"}` publishes `count` status flips round robin over `targets` at `rate` per
    second and prints `{"sent": [[id, status, send time], ...]}`; an empty line ends it.
    """
    runtime = LocalRuntime(data_dir, sandbox=None)
    await runtime.load()
    tunnel = Tunnel(portal_url=portal_url, token=os.environ["BENCH_AGENT_TOKEN"], runtime=runtime)
    running = asyncio.create_task(tunnel.run())
    statuses = dict.fromkeys(json.loads(Path(ids_file).read_text()), "stopped")
    while tunnel.connections == 0:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the portal has read the hello
    print("ready", flush=True)
    while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
        command = json.loads(line)
        targets, count, rate = command["targets"], command["count"], command["rate"]
        sent = []
        begin = time.perf_counter()
        for index in range(count):
            await asyncio.sleep(max(0.0, begin + index / rate - time.perf_counter()))
            env_id = targets[index % len(targets)]
            status = "running" if statuses[env_id] == "stopped" else "stopped"
            statuses[env_id] = status
            snapshot = dict(await runtime.get(env_id))
            stamp = time.time()
            snapshot["metadata"] = {**snapshot["metadata"], NAME_TAG: f"{STAMP}{stamp:.6f}"}
            snapshot.update(status=status, updated_at=now())
            tunnel.publish_event(EVENT_UPDATED, snapshot)
            sent.append([env_id, status, stamp])
        print(json.dumps({"sent": sent}), flush=True)
    tunnel.stop()
    await running
    await runtime.shutdown()


class Emitter:
    """The bench's handle on the agent process (`start` it, then `publish`)."""

    def __init__(self, portal: Portal, data_dir: Path, ids: list[str]) -> None:
        ids_file = data_dir / "bench-ids.json"
        ids_file.write_text(json.dumps(ids))
        env = {**os.environ, "BENCH_AGENT_TOKEN": portal.agent_token}
        argv = [sys.executable, __file__, "--emit", portal.url, str(data_dir), str(ids_file)]
        self.log = open(data_dir / "agent.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, text=True
        )

    async def start(self) -> Emitter:
        line = await self._line(timeout=60)
        assert line == "ready", line
        return self

    async def _line(self, timeout: float) -> str:
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
        if not line:
            raise AssertionError("the agent process ended early (see its agent.log)")
        return line.strip()

    async def publish(self, targets: list[str], count: int, rate: float) -> list[list]:
        """Publish and wait until the agent sent them all: [[id, status, sent at], ...]."""
        command = json.dumps({"targets": targets, "count": count, "rate": rate})
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(await self._line(count / rate + 60))["sent"]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- the pages ---------------------------------------------------------------------------


@dataclass
class Audience:
    """Latencies (ms) of the updates a group of sockets received, and any leaks."""

    samples: list[float] = field(default_factory=list)
    foreign: int = 0


async def read(client: EventsClient, owner: str | None, audience: Audience) -> None:
    """Record every stamped update on `client`; a builder's (`owner`) must be their own."""
    async for text in client.ws:
        received = time.time()
        message = json.loads(text)
        if message.get("type") != "workspace" or message["event"] != "updated":  # or a pong
            continue
        workspace = message["workspace"]
        if owner is not None and workspace["owner_email"].lower() != owner:
            audience.foreign += 1
        if workspace["name"].startswith(STAMP):
            audience.samples.append((received - float(workspace["name"][len(STAMP) :])) * 1000)


async def open_all(url: str, sessions: list[str]) -> list[EventsClient]:
    clients: list[EventsClient] = []
    for start in range(0, len(sessions), CONNECT_BATCH):
        batch = sessions[start : start + CONNECT_BATCH]
        clients += await asyncio.gather(*(EventsClient.open(url, key) for key in batch))
    return clients


async def settle(audiences: list[tuple[Audience, int]]) -> None:
    """Wait until every audience has its expected count, or DELIVERY_GRACE passed."""
    deadline = time.monotonic() + DELIVERY_GRACE
    while time.monotonic() < deadline:
        if all(len(a.samples) >= expected for a, expected in audiences):
            return
        await asyncio.sleep(0.05)


async def live(page, emitter: Emitter, workspace_id: str, tries: int = 10) -> None:
    """Flip the workspace until the page shows it: its stream is live, nothing is counted."""
    for _ in range(tries):
        await emitter.publish([workspace_id], 1, BROWSER_RATE)
        with contextlib.suppress(PlaywrightTimeout):
            await page.wait_for_function("() => window.__statusChanges.length > 0", timeout=3000)
            await page.evaluate("window.__statusChanges = []")
            return
    raise AssertionError("the dashboard never showed a change")


async def dashboard_latencies(
    portal: Portal, session: str, emitter: Emitter, workspace_id: str, count: int
) -> tuple[list[float], int]:
    """The first builder's dashboard in Chromium: ms from the agent's send time to the
    status badge's change, for `count` flips of `workspace_id`; and how many were seen."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            # A `__Host-` cookie must be host-only and Secure: set from the portal's own
            # (loopback, so secure) origin, which CDP's cookie API cannot do over HTTP.
            await page.goto(f"{portal.url}/login/")
            await page.evaluate(
                "([name, value]) => { document.cookie = `${name}=${value}; Path=/; Secure`; }",
                [SESSION_COOKIE, session],
            )
            async with page.expect_websocket(timeout=30_000) as socket:
                await page.goto(f"{portal.url}/")
            await (await socket.value).wait_for_event("framereceived", timeout=30_000)
            badge = f'[data-workspace="{workspace_id}"] [role="status"][data-status]'
            await page.wait_for_selector(badge, state="attached", timeout=30_000)
            await page.evaluate(DOM_WATCH)
            await live(page, emitter, workspace_id)
            sent = await emitter.publish([workspace_id], count, BROWSER_RATE)
            deadline = time.monotonic() + DELIVERY_GRACE
            while time.monotonic() < deadline:
                changes = await page.evaluate("window.__statusChanges")
                if len(changes) >= len(sent):
                    break
                await asyncio.sleep(0.2)
        finally:
            await browser.close()
    latencies = []
    remaining = iter(changes)
    for _, status, stamp in sent:
        change = next((c for c in remaining if c["status"] == status), None)
        if change is not None:
            latencies.append(change["at"] - stamp * 1000)
    return latencies, len(latencies)


# --- one configuration -------------------------------------------------------------------


def fabricate(data_dir: Path, owners: list[str]) -> list[str]:
    """One stopped workspace per owner on the agent's disk; their ids, in owner order."""
    root = data_dir / "environments"
    root.mkdir(parents=True, exist_ok=True)
    ids = []
    for index, owner in enumerate(owners):
        env_id = f"env-{secrets.token_hex(6)}"
        (root / env_id / "home").mkdir(parents=True)
        record = {
            "id": env_id,
            "metadata": {
                BLUEPRINT_TAG: "demo",
                BLUEPRINT_ID_TAG: "1",
                OWNER_TAG: owner,
                NAME_TAG: f"workspace {index}",
            },
            "spec": SPEC,
            "status": "stopped",
            "phase": None,
            "error": None,
            "ports": [{"port": 3000, "name": "app", "host_port": None}],
            "created_at": "2026-11-01T00:00:00.000+00:00",
            "updated_at": "2026-11-01T00:00:00.000+00:00",
        }
        (root / env_id / "environment.json").write_text(json.dumps(record))
        ids.append(env_id)
    return ids


@dataclass
class Result:
    name: str
    builders: Audience
    builders_expected: int
    admins: Audience
    admins_expected: int
    browser: tuple[list[float], int, int] | None = None


def start_portals(work: Path, config: str, redis_url: str) -> tuple[Portal, Portal]:
    """(the portal the agent dials, the portal the pages connect to)."""
    layer = {"REDIS_URL": redis_url if config == "redis" else ""}
    extra = {"LOG_LEVEL": "WARNING", **layer}
    tunnel_side = Portal(var_dir=work / "portal", env_extra=dict(extra))
    tunnel_side.prepare()
    tunnel_side.start()
    if config != "redis":
        return tunnel_side, tunnel_side
    pages_side = Portal(var_dir=tunnel_side.var_dir, env_extra=dict(extra))
    return tunnel_side, pages_side.start()


async def measure(config: str, args: argparse.Namespace, work: Path) -> Result:
    owners = [f"builder{i}@bench.example" for i in range(args.builders)]
    tunnel_side, pages_side = start_portals(work, config, args.redis_url)
    emitter: Emitter | None = None
    clients: list[EventsClient] = []
    readers: list[asyncio.Task] = []
    try:
        ids = fabricate(work / "agent", owners)
        emitter = await Emitter(tunnel_side, work / "agent", ids).start()
        sessions = sign_in(pages_side, [*owners, ADMIN])
        await cluster_answering(pages_side, sessions[owners[0]])
        builders, admins = Audience(), Audience()
        clients = await open_all(pages_side.url, [sessions[o] for o in owners])
        staff = await open_all(pages_side.url, [sessions[ADMIN]] * args.admins)
        readers = [
            asyncio.create_task(read(c, o, builders)) for c, o in zip(clients, owners, strict=True)
        ]
        readers += [asyncio.create_task(read(c, None, admins)) for c in staff]
        clients += staff

        warmup = max(len(ids), args.events // 10)
        await emitter.publish(ids, warmup, args.rate)
        await settle([(builders, warmup), (admins, warmup * args.admins)])
        builders.samples.clear()
        admins.samples.clear()
        sent = await emitter.publish(ids, args.events, args.rate)
        await settle([(builders, len(sent)), (admins, len(sent) * args.admins)])
        result = Result(
            CONFIGS[config],
            Audience(list(builders.samples), builders.foreign),
            len(sent),
            Audience(list(admins.samples)),
            len(sent) * args.admins,
        )
        if args.browser:
            latencies, seen = await dashboard_latencies(
                pages_side, sessions[owners[0]], emitter, ids[0], args.browser_events
            )
            result.browser = (latencies, seen, args.browser_events)
        return result
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        if emitter is not None:
            emitter.stop()
        if pages_side is not tunnel_side:
            pages_side.stop()
        tunnel_side.stop()


async def cluster_answering(portal: Portal, session: str, timeout: float = 60) -> None:
    """Until a page of `portal` gets a snapshot with its workspace (the agent answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, TimeoutError, WebSocketException):
            client = await EventsClient.open(portal.url, session, timeout=10)
            await client.close()
            if not client.snapshot["unreachable_clusters"] and client.snapshot["workspaces"]:
                return
        await asyncio.sleep(0.2)
    raise AssertionError("the agent's cluster never answered")


# --- the table ---------------------------------------------------------------------------


def row(name: str, audience: str, latencies: list[float], received: int, expected: int, foreign):
    if latencies:
        p50, p99, top = percentile(latencies, 50), percentile(latencies, 99), max(latencies)
        figures = f"{p50:>7.1f}ms | {p99:>7.1f}ms | {top:>7.1f}ms"
    else:
        figures = f"{'-':>9} | {'-':>9} | {'-':>9}"
    return f"{name:<30} | {audience:<17} | {expected:>8} | {received:>8} | {foreign:>7} | {figures}"


def report(results: list[Result], args: argparse.Namespace) -> bool:
    print(
        f"\nLive events: agent event -> /ws/events/ receipt, {os.cpu_count()} CPUs, "
        f"{args.builders} builders + {args.admins} admins connected, "
        f"{args.events} events at {args.rate:g}/s"
    )
    print(
        f"{'configuration':<30} | {'audience':<17} | {'expected':>8} | {'received':>8} | "
        f"{'foreign':>7} | {'p50':>9} | {'p99':>9} | {'max':>9}"
    )
    print("-" * 122)
    ok = True
    for r in results:
        b, a = r.builders, r.admins
        print(
            row(r.name, "builders (own)", b.samples, len(b.samples), r.builders_expected, b.foreign)
        )
        print(row(r.name, "admins (all)", a.samples, len(a.samples), r.admins_expected, "-"))
        ok &= len(b.samples) == r.builders_expected and b.foreign == 0
        ok &= len(a.samples) == r.admins_expected
        if r.browser is not None:
            latencies, seen, expected = r.browser
            print(row(r.name, "dashboard DOM", latencies, seen, expected, "-"))
            ok &= seen == expected
    print("\nTargets: p50 <= 50 ms, p99 <= 200 ms (builders, end to end).")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builders", type=int, default=200)
    parser.add_argument("--admins", type=int, default=2)
    parser.add_argument("--events", type=int, default=2000, help="measured events in all")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--configs", default="single,redis", help="single, redis")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    )
    parser.add_argument("--browser", action="store_true", help="also the dashboard in Chromium")
    parser.add_argument("--browser-events", type=int, default=40)
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not configs or set(configs) - set(CONFIGS):
        parser.error("--configs: choose from single, redis")
    if args.builders < 1 or args.events < 1 or args.rate <= 0:
        parser.error("--builders, --events and --rate must be positive")
    results: list[Result] = []
    failed = False
    for config in configs:
        with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
            try:
                results.append(asyncio.run(measure(config, args, Path(tmp))))
            except (OSError, AssertionError, TimeoutError) as exc:
                print(f"{config}: failed: {exc!r}", file=sys.stderr)
                failed = True
    ok = report(results, args)
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--emit"]:
        asyncio.run(emitter(*sys.argv[2:5]))
    else:
        sys.exit(main())
