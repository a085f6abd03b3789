"""Browser terminal through the full chain, next to a local PTY.

Chain: client WebSocket (`websockets`, acking like xterm.js) → portal → in-process relay →
agent tunnel → agent → PTY running `cat` (echo) or a writer (throughput). Everything is
on loopback; the agent and the portal are real processes. Each portal server (`--servers`,
default uvicorn) runs in two placements (`--placements`): *partitioned* — the portal on
CPU 0 (`PORTAL_CPUS`), the agent and its workspace on the other CPUs (`--cpus`), as an
operator splits a shared host, and as the portal and the cluster are apart in production
— and *shared*, every process where the scheduler puts it. Prints one table:

* echo round trip p50/p99 with 1 session and with `--sessions` (100) sessions, each
  typing ~10 keys/s (a key's echo by the PTY's line discipline, as typing in a shell);
* single-session output throughput (MB/s) of `--megabytes` (50) MB;
* portal RSS growth while a client stops reading and the workspace keeps writing
  (`yes`) for `--stall` seconds.

The "local PTY" row is the floor: the same measurements on a PTY in this process.
Targets (issue 4): echo p50 ≤ 2 ms and p99 ≤ 10 ms at 100 sessions; ≥ 50 MB/s;
< 50 MB RSS growth. Run: `.venv/bin/python bench/terminal.py [--servers daphne,uvicorn]`
(about 4 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websockets

from tests.harness import (
    Agent,
    Api,
    Portal,
    UvicornPortal,
    add_sandbox_argument,
    manage,
    parse_placements,
    partition,
    wait_until,
)
from tests.terminal_client import TerminalClient, shell_ticket

OWNER = "admin@portal.localhost"
SETTLE = 3.0
KEYS = b"abcdefghijklmnopqrstuvwxyz"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- through the portal -----------------------------------------------------------------


async def typist(term: TerminalClient, seconds: float, rate: float, out: list[float]) -> None:
    """Type one key every 1/rate s into `cat`; record each key's echo round trip.

    Keys are due on a fixed schedule (begin + i/rate). Sleeping 1/rate after each echo
    instead adds every echo's latency and timer lateness to the period: the staggered
    sessions then drift into step and type in bursts, which measures the bursts.
    """
    await term.type("stty -icanon; exec cat\n")
    await asyncio.sleep(0.5)
    term.output.clear()
    begin = time.perf_counter()
    i = 0
    while (due := begin + i / rate) < begin + seconds:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        key = KEYS[i % len(KEYS) : i % len(KEYS) + 1]
        i += 1
        start = len(term.output)
        sent = time.perf_counter()
        await term.ws.send(key)
        while key not in term.output[start:]:
            await term.pull(10)
        out.append((time.perf_counter() - sent) * 1000)


async def echo_rtt(stack: Stack, sessions: int, seconds: float) -> list[float]:
    terms = [await stack.terminal() for _ in range(sessions)]
    samples: list[float] = []

    # Stagger the typists so keystrokes spread over time like real people.
    async def staggered(term: TerminalClient, index: int) -> None:
        await asyncio.sleep(index * 0.1 / max(1, sessions))
        await typist(term, seconds, 10.0, samples)

    await asyncio.gather(*(staggered(t, i) for i, t in enumerate(terms)))
    for term in terms:
        await term.close()
    return samples[len(terms) :]  # drop each session's first (warm-up) key


async def throughput(stack: Stack, megabytes: int) -> float:
    term = await stack.terminal()
    size = megabytes * 1_000_000
    await term.type(
        f"stty -onlcr; echo GO-$((1+1)); head -c {size} /dev/zero | tr '\\0' x; "
        "echo; echo END-$((2+2))\n"
    )
    await term.until(rb"GO-2\n")
    start = time.perf_counter()
    mark = len(term.output)
    await term.until(rb"END-4", timeout=300, start=mark)
    elapsed = time.perf_counter() - start
    await term.close()
    return size / elapsed / 1e6


async def stalled_reader_rss(stack: Stack, seconds: float) -> tuple[float, float]:
    """Portal RSS growth (MB) while a client reads nothing and `yes` keeps writing."""
    term = await stack.terminal(ack=False)
    pid = stack.portal.proc.pid
    before = rss_mb(pid)
    await term.type("yes 0123456789abcdefghijklmnopqrstuvwxyz\n")
    peak = before
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # the client never reads from here on
        await asyncio.sleep(0.5)
        peak = max(peak, rss_mb(pid))
    await term.ws.send(b"\x03")
    await term.close()
    return before, peak - before


class Stack:
    def __init__(
        self, server: str, base: Path, placement: str = "shared", sandbox: bool = True
    ) -> None:
        var = base / f"{server}-{placement}" / "portal"
        if server == "daphne":
            self.portal: Portal = Portal(var_dir=var)
        else:
            ws = server.partition(":")[2] or "websockets-sansio"
            self.portal = UvicornPortal(var_dir=var, ws=ws)
        agent_args = partition(self.portal, placement)
        if not sandbox:
            agent_args.append("--insecure-no-sandbox")
        self.portal.prepare()
        manage(var, "shell", "-c", _LIMITS, env=self.portal.env)
        self.portal.start()
        self.agent = Agent(
            self.portal.url,
            self.portal.agent_token,
            base / f"{server}-{placement}" / "agent",
            args=agent_args,
        ).start()
        self.api = Api(self.portal.url, self.portal.token_for(OWNER))
        wait_until(lambda: self.api("GET", "/workspaces").json()["unreachable_clusters"] == [])
        response = self.api("POST", "/workspaces", json={"blueprint": "demo", "name": "Bench"})
        response.raise_for_status()
        self.workspace = response.json()["id"]
        self.api.wait_status(self.workspace, "running", timeout=60)

    async def terminal(self, **kwargs) -> TerminalClient:
        ticket = await asyncio.to_thread(shell_ticket, self.api, self.workspace)
        return await TerminalClient.open(self.portal.url, ticket, **kwargs)

    def stop(self) -> None:
        self.agent.stop()
        self.agent.kill_workspaces()
        self.portal.stop()


_LIMITS = (
    "from core.models import OrganizationSettings as O; s = O.load(); "
    "s.api_rate_per_minute = 100000; s.save()"
)


# --- the floor: a PTY in this process ----------------------------------------------------


def local_pty(sessions: int, seconds: float, megabytes: int) -> dict[str, float]:
    async def run() -> dict[str, float]:
        loop = asyncio.get_running_loop()

        async def spawn(argv: list[str]) -> tuple[int, subprocess.Popen]:
            master, slave = pty.openpty()
            proc = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
            )
            os.close(slave)
            os.set_blocking(master, False)
            return master, proc

        async def read_some(master: int) -> bytes:
            ready = loop.create_future()
            loop.add_reader(master, lambda: ready.done() or ready.set_result(None))
            try:
                await ready
            finally:
                loop.remove_reader(master)
            try:
                return os.read(master, 65536)
            except OSError:
                return b""

        async def typist_local(samples: list[float], offset: float = 0.0) -> None:
            master, proc = await spawn(["sh", "-c", "stty -icanon; exec cat"])
            await asyncio.sleep(0.3 + offset)
            with contextlib.suppress(BlockingIOError):
                while os.read(master, 65536):
                    pass
            begin = time.perf_counter()
            i = 0
            while (due := begin + i * 0.1) < begin + seconds:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                key = KEYS[i % len(KEYS) : i % len(KEYS) + 1]
                i += 1
                sent = time.perf_counter()
                os.write(master, key)
                got = b""
                while key not in got:
                    got += await read_some(master)
                samples.append((time.perf_counter() - sent) * 1000)
            proc.kill()
            os.close(master)

        one: list[float] = []
        await typist_local(one)
        many: list[float] = []
        await asyncio.gather(*(typist_local(many, i * 0.1 / sessions) for i in range(sessions)))
        size = megabytes * 1_000_000
        master, proc = await spawn(["sh", "-c", f"head -c {size} /dev/zero | tr '\\0' x"])
        start = time.perf_counter()
        total = 0
        while chunk := await read_some(master):
            total += len(chunk)
        elapsed = time.perf_counter() - start
        proc.wait()
        return {
            "p50_1": statistics.median(one),
            "p99_1": pct(one, 0.99),
            "p50_n": statistics.median(many),
            "p99_n": pct(many, 0.99),
            "mbps": total / elapsed / 1e6,
        }

    return asyncio.run(run())


# --- main ----------------------------------------------------------------------------------


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, float]:
    one = await echo_rtt(stack, 1, args.seconds)
    many = await echo_rtt(stack, args.sessions, args.seconds)
    # Let the portal finish ending those sessions (their audit rows) before the next
    # figure: each measurement stands on its own.
    await asyncio.sleep(SETTLE)
    mbps = await throughput(stack, args.megabytes)
    before, growth = await stalled_reader_rss(stack, args.stall)
    return {
        "p50_1": statistics.median(one),
        "p99_1": pct(one, 0.99),
        "p50_n": statistics.median(many),
        "p99_n": pct(many, 0.99),
        "mbps": mbps,
        "rss_before": before,
        "rss_growth": growth,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--servers",
        default="uvicorn:websockets-sansio",
        help="portal servers: daphne, uvicorn:<ws implementation>",
    )
    parser.add_argument(
        "--placements",
        default="partitioned,shared",
        help="partitioned: portal on CPU 0, agent and workspaces on the others "
        "(PORTAL_CPUS, --cpus); shared: the scheduler places every process",
    )
    add_sandbox_argument(parser)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--stall", type=float, default=10.0)
    args = parser.parse_args()
    try:
        placements = parse_placements(args.placements)
    except ValueError as exc:
        parser.error(f"--placements: {exc}")
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        for server in args.servers.split(","):
            for placement in placements:
                stack = Stack(server, Path(tmp), placement, sandbox=args.sandbox == "on")
                name = f"{server}, {placement}" + (", no sandbox" if args.sandbox == "off" else "")
                try:
                    rows.append((name, asyncio.run(measure(stack, args))))
                except (OSError, websockets.WebSocketException, AssertionError) as exc:
                    print(f"{name}: failed: {exc}", file=sys.stderr)
                finally:
                    stack.stop()
    rows.append(("local PTY (floor)", local_pty(args.sessions, args.seconds, args.megabytes)))
    n = args.sessions
    print(
        f"\nBrowser terminal, {os.cpu_count()} CPUs, {n} sessions x 10 keys/s, "
        f"{args.megabytes} MB output, {args.stall:g} s stalled reader\n"
    )
    header = (
        f"| chain | echo p50 / p99, 1 session (ms) | echo p50 / p99, {n} sessions (ms) "
        "| output (MB/s) | portal RSS growth, stalled reader (MB) |"
    )
    print(header)
    print("|" + "---|" * 5)
    for name, r in rows:
        rss = f"{r['rss_growth']:.1f} (from {r['rss_before']:.0f})" if "rss_growth" in r else "-"
        print(
            f"| {name} | {r['p50_1']:.2f} / {r['p99_1']:.2f} | {r['p50_n']:.2f} / "
            f"{r['p99_n']:.2f} | {r['mbps']:.0f} | {rss} |"
        )


if __name__ == "__main__":
    main()
