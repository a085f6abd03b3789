"""How the local runtime runs a workspace's commands: as they are, or in its sandbox.

`provision_wrap` says how one-shot provisioning steps (clone, setup script) run;
`start_argv` what an unsandboxed workspace runs (the start command, under the tools'
entrypoint when there are tools); `tools_env` the variables every workspace process gets
about the AI tools; `ready_probe` what "ready" means once the start command runs: the
first declared app port (not the assistant's) accepts connections — on the host, or
inside the workspace's own network through the sandbox's init — or, without one, that
the init answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from agent.runtimes import process as proc_util
from agent.runtimes.local import provision, sandbox, supervise
from agent.runtimes.local.sandbox import Sandbox, SandboxError
from agent.runtimes.records import EnvRecord

TOOL_SETTINGS: Final = {
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_SHARE": "1",
}
"""Keep Claude Code and OpenCode offline and quiet: no self-update (the tools directory
is read-only and pinned by the project), no model list or telemetry fetched, no sharing."""


def tools_env(tools_dir: Path | None, path: str) -> dict[str, str]:
    """What every workspace process (start command, shells, setup script) gets about the
    AI tools: `TOOL_SETTINGS`; with a tools directory also ``ENCLAVE_TOOLS`` and its
    ``bin/`` first on ``path``. Paths are the host's: `Sandbox.environment` maps them."""
    result = dict(TOOL_SETTINGS)
    if tools_dir is not None:
        result["ENCLAVE_TOOLS"] = str(tools_dir)
        result["PATH"] = f"{tools_dir / 'bin'}:{path}"
    return result


def start_argv(tools_dir: Path | None, start_command: str) -> list[str] | None:
    """What an unsandboxed workspace runs: ``bash -c <start command>``, under the tools'
    entrypoint (which writes the AI context and runs the assistant) when there are
    tools — the entrypoint alone without a start command; None when nothing runs."""
    app = ["bash", "-c", start_command] if start_command else []
    if tools_dir is None:
        return app or None
    return [str(tools_dir / sandbox.ENTRYPOINT), *app]


def provision_wrap(box: Sandbox | None, env: EnvRecord) -> provision.Wrap | None:
    """How provisioning steps of ``env`` run: in a one-shot sandbox, or as they are."""
    if box is None:
        return None

    def wrap(argv: list[str], run_env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        command = box.command(
            env.path,
            argv,
            host_uid=env.data["sandbox_uid"],
            network=env.data["spec"].get("network", "outbound"),
            one_shot=True,
            hostname=env.id,
        )
        return command, box.environment(run_env)

    return wrap


def ready_probe(
    box: Sandbox | None, env: EnvRecord, ports: list[dict[str, Any]]
) -> Callable[[], Awaitable[bool]] | None:
    """What "ready" means: the first app port accepts connections (else the init answers).

    The assistant's port never counts: OpenCode starting is not the app being ready.
    """
    app = supervise.app_ports(ports)
    if box is None:
        if not app:
            return None
        return lambda: proc_util.port_accepts(app[0]["host_port"])
    if not app or not env.data["spec"]["start_command"]:
        return lambda: sandbox.ping(env.path)

    async def accepts() -> bool:
        try:
            sock = await sandbox.connect(env.path, app[0]["port"], timeout=1.0)
        except SandboxError:
            return False
        sock.close()
        return True

    return accepts
