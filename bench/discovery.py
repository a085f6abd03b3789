"""Workspace discovery latency and launch-to-running time, through the real chain.

A portal (daphne, embedded defaults, discovery cache off so every request goes to the
agent) and a real agent with the local runtime holding 10, 1 000 and 10 000
environments. Prints a table:

* "mine": `GET /api/v1/workspaces` for a member who owns 10 of them — the builder's
  dashboard call (the agent filters by owner);
* "all": `GET /api/v1/admin/workspaces` listing every environment — the admin view.

Then launch-to-running of the demo blueprint (POST, poll every 20 ms until `running`).
Targets (issue): p50 under 50 ms at 10 000 environments; launch-to-running under 2 s.

Run: `make bench` or `.venv/bin/python bench/discovery.py [--requests N]`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import Agent, Api, Portal, manage, wait_until

OWNER = "admin@portal.localhost"
SPEC = {
    "image": "python:3.11-slim",
    "start_command": 'exec python3 -m http.server "$PORT" --bind 127.0.0.1',
    "setup_script": "",
    "git_repository": "",
    "env": {},
    "ports": [{"port": 3000, "name": "app"}],
    "resources": {"cpu": "1", "memory": "1Gi", "storage": "5Gi"},
}


def fabricate(data_dir: Path, count: int, mine: int) -> None:
    """Write `count` stopped environments straight to disk, `mine` of them owned by OWNER."""
    root = data_dir / "environments"
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        env_id = f"env-{secrets.token_hex(6)}"
        owner = OWNER if index < mine else f"member{index % 500}@example.com"
        (root / env_id / "home").mkdir(parents=True)
        record = {
            "id": env_id,
            "metadata": {
                "BLUEPRINT_KEY": "demo",
                "BLUEPRINT_PROJECT_ID": "1",
                "RDE_OWNER_EMAIL": owner,
                "RDE_DISPLAY_NAME": f"workspace {index}",
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


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def measure(api: Api, path: str, requests: int) -> tuple[float, float, int]:
    api("GET", path).raise_for_status()  # warm up
    samples = []
    size = 0
    for _ in range(requests):
        start = time.perf_counter()
        response = api("GET", path)
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        size = len(response.json()["results"])
    return statistics.median(samples), percentile(samples, 99), size


def launch_to_running(api: Api, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = api("POST", "/workspaces", json={"blueprint": "demo"})
        response.raise_for_status()
        workspace_id = response.json()["id"]
        wait_until(
            lambda wid=workspace_id: api.workspace(wid)["status"] == "running",
            timeout=30,
            interval=0.02,
            what="running",
        )
        times.append(time.perf_counter() - start)
        api("DELETE", f"/workspaces/{workspace_id}").raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--sizes", default="10,1000,10000")
    args = parser.parse_args()

    rows = []
    launch: list[float] = []
    for count in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
            tmp_path = Path(tmp)
            portal = Portal(
                var_dir=tmp_path / "portal",
                env_extra={"DISCOVERY_CACHE_SECONDS": "0", "LOG_LEVEL": "WARNING"},
            )
            portal.prepare()
            manage(portal.var_dir, "shell", "-c", _RAISE_LIMITS, env=portal.env)
            fabricate(tmp_path / "agent", count, mine=min(10, count))
            portal.start()
            agent = Agent(portal.url, portal.agent_token, tmp_path / "agent").start()
            try:
                api = Api(portal.url, portal.token_for(OWNER))
                wait_until(
                    lambda api=api: api("GET", "/workspaces").json()["unreachable_clusters"] == [],
                    timeout=60,
                    what="agent connected",
                )
                mine = measure(api, "/workspaces", args.requests)
                all_requests = max(10, args.requests // max(1, count // 1000))
                every = measure(api, "/admin/workspaces", all_requests)
                rows.append((count, mine, every))
                if count == 10:
                    launch = launch_to_running(api, runs=5)
            finally:
                agent.stop()
                agent.kill_workspaces()
                portal.stop()

    print("\nWorkspace discovery through portal -> tunnel -> agent (cache off)")
    print(
        f"{'environments':>12} | {'mine p50':>9} | {'mine p99':>9} | {'listed':>6} | "
        f"{'all p50':>9} | {'all p99':>9} | {'listed':>6}"
    )
    print("-" * 78)
    for count, (m50, m99, msize), (a50, a99, asize) in rows:
        print(
            f"{count:>12} | {m50:>7.1f}ms | {m99:>7.1f}ms | {msize:>6} | "
            f"{a50:>7.1f}ms | {a99:>7.1f}ms | {asize:>6}"
        )
    if launch:
        print(
            f"\nLaunch-to-running (demo blueprint, local runtime, {len(launch)} runs): "
            f"median {statistics.median(launch):.2f} s, max {max(launch):.2f} s"
        )


_RAISE_LIMITS = (
    "from core.models import OrganizationSettings as O; o = O.load(); "
    "o.api_rate_per_minute = 100000; o.launch_rate_per_minute = 1000; "
    "o.max_running_workspaces_per_user = 100; o.save()"
)


if __name__ == "__main__":
    main()
