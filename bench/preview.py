"""Preview throughput and latency: direct, through Enclave, through configurable-http-proxy.

One run, loopback only, bounded (about three minutes with the defaults). A small asyncio
HTTP/1.1 app with keep-alive runs *inside a workspace* (local runtime) and serves
`/small` (1 KiB) and `/large` (1 MiB) of bytes and `/page`, a 1 KiB HTML page asked for as
a browser asks for a document (`Accept: text/html`, `Sec-Fetch-Dest: document`: through
Enclave it gets the preview bridge's script tag). The same app is measured:

* direct — the client talks to the app's loopback port;
* enclave-daphne / enclave-uvicorn — browser path: portal (under that server) → tunnel →
  agent → app, with a real preview cookie, on the preview Host;
* chp — JupyterHub's `configurable-http-proxy` (npm, node_modules/.bin) in front of the app.

Each placement (`--placements`) starts everything afresh: *partitioned* puts the proxy
under test (the portal, `PORTAL_CPUS`, or configurable-http-proxy) on CPU 0 and the agent
with the workspace's app on the other CPUs (`--cpus`); *shared* leaves every process to
the scheduler. The client is never pinned.

The client is a raw asyncio HTTP/1.1 keep-alive client in this process: N connections
each sending requests back to back for a fixed time. Printed per way and size:
requests/s at concurrency N, and p50/p99 latency at concurrency N and at concurrency 1
(the latter is what one browser tab feels; "added" compares it with direct).

Targets (issue 5): Enclave's small-response throughput ≥ configurable-http-proxy's in the
same run; p50 added latency ≤ 2 ms over direct.

Run: `.venv/bin/python bench/preview.py [--duration 4] [--concurrency 16]
[--servers daphne,uvicorn:websockets] [--placements partitioned,shared]`
(needs `npm ci` for configurable-http-proxy; that way is skipped when it is missing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import (  # noqa: E402
    Agent,
    Api,
    Portal,
    PreviewClient,
    UvicornPortal,
    add_sandbox_argument,
    create_blueprint,
    free_port,
    parse_placements,
    partition,
    setup_script_writing,
    wait_until,
)

APP = r"""
import asyncio, os

SMALL = b"s" * 1024
LARGE = b"L" * (1024 * 1024)
PAGE = b"<!doctype html><html><head><meta charset=utf-8><title>page</title></head><body>"
PAGE += b"p" * (1024 - len(PAGE) - len(b"</body></html>")) + b"</body></html>"


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            body = LARGE if path == b"/large" else PAGE if path == b"/page" else SMALL
            kind = b"text/html; charset=utf-8" if path == b"/page" else b"application/octet-stream"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: %b\r\n"
                b"Content-Length: %d\r\n\r\n" % (kind, len(body))
            )
            writer.write(body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(os.environ["PORT"]))
    await server.serve_forever()


asyncio.run(main())
"""

DOCUMENT = "Accept: text/html\r\nSec-Fetch-Dest: document\r\n"
SIZES = {"1 KiB": ("/small", ""), "1 MiB": ("/large", ""), "page": ("/page", DOCUMENT)}
"""Label → path and the request's extra header lines."""


@dataclass
class Target:
    name: str
    port: int
    host: str
    cookie: str = ""


@dataclass
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


async def _one(reader, writer, request: bytes) -> None:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = head[9:12]
    if status != b"200":
        raise RuntimeError(f"HTTP {status.decode()}: {head[:200]!r}")
    lower = head.lower()
    index = lower.find(b"content-length:")
    if index >= 0:
        length = int(lower[index + 15 : lower.find(b"\r\n", index)])
        await reader.readexactly(length)
        return
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        await reader.readexactly(size + 2)
    await reader.readuntil(b"\r\n")


