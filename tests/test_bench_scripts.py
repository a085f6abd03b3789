"""The benchmarks are not run by the suite, but what they ask the portal to do must work.

Each benchmark tunes the organisation's limits through `manage.py shell -c <snippet>`;
a snippet that no longer imports (a model moved) would break `make bench` unnoticed.
`bench/pages.py` drives pages that change often, so a tiny run of it is part of the suite;
so is one of `bench/events.py` (through Redis too when `REDIS_URL` is set, as in CI's
second pass).
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.models import OrganizationSettings

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("script", "snippet"),
    [("discovery", "_RAISE_LIMITS"), ("terminal", "_LIMITS"), ("pages", "_LIMITS")],
)
def test_the_settings_snippet_of_each_benchmark_runs(script, snippet):
    exec(getattr(_module(script), snippet), {})  # noqa: S102 - the benchmark's own code
    assert OrganizationSettings.load().api_rate_per_minute == 100000


@pytest.mark.integration
@pytest.mark.browser
def test_a_tiny_run_of_the_pages_benchmark_prints_its_tables():
    tiny = ["--workspaces", "5", "--requests", "3", "--loads", "1"]
    result = subprocess.run(
        [sys.executable, str(BENCH / "pages.py"), *tiny],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Builder pages: HTML served" in result.stdout
    assert "Editor open -> terminal prompt visible" in result.stdout
    for page in ("dashboard", "editor"):
        assert f"\n{page} " in result.stdout, result.stdout


@pytest.mark.integration
@pytest.mark.browser
def test_a_tiny_run_of_the_events_benchmark_prints_its_table():
    configs = "single,redis" if os.environ.get("REDIS_URL") else "single"
    tiny = ["--builders", "3", "--admins", "1", "--events", "12", "--rate", "30"]
    tiny += ["--configs", configs, "--browser", "--browser-events", "3"]
    result = subprocess.run(
        [sys.executable, str(BENCH / "events.py"), *tiny],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Live events: agent event -> /ws/events/ receipt" in result.stdout
    rows = [line for line in result.stdout.splitlines() if " | " in line]
    names = ["one process, in-process layer"]
    names += ["two processes, Redis"] if "redis" in configs else []
    for name in names:
        for audience in ("builders (own)", "admins (all)", "dashboard DOM"):
            assert any(r.startswith(name) and audience in r for r in rows), result.stdout
