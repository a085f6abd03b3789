"""How the local runtime runs a workspace's commands: as they are, or in its sandbox.

`provision_wrap` says how one-shot provisioning steps (clone, setup script) run;
`ready_probe` says what "ready" means once the start command runs: the first declared
port accepts connections — on the host, or inside the workspace's own network through
the sandbox's init — or, without a port, that the init answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agent.runtimes import process as proc_util
from agent.runtimes.local import provision, sandbox
from agent.runtimes.local.sandbox import Sandbox, SandboxError
from agent.runtimes.records import EnvRecord


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
    """What "ready" means: the first port accepts connections (else the init answers)."""
    if box is None:
        if not ports:
            return None
        return lambda: proc_util.port_accepts(ports[0]["host_port"])
    if not ports or not env.data["spec"]["start_command"]:
        return lambda: sandbox.ping(env.path)

    async def accepts() -> bool:
        try:
            sock = await sandbox.connect(env.path, ports[0]["port"], timeout=1.0)
        except SandboxError:
            return False
        sock.close()
        return True

    return accepts
