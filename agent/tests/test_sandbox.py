"""Workspaces in real bubblewrap sandboxes: what a builder's terminal can and cannot reach.

Every test here starts real sandboxes (bubblewrap, and pasta for the outbound network)
through the local runtime, and looks at them from inside — through a shell started by
the workspace's init, exactly as a terminal is — and from the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys

import pytest

from agent import protocol as p
from agent.multiplex import Multiplexer
from agent.runtimes.base import RuntimeFailure
from agent.runtimes.local import LocalRuntime, sandbox
from agent.runtimes.local.sandbox import Sandbox
from agent.shell import SandboxedProcess, ShellService
from agent.tests.test_shell import Client

APP = 'exec python3 -m http.server "$PORT" --bind 127.0.0.1'
OWNER = {"RDE_OWNER_EMAIL": "builder@example.com"}


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox.detect()


@pytest.fixture
async def runtime(tmp_path, box):
    rt = LocalRuntime(
        tmp_path / "agent", sandbox=box, stop_grace=2.0, poll_interval=0.05, ready_timeout=10.0
    )
    await rt.load()
    yield rt
    for env in list(rt._envs.values()):
        with contextlib.suppress(Exception):
            await rt.delete(env.id)
    await rt.shutdown()


async def running(rt: LocalRuntime, spec: dict, secret: dict | None = None) -> dict:
    env = await rt.create(spec, OWNER, secret or {})
    for _ in range(300):
        env = await rt.get(env["id"])
        if env["status"] in ("running", "error"):
            break
        await asyncio.sleep(0.05)
    assert env["status"] == "running", (env, await rt.logs(env["id"]))
    return env


async def run_in(rt: LocalRuntime, env_id: str, script: str) -> tuple[int, str]:
    """Run ``script`` in a shell of the workspace, as a terminal does: (exit code, output)."""
    target = rt.shell_context(env_id)
    pid, master, link = await sandbox.spawn(
        target.sandbox, ["/bin/bash", "-c", script], target.env, cwd=target.cwd, rows=24, cols=200
    )
    process = SandboxedProcess(pid, link)
    output = bytearray()
    loop = asyncio.get_running_loop()
    os.set_blocking(master, False)
    readable = asyncio.Event()
    loop.add_reader(master, readable.set)
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                readable.clear()
                await asyncio.wait_for(readable.wait(), 30)
                continue
            except OSError:  # EIO: the shell and everything it started are gone
                break
            if not chunk:
                break
            output += chunk
    finally:
        loop.remove_reader(master)
        os.close(master)
    code = await asyncio.wait_for(process.wait(), 30)
    process.close()
    return code, output.decode(errors="replace").replace("\r\n", "\n")


async def test_a_builder_reaches_only_its_own_workspace(runtime, tmp_path, box):
    secrets_dir = tmp_path / "var"  # stands for the portal's var/ and the agent token
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / "secret_key").write_text("portal-secret")
    token = tmp_path / "agent" / "agent.token"
    token.write_text("agent-token")
    token.chmod(0o600)
    listener = socket.create_server(("127.0.0.1", 0))  # a service on the host's loopback
    host_port = listener.getsockname()[1]
    other = await running(
        runtime,
        {"start_command": APP, "ports": [{"port": 3000, "name": "app"}]},
        {"AI_KEY": "other-builders-key"},
    )
    mine = await running(runtime, {"start_command": "exec sleep infinity"}, {"AI_KEY": "mine"})
    other_home = runtime._envs[other["id"]].home
    other_pid = runtime._envs[other["id"]].data["pid"]
    script = f"""
        echo "uid=$(id -u) user=$(id -un) home=$HOME"
        ls {other_home} >/dev/null 2>&1 && echo "REACHED other home" || echo "other home: no"
        ls {runtime.root} >/dev/null 2>&1 && echo "REACHED data dir" || echo "data dir: no"
        cat {token} >/dev/null 2>&1 && echo "REACHED token" || echo "token: no"
        cat {secrets_dir}/secret_key >/dev/null 2>&1 && echo "REACHED var" || echo "var: no"
        cat /proc/{other_pid}/environ >/dev/null 2>&1 && echo "REACHED env" || echo "env: no"
        kill -0 {other_pid} 2>/dev/null && echo "REACHED kill" || echo "kill: no"
        echo "processes=$(ls /proc | grep -c '^[0-9]')"
        python3 - <<'PY'
