"""The AI tools and the assistant port in the local runtime, without a sandbox: the tools
directory on PATH, the start command under the entrypoint, the ports it is told about."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest

import agent.__main__ as cli
from agent.runtimes.base import RuntimeFailure
from agent.runtimes.local import LocalRuntime, launch, supervise
from agent.runtimes.local.sandbox import Sandbox, SandboxUnavailable
from agent.runtimes.spec import MAX_PORTS, validate_spec
from agent.tests.conftest import kill_all, wait_status
from agent.tests.test_entrypoint import ENTRYPOINT, FAKE_OPENCODE

ASSISTANT = {"port": 4096, "name": "assistant"}
SETTINGS = {
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_SHARE": "1",
}


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A tools directory as ``make setup`` leaves it, with stand-ins for the two tools."""
    root = tmp_path / "tools"
    (root / "bin").mkdir(parents=True)
    shutil.copy(ENTRYPOINT, root / "bin" / "enclave-entrypoint")
    for name, text in (("opencode", FAKE_OPENCODE), ("claude", "#!/bin/sh\necho claude\n")):
        (root / "bin" / name).write_text(text)
        (root / "bin" / name).chmod(0o755)
    return root


@pytest.fixture
async def runtime(tmp_path, tools):
    rt = LocalRuntime(
        tmp_path / "agent", sandbox=None, tools_dir=tools, poll_interval=0.05, stop_grace=2
    )
    await rt.load()
    yield rt
    await rt.shutdown()
    kill_all(tmp_path / "agent")


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(item.split("=", 1) for item in raw if "=" in item)


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


async def test_a_workspace_runs_under_the_entrypoint_with_the_tools(runtime, tools):
    script = 'command -v opencode claude > tools.txt; echo "$ENCLAVE_TOOLS" >> tools.txt; '
    secret = {"BLUEPRINT_CHAT_SYSTEM_PROMPT": "Answer briefly."}
    env = await runtime.create({"start_command": script + "exec sleep 60"}, {}, secret)
    env = await wait_status(runtime, env["id"], "running")
    home = runtime.root / env["id"] / "home"
    pid = runtime._envs[env["id"]].data["pid"]
    assert cmdline(pid)[:2] == ["/usr/bin/python3", "-I"]  # the script's own #! line
    assert cmdline(pid)[2:] == [
        str(tools / "bin" / "enclave-entrypoint"),
        "bash",
        "-c",
        script + "exec sleep 60",
    ]
    variables = environ(pid)
    assert variables.items() >= SETTINGS.items()
    assert variables["ENCLAVE_TOOLS"] == str(tools)
    assert variables["PATH"].startswith(f"{tools / 'bin'}:")
    shell = runtime.shell_context(env["id"]).env
    assert shell.items() >= SETTINGS.items() and shell["PATH"] == variables["PATH"]
    await asyncio.sleep(0.2)
    assert (home / "tools.txt").read_text().splitlines() == [
        str(tools / "bin" / "opencode"),
        str(tools / "bin" / "claude"),
        str(tools),
    ]
    assert "Answer briefly." in (home / "AGENTS.md").read_text()


async def test_without_a_start_command_the_entrypoint_serves_the_assistant(runtime, tmp_path):
    secret = {
        "BLUEPRINT_AI_PROVIDERS": '[{"provider":"openai","enabled":true,"model":"gpt-4o"}]',
        "OPENAI_API_KEY": "sk-openai-test",
        "FAKE_RECORD": str(tmp_path / "record.jsonl"),
    }
    env = await runtime.create({"ports": [ASSISTANT]}, {}, secret)
    env = await wait_status(runtime, env["id"], "running")
    assert runtime._envs[env["id"]].data["pid"]  # the entrypoint runs, alone
    for _ in range(200):
        if (tmp_path / "record.jsonl").exists():
            break
        await asyncio.sleep(0.05)
    argv = json.loads((tmp_path / "record.jsonl").read_text())["argv"]
    assert argv[-2:] == ["--port", str(env["ports"][0]["host_port"])]


async def test_ready_waits_for_the_app_port_not_the_assistants(runtime):
    app = 'exec python3 -m http.server "$PORT" --bind 127.0.0.1'
    spec = {"start_command": app, "ports": [ASSISTANT, {"port": 3000, "name": "app"}]}
    started = time.monotonic()
    env = await runtime.create(spec, {})
    env = await wait_status(runtime, env["id"], "running", timeout=10)
    assert time.monotonic() - started < 4  # ready_timeout is 30 s: the app port answered
    by_name = {p["name"]: p["host_port"] for p in env["ports"]}
    variables = environ(runtime._envs[env["id"]].data["pid"])
    assert variables["PORT"] == variables["DEV_PORT"] == str(by_name["app"])
    assert variables["ENCLAVE_ASSISTANT_PORT"] == variables["PORT_4096"]
    assert variables["PORT_4096"] == str(by_name["assistant"])


async def test_a_runtime_without_tools_keeps_the_plain_start_command(tmp_path):
    rt = LocalRuntime(tmp_path, sandbox=None, poll_interval=0.05)
    await rt.load()
    try:
        env = await rt.create({"start_command": "exec sleep 60"}, {})
        await wait_status(rt, env["id"], "running")
        pid = rt._envs[env["id"]].data["pid"]
        assert cmdline(pid) == ["sleep", "60"]
        assert "ENCLAVE_TOOLS" not in environ(pid)
        assert environ(pid).items() >= SETTINGS.items()  # offline either way
    finally:
        await rt.shutdown()
        kill_all(tmp_path)