async def _worker(
    target: Target, path: tuple[str, str], until: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port, limit=1 << 20)
    cookie = f"Cookie: {target.cookie}\r\n" if target.cookie else ""
    target_path, extra = path
    request = f"GET {target_path} HTTP/1.1\r\nHost: {target.host}\r\n{cookie}{extra}\r\n"
    request = request.encode()
    errors = 0
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                await _one(reader, writer, request)
            except (RuntimeError, asyncio.IncompleteReadError, ConnectionError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
                continue
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
    return errors


async def measure(
    target: Target, path: tuple[str, str], concurrency: int, duration: float
) -> Result:
    await _run(target, path, concurrency, min(1.0, duration / 4), [])  # warm-up
    latencies: list[float] = []
    started = time.perf_counter()
    errors = await _run(target, path, concurrency, duration, latencies)
    elapsed = time.perf_counter() - started
    if not latencies:
        return Result(0.0, float("nan"), float("nan"), errors)
    ordered = sorted(latencies)
    return Result(
        len(latencies) / elapsed,
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        errors,
    )


async def _run(target, path, concurrency, duration, latencies) -> int:
    until = time.perf_counter() + duration
    counts = await asyncio.gather(
        *(_worker(target, path, until, latencies) for _ in range(concurrency))
    )
    return sum(counts)


def start_chp(app_port: int, cpus: str | None = None) -> tuple[subprocess.Popen | None, int]:
    binary = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if not binary.exists():
        print("configurable-http-proxy missing (run `npm ci`): skipping that way")
        return None, 0
    port, api_port = free_port(), free_port()
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    options = f"--ip 127.0.0.1 --port {port} --api-ip 127.0.0.1 --api-port {api_port}".split()
    target = ["--default-target", f"http://127.0.0.1:{app_port}", "--log-level", "warn"]
    argv = [*pin, str(binary), *options, *target]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: _answers(port), what="configurable-http-proxy")
    return proc, port


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_host_app(cpus: list[str]) -> tuple[subprocess.Popen, int]:
    """The same app as a plain process on the host's loopback, for the direct and CHP rows
    (the workspace's own copy is in its sandbox, reachable only through the agent)."""
    port = free_port()
    argv = [sys.executable, "-c", APP]
    if cpus:  # on the agent's CPUs, where the workspace's copy runs
        argv = ["taskset", "-c", cpus[1], *argv]
    proc = subprocess.Popen(argv, env={**os.environ, "PORT": str(port)})
    wait_until(lambda: _answers(port), what="host copy of the app")
    return proc, port


def launch_app(portal: Portal, api: Api, agent: Agent) -> str:
    create_blueprint(
        api,
        "bench-app",
        setup_script=setup_script_writing("app.py", APP),
        start_command="exec python3 app.py",
    )
    response = api("POST", "/workspaces", json={"blueprint": "bench-app"})
    response.raise_for_status()
    workspace_id = response.json()["id"]
    api.wait_status(workspace_id, "running", timeout=60)
    return workspace_id


def enclave_target(name: str, portal: Portal, api: Api, workspace_id: str) -> Target:
    ticket = api("POST", f"/workspaces/{workspace_id}/preview-ticket", json={"port": 3000})
    ticket.raise_for_status()
    client = PreviewClient.from_ticket_url(portal, ticket.json()["url"])
    wait_until(lambda: client.get("/small").status_code == 200, what="preview answering")
    return Target(name, portal.port, urlsplit(ticket.json()["url"]).netloc, client.cookie)


def run_ways(targets: list[Target], concurrency: int, duration: float) -> list[tuple]:
    rows = []
    for target in targets:
        for label, path in SIZES.items():
            loaded = asyncio.run(measure(target, path, concurrency, duration))
            single = asyncio.run(measure(target, path, 1, duration / 2))
            rows.append((target.name, label, loaded, single))
            print(f"  measured {target.name:<48} {label}", file=sys.stderr)
    return rows


