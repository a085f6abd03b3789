"""The local runtime against real processes in a temporary data dir."""

import asyncio
import json
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from agent.runtimes import process as proc_util
from agent.runtimes.base import RuntimeFailure
from agent.runtimes.local import LocalRuntime
from agent.tests.conftest import kill_all, wait_status, wait_until, write_environment

SECRET = "sk-test-very-secret-value"
HTTP_SPEC = {
    "image": "python:3.11",
    "setup_script": "echo '<h1>hello enclave</h1>' > index.html",
    "start_command": "echo $$ >> ../pids.txt; exec python3 -m http.server $PORT --bind 127.0.0.1",
    "env": {"GREETING": "hi"},
    "ports": [{"port": 3000, "name": "app"}, {"port": 5173, "name": "vite"}],
}
TAGS = {
    "BLUEPRINT_KEY": "web",
    "RDE_OWNER_EMAIL": "Alice@Example.com",
    "RDE_DISPLAY_NAME": "Alice's app",
    "BLUEPRINT_PROJECT_ID": "p-1",
}


def http_get(port: int, path: str = "/index.html") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read().decode()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def host_port(env: dict) -> int:
    return env["ports"][0]["host_port"]


async def test_create_to_running_serves_files(runtime, events):
    started = time.monotonic()
    env = await runtime.create(HTTP_SPEC, TAGS, secret_env={"OPENAI_API_KEY": SECRET})
    assert env["status"] == "deploying"
    assert env["id"].startswith("env-") and len(env["id"]) == 16
    env = await wait_status(runtime, env["id"], "running")
    assert time.monotonic() - started < 2.0
    assert env["phase"] is None
    assert await asyncio.to_thread(http_get, host_port(env)) == "<h1>hello enclave</h1>\n"

    phases = [e["phase"] for kind, e in events if e["id"] == env["id"]]
    for phase in ("validating", "creating", "configuring", "deploying", "finalizing"):
        assert phase in phases
    home = runtime.root / env["id"] / "home"
    assert (home / ".git").is_dir()

    pid = json.loads((runtime.root / env["id"] / "environment.json").read_text())["pid"]
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
        if "=" in item
    )
    first, second = (p["host_port"] for p in env["ports"])
    assert environ["PORT"] == environ["DEV_PORT"] == environ["PORT_3000"] == str(first)
    assert environ["PORT_5173"] == str(second)
    assert environ["OPENAI_API_KEY"] == SECRET
    assert environ["GREETING"] == "hi"
    assert environ["HOME"] == str(home)

    for path in (runtime.root / env["id"]).rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log"):
            assert SECRET not in path.read_text()


async def test_stop_start_and_logs(runtime):
    env = await runtime.create(HTTP_SPEC, TAGS)
    env = await wait_status(runtime, env["id"], "running")
    port = host_port(env)
    await asyncio.to_thread(http_get, port)

    stopped = await runtime.stop(env["id"])
    assert stopped["status"] == "stopped"
    assert stopped["ports"][0]["host_port"] is None
    assert not port_open(port)

    restarted = await runtime.start(env["id"])
    assert restarted["status"] == "deploying"
    env = await wait_status(runtime, env["id"], "running")
    assert await asyncio.to_thread(http_get, host_port(env)) == "<h1>hello enclave</h1>\n"

    lines = await runtime.logs(env["id"], tail=50)
    assert any("GET /index.html" in line for line in lines)
    assert len(await runtime.logs(env["id"], tail=1)) == 1