def test_port_env_of_the_assistant_port():
    ports = [dict(ASSISTANT, host_port=41000), {"port": 3000, "name": "app", "host_port": 42000}]
    assert supervise.port_env(ports) == {
        "PORT": "42000",
        "DEV_PORT": "42000",
        "PORT_4096": "41000",
        "PORT_3000": "42000",
        "ENCLAVE_ASSISTANT_PORT": "41000",
    }
    assert supervise.port_env(ports[:1]) == {
        "PORT_4096": "41000",
        "ENCLAVE_ASSISTANT_PORT": "41000",
    }


def test_the_assistant_port_comes_on_top_of_the_blueprints():
    ports = [{"port": 3000 + i, "name": f"p{i}"} for i in range(MAX_PORTS)]
    assert (
        len(validate_spec({"ports": [*ports, ASSISTANT, {"port": 9, "name": "x"}]})["ports"]) == 18
    )
    with pytest.raises(RuntimeFailure):
        validate_spec({"ports": [*ports, ASSISTANT, {"port": 9, "name": "x"}, {"port": 8}]})


def test_start_argv():
    tools = Path("/srv/tools")
    assert launch.start_argv(None, "") is None
    assert launch.start_argv(None, "npm start") == ["bash", "-c", "npm start"]
    entrypoint = "/srv/tools/bin/enclave-entrypoint"
    assert launch.start_argv(tools, "") == [entrypoint]
    assert launch.start_argv(tools, "npm start") == [entrypoint, "bash", "-c", "npm start"]


def test_the_sandbox_maps_the_tools_read_only(tmp_path, tools):
    box = Sandbox(bwrap="bwrap", pasta="pasta", python="/usr/bin/python3", as_root=False)
    plain = box.command(
        tmp_path, ["true"], host_uid=1000, network="none", one_shot=True, hostname="h"
    )
    assert "/opt/enclave/tools" not in plain
    assert box.init_command("npm start")[-4:] == ["--", "bash", "-c", "npm start"]
    assert box.environment({"PATH": "/x"})["PATH"].split(":")[0] == "/usr/local/sbin"

    box = box.with_tools(tools)
    argv = box.command(
        tmp_path, ["true"], host_uid=1000, network="none", one_shot=True, hostname="h"
    )
    at = argv.index("/opt/enclave/tools")
    assert argv[at - 2 : at] == ["--ro-bind", str(tools)]
    entrypoint = "/opt/enclave/tools/bin/enclave-entrypoint"
    assert box.init_command("npm start")[-5:] == ["--", entrypoint, "bash", "-c", "npm start"]
    assert box.init_command(None)[-2:] == ["--", entrypoint]
    mapped = box.environment({"PATH": str(tools / "bin") + ":/x", "ENCLAVE_TOOLS": str(tools)})
    assert mapped["PATH"].startswith("/opt/enclave/tools/bin:/usr/local/sbin:")
    assert mapped["ENCLAVE_TOOLS"] == "/opt/enclave/tools"


@pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes have uids of their own only as root")
def test_tools_a_sandbox_cannot_read_are_refused_with_the_chmod(tmp_path, tools):
    box = Sandbox(bwrap="bwrap", pasta="pasta", python="/usr/bin/python3", as_root=True)
    env_path = tmp_path / "agent" / "environments" / "env-000000000001"
    env_path.mkdir(parents=True)
    package = tools / "node_modules" / "opencode-ai"
    package.mkdir(parents=True)
    (package / "opencode.exe").write_text("#!/bin/sh\n")
    (package / "opencode.exe").chmod(0o755)
    (tools / "bin" / "opencode").unlink()
    (tools / "bin" / "opencode").symlink_to("../node_modules/opencode-ai/opencode.exe")
    box.with_tools(tools).prepare(env_path, 200_000)  # readable: fine
    (tools / "node_modules").chmod(0o700)
    with pytest.raises(SandboxUnavailable, match=rf"chmod -R o\+rX {tools}\)"):
        box.with_tools(tools).prepare(env_path, 200_000)
    (tools / "node_modules").chmod(0o755)
    tmp_path.chmod(0o700)
    try:
        with pytest.raises(SandboxUnavailable, match=rf"through {tmp_path} \(run: chmod o\+x"):
            box.with_tools(tools).prepare(env_path, 200_000)
    finally:
        tmp_path.chmod(0o711)


def test_the_agent_finds_its_tools(tmp_path, monkeypatch, caplog):
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "INSTALLED_TOOLS", tmp_path / "opt-enclave-tools")
    monkeypatch.setattr(cli, "CHECKOUT_TOOLS", tmp_path / "checkout-tools")
    assert cli.tools_dir(parser, None) is None
    assert "make setup" in caplog.text
    (tmp_path / "checkout-tools" / "bin").mkdir(parents=True)
    (tmp_path / "checkout-tools" / "bin" / "enclave-entrypoint").write_text("")
    assert cli.tools_dir(parser, None) == tmp_path / "checkout-tools"
    (tmp_path / "opt-enclave-tools").mkdir()
    assert cli.tools_dir(parser, None) == tmp_path / "opt-enclave-tools"
    with pytest.raises(SystemExit):
        cli.tools_dir(parser, str(tmp_path / "elsewhere"))
    repository = Path(cli.__file__).resolve().parents[1] / "tools"
    assert cli.build_parser().parse_args(["--tools-dir", str(repository)]).tools_dir
    assert (repository / "bin" / "enclave-entrypoint").is_file()