import socket
for port in (3000, {host_port}):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        print("REACHED port", port)
    except OSError as exc:
        print("port", port, "no:", type(exc).__name__)
PY
        echo "AI_KEY=$AI_KEY"
        echo made > own.txt && cat own.txt
        git --version >/dev/null && python3 -c 'print("python ok")' \
          && node -e 'console.log("node ok")' && npm --version >/dev/null && echo "tools ok"
    """
    code, out = await run_in(runtime, mine["id"], script)
    listener.close()
    assert code == 0, out
    assert "uid=1000 user=builder home=/home/builder" in out
    # On the host, what the builder made belongs to the sandbox's own unprivileged uid.
    host_uid = (runtime._envs[mine["id"]].home / "own.txt").stat().st_uid
    if os.geteuid() == 0:  # an agent run as root gives each sandbox a uid of its own
        assert host_uid != 0 and host_uid != (runtime._envs[other["id"]].home).stat().st_uid
    else:
        assert host_uid == os.getuid()
    assert "REACHED" not in out, out
    assert "processes=" in out and int(out.split("processes=")[1].split()[0]) <= 6
    assert "AI_KEY=mine" in out and "other-builders-key" not in out
    assert "made" in out and "tools ok" in out
    assert (runtime._envs[mine["id"]].home / "own.txt").read_text() == "made\n"


async def test_the_app_answers_through_the_agent_and_files_survive_restarts(tmp_path, box):
    data = tmp_path / "agent"
    first = LocalRuntime(data, sandbox=box, poll_interval=0.05, ready_timeout=10.0)
    await first.load()
    env = await running(
        first,
        {
            "start_command": APP,
            "ports": [{"port": 3000, "name": "app"}],
            "setup_script": "echo kept > index.html",
        },
    )
    assert await _get(first, env["id"]) == "kept\n"
    await first.stop(env["id"])
    await first.start(env["id"])
    for _ in range(200):
        if (await first.get(env["id"]))["status"] == "running":
            break
        await asyncio.sleep(0.05)
    assert await _get(first, env["id"]) == "kept\n"
    await first.shutdown()  # the agent stops; the workspace keeps running
    second = LocalRuntime(data, sandbox=box, poll_interval=0.05)
    await second.load()
    try:
        assert (await second.get(env["id"]))["status"] == "running"
        assert await _get(second, env["id"]) == "kept\n"  # adopted, reached again
    finally:
        await second.delete(env["id"])
        await second.shutdown()


async def _get(rt: LocalRuntime, env_id: str) -> str:
    sock = await rt.connect_port(env_id, 3000, 5.0)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
    response = await reader.read()
    writer.close()
    return response.split(b"\r\n\r\n", 1)[1].decode()


async def test_nothing_listening_is_refused_not_hung(runtime):
    env = await running(
        runtime, {"start_command": "exec sleep infinity", "ports": [{"port": 3000, "name": "app"}]}
    )
    with pytest.raises(ConnectionRefusedError):
        await runtime.connect_port(env["id"], 3000, 2.0)


async def test_network_none_has_loopback_only(runtime, box):
    none = await running(runtime, {"start_command": "exec sleep infinity", "network": "none"})
    outbound = await running(runtime, {"start_command": "exec sleep infinity"})
    probe = "ip -o -4 route show default | grep -q default && echo uplink || echo loopback-only"
    assert (await run_in(runtime, none["id"], probe))[1].strip() == "loopback-only"
    assert (await run_in(runtime, outbound["id"], probe))[1].strip() == "uplink"


async def test_a_terminal_in_a_sandbox_reports_its_exit_and_resizes(runtime):
    env = await running(runtime, {"start_command": "exec sleep infinity"})
    shells = ShellService(runtime, grace=30, check_interval=0.05)
    portal_mux: Multiplexer | None = None

    async def to_portal(data):
        await portal_mux.feed(data)

    agent_mux = Multiplexer(to_portal, {"shell": shells.handle_stream})
    portal_mux = Multiplexer(agent_mux.feed, role="portal")
    try:
        client = Client(
            await portal_mux.open_stream(p.shell_open_request(env["id"], cols=100, rows=30))
        )
        assert (await client.control())["type"] == "session"
        await client.type("stty size; echo in-$((6*7))-$(whoami)\n")
        await client.until(rb"in-42-builder")
        assert b"30 100" in client.output
        await client.send_control({"type": "resize", "cols": 120, "rows": 40})
        await client.type("stty size\n")
        await client.until(rb"40 120")
        await client.type("exit 3\n")
        exit_record = await client.control()
        assert exit_record == {"type": "exit", "reason": "exited", "code": 3}
    finally:
        await shells.aclose()


async def test_a_deleted_data_dir_takes_its_sandbox_with_it(runtime):
    env = await running(runtime, {"start_command": "exec sleep infinity"})
    record = runtime._envs[env["id"]]
    pid = record.data["pid"]
    await runtime.shutdown()  # the agent is gone; the workspace still runs
    shutil.rmtree(record.path)
    for _ in range(200):  # the init notices within its check interval (5 s)
        if not _alive(pid):
            break
        await asyncio.sleep(0.05)
    assert not _alive(pid)
    runtime._envs.clear()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_agent_refuses_to_run_unsandboxed_without_the_flag(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path), "ENCLAVE_AGENT_TOKEN": "enc_x"}
    env.pop("ENCLAVE_INSECURE_NO_SANDBOX", None)
    argv = [
        sys.executable,
        "-m",
        "agent",
        "--portal-url",
        "http://127.0.0.1:9",
        "--data-dir",
        str(tmp_path / "d"),
    ]
    refused = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert refused.returncode != 0
    assert "cannot isolate workspaces: bubblewrap is not installed" in refused.stderr
    assert "--insecure-no-sandbox" in refused.stderr


async def test_a_workspace_over_its_memory_limit_is_stopped_with_the_reason(tmp_path, box):
    rt = LocalRuntime(tmp_path / "agent", sandbox=box, poll_interval=0.05, limits_interval=0.1)
    await rt.load()
    try:
        hog = "exec python3 -c 'import time; b = bytearray(160 << 20); time.sleep(600)'"
        spec = {"start_command": hog, "resources": {"cpu": "1", "memory": "64Mi"}}
        # It may be stopped before a poll ever sees it running: wait for the error alone.
        env = await rt.create(spec, OWNER, {})
        for _ in range(400):
            env = await rt.get(env["id"])
            if env["status"] == "error":
                break
            await asyncio.sleep(0.05)
        assert env["status"] == "error"
        assert env["error"].startswith("memory limit exceeded (")
        assert "memory limit exceeded" in "\n".join(await rt.logs(env["id"]))
        assert rt.isolation == {
            "sandbox": "bubblewrap",
            "network": "private",
            "limits": rt.enforcer.mechanism,
        }
    finally:
        await rt.shutdown()


async def test_bad_resources_or_network_are_refused_at_create(runtime):
    with pytest.raises(RuntimeFailure) as bad:
        await runtime.create({"resources": {"memory": "lots"}}, OWNER, {})
    assert bad.value.code == "invalid_spec" and "memory" in bad.value.message
    with pytest.raises(RuntimeFailure) as bad:
        await runtime.create({"network": "intranet"}, OWNER, {})
    assert bad.value.code == "invalid_spec"
