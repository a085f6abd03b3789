"""Process, port and log helpers of the local runtime (POSIX; /proc used when present).

Guarantees: process-group signals never raise for a group that is already gone;
``is_alive`` treats zombies and recycled pids as dead; logs stay bounded by
copy-truncate rotation, which works even for processes the agent adopted after
a restart (they write to the file directly, with O_APPEND).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

LOG_NAME = "service.log"
LOG_LIMIT = 1024 * 1024
MAX_TAIL = 10_000


def allocate_port(exclude: set[Any] | frozenset[int] = frozenset()) -> int:
    """A TCP port that is free on 127.0.0.1 right now and not in ``exclude``."""
    for _ in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            return port
    raise OSError("no free TCP port found")


def allocate_ports(declared: list[dict[str, Any]], taken: set[Any]) -> list[dict[str, Any]]:
    """Copies of the declared ports, each with a distinct free ``host_port``."""
    exclude = set(taken)
    result = []
    for port in declared:
        host_port = allocate_port(exclude)
        exclude.add(host_port)
        result.append(dict(port, host_port=host_port))
    return result


def process_start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (to tell a recycled pid apart), if knowable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def is_alive(pid: int, start_time: str | None = None) -> bool:
    """True if ``pid`` runs, is not a zombie, and started at ``start_time`` (if given)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    fields = stat.rpartition(")")[2].split()
    if fields[0] in ("Z", "X"):
        return False
    return start_time is None or fields[19] == start_time


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def exit_reason(returncode: int | None) -> str:
    """Human-readable reason for a process end: ``exit code N`` or ``signal NAME``."""
    if returncode is None:
        return "process exited"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def base_env(home: Path) -> dict[str, str]:
    """Minimal process environment: nothing of the agent's own secrets leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": str(home),
    }


def open_log(log_dir: Path) -> int:
    """File descriptor appending to the service log (caller closes it)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return os.open(log_dir / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def rotate_log(log_dir: Path, limit: int = LOG_LIMIT) -> bool:
    """Copy-truncate ``service.log`` into ``service.log.1`` once it passes ``limit``."""
    path = log_dir / LOG_NAME
    try:
        if path.stat().st_size <= limit:
            return False
        shutil.copyfile(path, log_dir / f"{LOG_NAME}.1")
        os.truncate(path, 0)
    except FileNotFoundError:
        return False
    return True


def tail_lines(log_dir: Path, tail: int) -> list[str]:
    """The last ``tail`` lines across ``service.log.1`` then ``service.log``."""
    lines: list[str] = []
    for name in (f"{LOG_NAME}.1", LOG_NAME):
        with contextlib.suppress(FileNotFoundError):
            lines.extend((log_dir / name).read_bytes().decode(errors="replace").splitlines())
    return lines[-tail:] if tail > 0 else []


async def spawn(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_dir: Path,
    preexec: Callable[[], None] | None = None,
) -> asyncio.subprocess.Process:
    """Start ``argv`` in a new session (its own process group), output to the log.

    ``preexec`` runs in the child before exec (resource limits; plain ``os`` and
    ``resource`` calls only).

    Cancellation never leaves an unsupervised process: if the caller is
    cancelled while the process is being created, its group is killed.
    """
    fd = open_log(log_dir)
    try:
        task = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                proc = await task
                signal_group(proc.pid, signal.SIGKILL)
            raise
    finally:
        os.close(fd)


async def run_logged(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_dir: Path,
    timeout: float,
    preexec: Callable[[], None] | None = None,
) -> int:
    """Run a command to completion with its output in the log; returns its exit code.

    On timeout or cancellation the whole process group is killed first.
    """
    proc = await spawn(argv, cwd=cwd, env=env, log_dir=log_dir, preexec=preexec)
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.shield(proc.wait())
        raise


def append_log(log_dir: Path, line: str) -> None:
    """Add one agent-written line (never secrets) to the service log."""
    fd = open_log(log_dir)
    try:
        os.write(fd, f"[enclave] {line}\n".encode())
    finally:
        os.close(fd)


async def port_accepts(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (blocking: reads ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found
