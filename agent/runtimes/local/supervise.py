"""Workspace process groups of the local runtime: start, readiness, stop, exit, recovery.

These functions act on one environment's process (`EnvRecord.proc`) and persist
nothing: the runtime holds the environment's lock around them and commits the state
they lead to. Guarantees:

* `spawn` runs the start command as the leader of a new process group, its output
  appended to the environment's log.
* `terminate` and `kill` end the whole group and clear ``env.proc``; the process is
  marked ``stop_requested`` first, so its exit is not reported as a failure.
* `reconcile` (after an agent restart) adopts the live process of a ``running``
  environment, kills whatever is left of any other, and says what to record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from agent.protocol import DELETING, DEPLOYING, ERROR, RUNNING, STOPPED, STOPPING
from agent.runtimes import process as proc_util
from agent.runtimes.records import EnvRecord, ProcRecord
from agent.runtimes.spec import ASSISTANT_PORT_NAME

logger = logging.getLogger(__name__)


def app_ports(ports: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The ports of the app itself: every port but the internal assistant's."""
    return [port for port in ports if port.get("name") != ASSISTANT_PORT_NAME]


def port_env(ports: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``PORT_<declared>`` for every port; ``PORT`` and ``DEV_PORT`` for the first app port;
    ``ENCLAVE_ASSISTANT_PORT`` for the assistant's (where the entrypoint runs OpenCode).

    Each value is the port the process listens on: the host port unsandboxed, the declared
    port in a sandbox (whose network is its own).
    """
    result = {}
    app = app_ports(ports)
    if app:
        result["PORT"] = result["DEV_PORT"] = str(app[0]["host_port"])
    for port in ports:
        result[f"PORT_{port['port']}"] = str(port["host_port"])
        if port.get("name") == ASSISTANT_PORT_NAME:
            result["ENCLAVE_ASSISTANT_PORT"] = str(port["host_port"])
    return result


def released_ports(env: EnvRecord) -> list[dict[str, Any]]:
    """The environment's ports once its process is gone: no ``host_port`` any more."""
    return [dict(p, host_port=None) for p in env.data["ports"] or ()]


async def spawn(
    env: EnvRecord,
    argv: list[str],
    run_env: dict[str, str],
    *,
    preexec: Callable[[], None] | None = None,
) -> ProcRecord:
    """Start ``argv`` (the start command, or the sandbox around it), leading its own
    process group; ``preexec`` (resource limits) runs in the child before exec."""
    env.log_dir.mkdir(exist_ok=True, mode=0o700)
    child = await proc_util.spawn(
        argv, cwd=env.home, env=run_env, log_dir=env.log_dir, preexec=preexec
    )
    return ProcRecord(
        pid=child.pid, start_time=proc_util.process_start_time(child.pid), child=child
    )


async def wait_ready(
    env: EnvRecord,
    proc: ProcRecord,
    ready: Callable[[], Awaitable[bool]] | None,
    timeout: float,
) -> None:
    """Return once ``ready()`` is true (e.g. the first port accepts connections), the
    process exited, or ``timeout`` passed. ``None``: ready at once."""
    if ready is None:
        return
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not proc.exited.is_set() and time.monotonic() < deadline:
        if await ready():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.exited.wait(), delay)
        delay = min(delay * 2, 0.5)
    if not proc.exited.is_set():
        logger.warning("environment %s: not ready after %.0fs", env.id, timeout)


async def wait_exit(proc: ProcRecord, timeout: float) -> bool:
    """True once the process has exited, False if it still runs after ``timeout``."""
    if proc.child is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.exited.wait()), timeout)
        return proc.exited.is_set()
    deadline = time.monotonic() + timeout
    while proc.alive():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    proc.exited.set()
    return True


async def terminate(env: EnvRecord, grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
    proc = env.proc
    if proc is None:
        return
    proc.stop_requested = True
    proc_util.signal_group(proc.pid, signal.SIGTERM)
    if not await wait_exit(proc, grace):
        logger.warning("environment %s: killing after %.0fs", env.id, grace)
        proc_util.signal_group(proc.pid, signal.SIGKILL)
        await wait_exit(proc, 5.0)
    proc_util.signal_group(proc.pid, signal.SIGKILL)
    env.proc = None


def kill(env: EnvRecord) -> None:
    """SIGKILL the process group at once (a failed start)."""
    if env.proc is not None:
        env.proc.stop_requested = True
        proc_util.signal_group(env.proc.pid, signal.SIGKILL)
        env.proc = None


def newly_ended(envs: Iterable[EnvRecord]) -> list[tuple[EnvRecord, ProcRecord]]:
    """Adopted processes found gone since the last look; they are marked ``exited``.

    Processes the agent started itself are not polled: their exit is awaited.
    """
    ended = []
    for env in list(envs):
        proc = env.proc
        adopted = proc is not None and proc.child is None
        if adopted and not proc.exited.is_set() and not proc.alive():
            proc.exited.set()
            ended.append((env, proc))
    return ended


def reconcile(env: EnvRecord) -> dict[str, Any] | None:
    """Square a just-loaded environment with the processes actually running.

    The live process of a ``running`` environment is adopted into ``env.proc``.
    Otherwise what is left of the group is killed, and the changes to commit are
    returned; ``None`` when the record is right as it is.
    """
    data, status = env.data, env.data["status"]
    pid = data.get("pid")
    alive = bool(pid) and proc_util.is_alive(pid, data.get("process_started"))
    if status == RUNNING and alive:
        env.proc = ProcRecord(pid=pid, start_time=data.get("process_started"))
        logger.info("adopted running environment %s (pid %d)", env.id, pid)
        return None
    if status == RUNNING and not pid and not data["spec"]["start_command"]:
        return None
    if alive:
        proc_util.signal_group(data.get("pgid") or pid, signal.SIGKILL)
    changes: dict[str, Any] = {"pid": None, "phase": None}
    if status == RUNNING:
        changes |= {"status": ERROR, "error": "process exited while the agent was down"}
    elif status == DEPLOYING:
        changes |= {"status": ERROR, "error": "provisioning interrupted"}
    elif status == STOPPING:
        changes |= {"status": STOPPED, "error": None}
    elif status == DELETING:
        changes |= {"status": ERROR, "error": "deletion interrupted"}
    elif not pid:
        return None
    return changes | {"ports": released_ports(env)}