def print_table(rows: list[tuple], concurrency: int) -> None:
    """One line per way and size; "added" is against direct in the same placement."""

    def placement(name: str) -> str:
        return name.rpartition(", ")[2]

    direct = {
        (placement(name), label): single.p50_ms
        for name, label, _, single in rows
        if name.startswith("direct")
    }
    print(
        f"\n{'way':<48} | {'size':<5} | {'req/s @' + str(concurrency):>9} | {'p50':>7} | "
        f"{'p99':>7} | {'p50 @1':>7} | {'p99 @1':>7} | {'added p50 @1':>12} | errors"
    )
    print("-" * 136)
    for name, label, loaded, single in rows:
        added = single.p50_ms - direct.get((placement(name), label), float("nan"))
        print(
            f"{name:<48} | {label:<5} | {loaded.requests_per_s:>9.0f} | "
            f"{loaded.p50_ms:>5.2f}ms | {loaded.p99_ms:>5.2f}ms | {single.p50_ms:>5.2f}ms | "
            f"{single.p99_ms:>5.2f}ms | {added:>10.2f}ms | {loaded.errors + single.errors}"
        )


def make_portal(work: Path, port: int, server: str) -> Portal:
    """`daphne`, or `uvicorn:<ws implementation>` (e.g. `uvicorn:websockets`)."""
    name, _, ws = server.partition(":")
    if name == "uvicorn":
        portal: Portal = UvicornPortal(var_dir=work / "portal", port=port, ws=ws or "auto")
    else:
        portal = Portal(var_dir=work / "portal", port=port, server=name)
    portal.env_extra["LOG_LEVEL"] = "WARNING"
    return portal


def run_placement(placement: str, servers: list[str], args: argparse.Namespace) -> list[tuple]:
    """Every way, with fresh processes (and workspace) placed as `placement` says."""
    work = Path(tempfile.mkdtemp(prefix="enclave-bench-preview-"))
    port = free_port()

    def portal_for(server: str) -> Portal:
        portal = make_portal(work, port, server)
        partition(portal, placement)
        return portal

    portal = make_portal(work, port, servers[0])
    agent_args = partition(portal, placement)
    cpus = list(agent_args)
    if args.sandbox == "off":
        agent_args.append("--insecure-no-sandbox")
    portal.prepare()
    portal.start()
    agent = Agent(portal.url, portal.agent_token, work / "agent", args=agent_args).start()
    chp = host_app = None
    suffix = f", {placement}"
    try:
        api = Api(portal.url, portal.token_for("admin@portal.localhost"))
        wait_until(
            lambda: api("GET", "/workspaces").json()["unreachable_clusters"] == [],
            what="agent connected",
        )
        workspace_id = launch_app(portal, api, agent)
        host_app, app_port = start_host_app(cpus)
        chp, chp_port = start_chp(app_port, cpus=portal.env_extra.get("PORTAL_CPUS"))
        targets = [Target("direct" + suffix, app_port, f"127.0.0.1:{app_port}")]
        if chp is not None:
            targets.append(Target("chp" + suffix, chp_port, f"127.0.0.1:{chp_port}"))
        rows = run_ways(targets, args.concurrency, args.duration)
        for index, server in enumerate(servers):
            if index:
                portal.stop()
                portal = portal_for(server)
                portal.start()
                wait_until(
                    lambda: api("GET", "/workspaces").json()["unreachable_clusters"] == [],
                    timeout=60,
                    what="agent reconnected",
                )
            name = f"enclave-{server}{suffix}" + (", no sandbox" if args.sandbox == "off" else "")
            target = enclave_target(name, portal, api, workspace_id)
            rows += run_ways([target], args.concurrency, args.duration)
        return rows
    finally:
        for proc in (chp, host_app):
            if proc is not None:
                proc.terminate()
                proc.wait()
        agent.stop()
        agent.kill_workspaces()
        portal.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--servers",
        default="uvicorn:websockets-sansio",
        help="portal servers to measure: daphne, uvicorn:<ws implementation>",
    )
    parser.add_argument(
        "--placements",
        default="partitioned,shared",
        help="partitioned: the proxy (portal or configurable-http-proxy) on CPU 0, the "
        "agent and the app on the others; shared: the scheduler places every process",
    )
    add_sandbox_argument(parser)
    args = parser.parse_args()
    try:
        placements = parse_placements(args.placements)
    except ValueError as exc:
        parser.error(f"--placements: {exc}")
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    rows: list[tuple] = []
    for placement in placements:
        rows += run_placement(placement, servers, args)
    print_table(rows, args.concurrency)


if __name__ == "__main__":
    main()