async def test_process_killed_externally_turns_error(runtime):
    env = await runtime.create(HTTP_SPEC, TAGS)
    env = await wait_status(runtime, env["id"], "running")
    pid = json.loads((runtime.root / env["id"] / "environment.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)
    env = await wait_status(runtime, env["id"], "error")
    assert env["error"] == "signal SIGKILL"
    assert env["ports"][0]["host_port"] is None
    assert (await runtime.start(env["id"]))["status"] == "deploying"
    await wait_status(runtime, env["id"], "running")


async def test_exit_code_is_reported(runtime):
    env = await runtime.create({"start_command": "sleep 0.2; exit 3"}, {})
    env = await wait_status(runtime, env["id"], "error")
    assert env["error"] == "exit code 3"


async def test_setup_failure_sets_error(runtime):
    env = await runtime.create({"setup_script": "echo doing; exit 4", "start_command": "true"})
    env = await wait_status(runtime, env["id"], "error")
    assert env["error"] == "setup script failed (exit code 4)"
    assert any("doing" in line for line in await runtime.logs(env["id"]))


async def test_start_command_dying_during_startup_is_an_error(runtime):
    spec = {"start_command": "exit 2", "ports": [{"port": 8080, "name": "web"}]}
    env = await runtime.create(spec)
    env = await wait_status(runtime, env["id"], "error")
    assert "exit code 2" in env["error"]


async def test_delete_removes_directory(runtime, events):
    env = await runtime.create(HTTP_SPEC, TAGS)
    await wait_status(runtime, env["id"], "running")
    path = runtime.root / env["id"]
    assert (await runtime.delete(env["id"])) == {"id": env["id"], "deleted": True}
    assert not path.exists()
    assert events[-1][0] == "environment.deleted"
    with pytest.raises(RuntimeFailure) as info:
        await runtime.get(env["id"])
    assert info.value.code == "not_found"


async def test_delete_during_provisioning(runtime):
    env = await runtime.create({"setup_script": "sleep 30", "start_command": "true"})
    await wait_until(lambda: runtime._envs[env["id"]].data["phase"] == "configuring")
    started = time.monotonic()
    await runtime.delete(env["id"])
    assert time.monotonic() - started < 2
    assert not (runtime.root / env["id"]).exists()


async def test_restarted_agent_adopts_running_environment(tmp_path):
    first = LocalRuntime(tmp_path, sandbox=None, poll_interval=0.05)
    await first.load()
    try:
        env = await first.create(HTTP_SPEC, TAGS)
        env = await wait_status(first, env["id"], "running")
        await first.shutdown()

        second = LocalRuntime(tmp_path, sandbox=None, poll_interval=0.05, stop_grace=2)
        await second.load()
        adopted = await second.get(env["id"])
        assert adopted["status"] == "running"
        assert [e["id"] for e in await second.list({"BLUEPRINT_KEY": "web"})] == [env["id"]]
        assert await asyncio.to_thread(http_get, host_port(adopted))

        stopped = await second.stop(env["id"])
        assert stopped["status"] == "stopped"
        assert not port_open(host_port(adopted))
        await second.start(env["id"])
        running = await wait_status(second, env["id"], "running")

        pid = json.loads((tmp_path / "environments" / env["id"] / "environment.json").read_text())
        await second.shutdown()
        third = LocalRuntime(tmp_path, sandbox=None, poll_interval=0.05)
        await third.load()
        assert (await third.get(env["id"]))["status"] == "running"
        os.killpg(pid["pid"], signal.SIGKILL)
        env = await wait_status(third, env["id"], "error")
        assert env["error"] == "process exited"
        assert running["id"] == env["id"]
        await third.shutdown()
    finally:
        kill_all(tmp_path)


async def test_recovery_of_interrupted_states(tmp_path):
    root = tmp_path / "environments"
    dead_pid = 2**22 + 12345  # above the usual pid_max: never alive
    write_environment(root, "env-000000000001", status="running", pid=dead_pid)
    write_environment(root, "env-000000000002", status="deploying", phase="cloning")
    write_environment(root, "env-000000000003", status="stopped")
    write_environment(root, "env-000000000004", status="stopping", pid=dead_pid)
    (root / "env-00000000000f").mkdir()  # no environment.json: skipped
    (root / "not-an-env").mkdir()
    rt = LocalRuntime(tmp_path, sandbox=None)
    await rt.load()
    try:
        states = {e["id"]: (e["status"], e["error"]) for e in await rt.list()}
        assert states == {
            "env-000000000001": ("error", "process exited while the agent was down"),
            "env-000000000002": ("error", "provisioning interrupted"),
            "env-000000000003": ("stopped", None),
            "env-000000000004": ("stopped", None),
        }
        on_disk = json.loads((root / "env-000000000001" / "environment.json").read_text())
        assert on_disk["status"] == "error"
    finally:
        await rt.shutdown()


async def test_list_selector_and_owner_case_insensitive(runtime):
    alice = await runtime.create({}, {"RDE_OWNER_EMAIL": "Alice@Example.com", "BLUEPRINT_KEY": "a"})
    await runtime.create({}, {"RDE_OWNER_EMAIL": "bob@example.com", "BLUEPRINT_KEY": "a"})
    await runtime.create({}, {"BLUEPRINT_KEY": "b"})
    assert len(await runtime.list()) == 3
    assert len(await runtime.list({})) == 3
    found = await runtime.list({"RDE_OWNER_EMAIL": "ALICE@example.COM"})
    assert [e["id"] for e in found] == [alice["id"]]
    assert len(await runtime.list({"BLUEPRINT_KEY": "a"})) == 2
    assert await runtime.list({"BLUEPRINT_KEY": "A"}) == []  # only the owner is case-blind
    both = {"RDE_OWNER_EMAIL": "bob@example.com", "BLUEPRINT_KEY": "b"}
    assert await runtime.list(both) == []
    with pytest.raises(RuntimeFailure):
        await runtime.list({"BLUEPRINT_KEY": 1})
    await wait_status(runtime, alice["id"], "running")  # no start command: running, no process


async def test_list_of_2000_environments_uses_the_index(tmp_path):
    root = tmp_path / "environments"
    for i in range(2000):
        owner = f"user{i % 50}@example.com"
        write_environment(root, f"env-{i:012x}", metadata={"RDE_OWNER_EMAIL": owner, "N": str(i)})
    rt = LocalRuntime(tmp_path, sandbox=None)
    await rt.load()
    try:
        assert rt.count() == 2000
        started = time.perf_counter()
        everything = await rt.list()
        mine = await rt.list({"RDE_OWNER_EMAIL": "USER7@example.com"})
        elapsed = time.perf_counter() - started
        assert len(everything) == 2000 and len(mine) == 40
        assert elapsed < 0.05
        one = await rt.get("env-00000000002a")
        assert one["metadata"]["N"] == "42"
    finally:
        await rt.shutdown()


async def test_concurrent_operations_on_one_environment_are_serialised(runtime):
    env = await runtime.create(HTTP_SPEC, TAGS)
    await wait_status(runtime, env["id"], "running")
    env_id = env["id"]
    results = await asyncio.gather(
        runtime.stop(env_id),
        runtime.start(env_id),
        runtime.stop(env_id),
        runtime.restart(env_id),
        runtime.start(env_id),
    )
    assert [r["id"] for r in results] == [env_id] * 5
    env = await wait_status(runtime, env_id, "running")
    await asyncio.sleep(0.3)
    pids = (runtime.root / env_id / "pids.txt").read_text().split()
    alive = [pid for pid in pids if proc_util.is_alive(int(pid))]
    assert len(alive) == 1
    assert await asyncio.to_thread(http_get, host_port(env))


async def test_operations_on_different_environments_run_concurrently(runtime):
    slow = await runtime.create({"setup_script": "sleep 3", "start_command": "true"})
    fast = await runtime.create({"start_command": "sleep 60"})
    await wait_status(runtime, fast["id"], "running", timeout=2)
    await runtime.stop(fast["id"])
    assert (await runtime.get(slow["id"]))["status"] == "deploying"


async def test_stop_kills_after_grace_period(tmp_path):
    rt = LocalRuntime(tmp_path, sandbox=None, stop_grace=0.3)
    await rt.load()
    try:
        env = await rt.create({"start_command": "trap '' TERM; sleep 60 & wait"})
        await wait_status(rt, env["id"], "running")
        started = time.monotonic()
        assert (await rt.stop(env["id"]))["status"] == "stopped"
        assert 0.3 <= time.monotonic() - started < 3
    finally:
        await rt.shutdown()
        kill_all(tmp_path)


async def test_set_metadata_and_upgrade(runtime):
    env = await runtime.create(HTTP_SPEC, {"A": "1", "B": "2"})
    await wait_status(runtime, env["id"], "running")
    updated = await runtime.set_metadata(env["id"], {"B": None, "C": "3"})
    assert updated["metadata"] == {"A": "1", "C": "3"}
    on_disk = json.loads((runtime.root / env["id"] / "environment.json").read_text())
    assert on_disk["metadata"] == {"A": "1", "C": "3"}

    (runtime.root / env["id"] / "home" / "kept.txt").write_text("kept")
    new_spec = dict(HTTP_SPEC, ports=[{"port": 8000, "name": "web"}])
    await runtime.upgrade(env["id"], new_spec)
    env = await wait_status(runtime, env["id"], "running")
    assert env["spec"]["ports"] == [{"port": 8000, "name": "web"}]
    assert await asyncio.to_thread(http_get, host_port(env), "/kept.txt") == "kept"


@pytest.mark.parametrize(
    ("spec", "metadata"),
    [
        ("not a dict", {}),
        ({"unknown": 1}, {}),
        ({"start_command": 5}, {}),
        ({"env": {"1BAD": "x"}}, {}),
        ({"env": {"PORT": "1"}}, {}),
        ({"env": {"OK": 1}}, {}),
        ({"ports": [{"port": 0, "name": "x"}]}, {}),
        ({"ports": [{"port": 80, "name": "x"}, {"port": 80, "name": "y"}]}, {}),
        ({"ports": [{"port": 80, "name": "Bad Name"}]}, {}),
        ({"git_repository": "--upload-pack=evil"}, {}),
        ({"git_repository": "file:///etc"}, {}),
        ({"resources": {"cpu": [1]}}, {}),
        ({}, {"bad tag": "x"}),
        ({}, {"OK": 1}),
    ],
)
async def test_invalid_specs_are_rejected(runtime, spec, metadata):
    with pytest.raises(RuntimeFailure) as info:
        await runtime.create(spec, metadata)
    assert info.value.code == "invalid_spec"
    assert runtime.count() == 0


async def test_unknown_ids_and_bad_params(runtime):
    for call in (runtime.get, runtime.stop, runtime.start, runtime.delete, runtime.logs):
        with pytest.raises(RuntimeFailure) as info:
            await call("env-doesnotexist")
        assert info.value.code == "not_found"
    env = await runtime.create({})
    with pytest.raises(RuntimeFailure) as info:
        await runtime.logs(env["id"], tail=-1)
    assert info.value.code == "invalid_params"
    with pytest.raises(RuntimeFailure) as info:
        await runtime.start(env["id"], secret_env={"KEY": 1})
    assert info.value.code == "invalid_params"


async def test_git_clone(tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        proc = await asyncio.create_subprocess_exec(*git, *cmd, cwd=origin)
        assert await proc.wait() == 0
    (origin / "README").write_text("from origin")
    rt = LocalRuntime(tmp_path / "data", sandbox=None, allow_file_git=True)
    await rt.load()
    try:
        env = await rt.create({"git_repository": f"file://{origin}", "start_command": ""})
        await wait_status(rt, env["id"], "running")
        assert (rt.root / env["id"] / "home" / ".git").is_dir()
        bad = await rt.create({"git_repository": f"file://{tmp_path}/missing"})
        bad = await wait_status(rt, bad["id"], "error")
        assert bad["error"].startswith("clone failed")
    finally:
        await rt.shutdown()


def test_log_rotation_and_tail(tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "service.log").write_text("".join(f"line {i}\n" for i in range(100)))
    assert not proc_util.rotate_log(log_dir, limit=10_000)
    assert proc_util.rotate_log(log_dir, limit=100)
    assert (log_dir / "service.log").stat().st_size == 0
    (log_dir / "service.log").write_text("new 1\nnew 2\n")
    assert proc_util.tail_lines(log_dir, 3) == ["line 99", "new 1", "new 2"]
    assert proc_util.tail_lines(log_dir, 0) == []
    assert proc_util.tail_lines(tmp_path / "missing", 5) == []


def test_exit_reasons():
    assert proc_util.exit_reason(0) == "exit code 0"
    assert proc_util.exit_reason(-9) == "signal SIGKILL"
    assert proc_util.exit_reason(None) == "process exited"
