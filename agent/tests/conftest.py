"""Fixtures of the agent tests: a local runtime on a temporary data dir."""

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from agent.runtimes.local import LocalRuntime


async def wait_until(predicate, timeout=5.0, interval=0.02):
    """Poll ``predicate`` (sync or async) until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def wait_status(runtime, env_id, status, timeout=5.0):
    """Wait for an environment to reach ``status``; return its snapshot."""

    async def reached():
        env = await runtime.get(env_id)
        return env if env["status"] == status else None

    try:
        return await wait_until(reached, timeout)
    except AssertionError as exc:
        env = await runtime.get(env_id)
        message = f"status {env['status']!r} ({env['error']}), wanted {status!r}"
        raise AssertionError(message) from exc


def kill_all(data_dir):
    """Kill every process group recorded under ``data_dir`` (test cleanup)."""
    for path in Path(data_dir, "environments").glob("env-*/environment.json"):
        with contextlib.suppress(OSError, ValueError):
            pid = json.loads(path.read_text()).get("pid")
            if pid:
                os.killpg(pid, signal.SIGKILL)


def write_environment(root, env_id, **fields):
    """Write an environment.json directly (fast fixtures for large data dirs)."""
    data = {
        "id": env_id,
        "metadata": {},
        "spec": {
            "image": "",
            "start_command": "true",
            "setup_script": "",
            "git_repository": "",
            "env": {},
            "ports": [],
            "resources": {},
        },
        "status": "stopped",
        "phase": None,
        "error": None,
        "ports": [],
        "pid": None,
        "process_started": None,
        "created_at": "2025-01-01T00:00:00+00:00",
        "updated_at": "2025-01-01T00:00:00+00:00",
    }
    data.update(fields)
    (root / env_id).mkdir(parents=True)
    (root / env_id / "environment.json").write_text(json.dumps(data))


@pytest.fixture
def events():
    return []


@pytest.fixture
async def runtime(tmp_path, events):
    rt = LocalRuntime(
        tmp_path,
        sandbox=None,  # the runtime's own mechanics; agent/tests/test_sandbox.py sandboxes
        on_event=lambda kind, env: events.append((kind, env)),
        stop_grace=2.0,
        poll_interval=0.05,
        ready_timeout=5.0,
    )
    await rt.load()
    try:
        yield rt
    finally:
        for env in list(rt._envs.values()):
            if env.proc is not None:
                with contextlib.suppress(OSError):
                    os.killpg(env.proc.pid, signal.SIGKILL)
        await rt.shutdown()
        kill_all(tmp_path)
