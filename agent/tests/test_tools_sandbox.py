"""The installed AI tools in real bubblewrap sandboxes: on PATH, read-only, and OpenCode's
web UI served on the assistant port — with no secret in the log or the process list.

These need ``tools/node_modules`` (``make setup``, which ``make test`` runs first).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path

import pytest

from agent.runtimes.local import LocalRuntime, secret_store
from agent.runtimes.local.sandbox import Sandbox
from agent.tests.test_sandbox import run_in, running

TOOLS = Path(__file__).resolve().parents[2] / "tools"
pytestmark = pytest.mark.skipif(
    not (TOOLS / "node_modules").is_dir(),
    reason="the AI tools are not installed in tools/node_modules: run make setup",
)
SECRET = "sk-custom-llm-sandbox-secret-7731"
PROMPT = "PROMPT-CANARY: build the team's dashboards"
APP = 'exec python3 -m http.server "$PORT" --bind 127.0.0.1'
ASSISTANT = {
    "BLUEPRINT_AI_PROVIDERS": '[{"provider":"custom","enabled":true,"model":"local-model"}]',
    "CUSTOM_LLM_BASE_URL": "http://127.0.0.1:9/v1",
    "CUSTOM_LLM_API_KEY": SECRET,
    "OPENCODE_DEFAULT_MODEL": "custom-llm/local-model",
    "BLUEPRINT_CHAT_SYSTEM_PROMPT": PROMPT,
}


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox.detect()


@pytest.fixture
async def runtime(tmp_path, box):
    rt = LocalRuntime(
        tmp_path / "agent",
        sandbox=box,
        tools_dir=TOOLS,
        secret_key=secret_store.key_from_token("enc_sandbox-tools-test"),
        stop_grace=2.0,
        poll_interval=0.05,
        ready_timeout=10.0,
    )
    await rt.load()
    yield rt
    for env in list(rt._envs.values()):
        with contextlib.suppress(Exception):
            await rt.delete(env.id)
    await rt.shutdown()


async def test_a_workspace_has_the_ai_tools_read_only(runtime):
    start = "command -v opencode claude > tools.txt; exec sleep infinity"
    env = await running(runtime, {"start_command": start})
    home = runtime._envs[env["id"]].home
    for _ in range(100):
        if (home / "tools.txt").exists():
            break
        await asyncio.sleep(0.05)
    expected = "/opt/enclave/tools/bin/opencode\n/opt/enclave/tools/bin/claude\n"
    assert (home / "tools.txt").read_text() == expected
    script = """
        command -v opencode claude
        opencode --version
        claude --version
        echo "login: $(bash -lc 'command -v claude')"  # /etc/profile sets PATH afresh
        echo "tools=$ENCLAVE_TOOLS quiet=$DISABLE_AUTOUPDATER$OPENCODE_DISABLE_AUTOUPDATE"
        touch /opt/enclave/tools/bin/mine 2>/dev/null && echo "WROTE bin" || echo "bin: read-only"
        rm -f /opt/enclave/tools/bin/opencode 2>/dev/null && echo "REMOVED" || echo "kept"
        echo x > /opt/enclave/tools/node_modules/x 2>/dev/null && echo "WROTE modules" \
          || echo "modules: read-only"
    """
    code, out = await run_in(runtime, env["id"], script)
    assert code == 0, out
    assert expected in out
    assert "1.18.33" in out and "2.1.332 (Claude Code)" in out
    assert "login: /opt/enclave/tools/bin/claude\n" in out  # terminals are login shells
    assert "tools=/opt/enclave/tools quiet=11" in out
    assert "bin: read-only" in out and "kept" in out and "modules: read-only" in out
    assert "WROTE" not in out and "REMOVED" not in out
    assert (TOOLS / "bin" / "opencode").exists()


async def test_the_assistant_serves_opencode_and_nothing_secret_shows(runtime):
    ports = [{"port": 3000, "name": "app"}, {"port": 4096, "name": "assistant"}]
    env = await running(runtime, {"start_command": APP, "ports": ports}, ASSISTANT)
    status, body = 0, ""
    for _ in range(60):  # OpenCode's first start takes a few seconds
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            status, body = await _get(runtime, env["id"], 4096)
            if status == 200:
                break
        await asyncio.sleep(0.5)
    assert status == 200 and "<title>OpenCode</title>" in body, (status, body[:200])
    app_status, _ = await _get(runtime, env["id"], 3000)
    assert app_status in (200, 404)  # the app answers on its own port, not the assistant

    processes = subprocess.run(
        ["ps", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout
    assert "opencode serve --hostname 127.0.0.1 --port 4096" in processes
    assert SECRET not in processes and PROMPT not in processes

    home = runtime._envs[env["id"]].home
    assert PROMPT in (home / "AGENTS.md").read_text()
    assert {"AGENTS.md", "CLAUDE.md"} <= set((home / ".gitignore").read_text().splitlines())
    code, out = await run_in(runtime, env["id"], 'test -n "$CUSTOM_LLM_API_KEY" && echo has-key')
    assert code == 0 and "has-key" in out and SECRET not in out
    log = "\n".join(await runtime.logs(env["id"], tail=1000))
    assert "assistant started" in log
    for value in (SECRET, PROMPT, "local-model", "127.0.0.1:9"):
        assert value not in log
    for path in runtime._envs[env["id"]].path.rglob("*"):
        if path.is_file() and not path.is_relative_to(home):
            assert SECRET.encode() not in path.read_bytes(), path


async def _get(rt: LocalRuntime, env_id: str, port: int) -> tuple[int, str]:
    """``GET /`` on a workspace port through the agent: (status, body)."""
    sock = await rt.connect_port(env_id, port, 5.0)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode(errors="replace").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(fields.get("content-length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
    return int(lines[0].split()[1]), body.decode(errors="replace")
