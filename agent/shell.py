"""Interactive shells over ``shell`` streams: PTYs that outlive a dropped browser.

The sub-protocol (OPEN payload, records both ways) is documented in
:mod:`agent.protocol` ("shell streams"). Guarantees:

* A shell starts only for an environment the runtime reports ``running``
  (``runtime.shell_context``): a login shell (``bash -l``) or ``bash -lc <command>``,
  in the workspace ``home/`` with the workspace environment, as the leader of a new
  session whose controlling terminal is the PTY.
* Flow control reaches the process: PTY output is read only while the attached
  stream has credit, so a stalled reader blocks the writer in the kernel instead of
  growing memory. A detached session keeps reading into its replay buffer only.
* Every session keeps the last ``replay_limit`` bytes (64 KiB) of output. A stream
  that OPENs with the session's id (for the same environment) within the grace period
  (default 5 min) resumes the same shell and first receives that replay; a second
  stream attaching to a session takes it over (the first is told ``taken_over``).
* A session ends — its whole process session is sent SIGHUP, then SIGKILL — when the
  grace period after a detach runs out, when its environment stops or disappears,
  when the portal asks (``terminate``) or when the service closes; the attached
  stream then receives an ``exit`` record with the reason, then CLOSE.
* Sessions are bounded: ``max_per_environment`` per environment and ``max_sessions``
  in all; beyond, OPEN is refused with an ``error`` record.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import struct
import termios
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from agent import protocol as p
from agent.multiplex import Stream
from agent.runtimes.base import CONFLICT, NOT_FOUND, Runtime, RuntimeFailure, ShellTarget
from agent.runtimes.local import sandbox
from agent.runtimes.local.sandbox import SandboxError

logger = logging.getLogger(__name__)

GRACE: Final = 300.0
REPLAY_LIMIT: Final = 64 * 1024
CHECK_INTERVAL: Final = 1.0
KILL_AFTER: Final = 2.0
"""Seconds between SIGHUP and SIGKILL when a session is ended."""

EXITED: Final = "exited"
EXPIRED: Final = "expired"
WORKSPACE_STOPPED: Final = "workspace_stopped"
TERMINATED: Final = "terminated"
TAKEN_OVER: Final = "taken_over"
SHUTDOWN: Final = "agent_shutdown"


def _set_controlling_terminal() -> None:  # pragma: no cover - runs in the child
    """Runs in the child after ``setsid()``: make the PTY (stdin) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


async def _fd_ready(fd: int, *, write: bool) -> None:
    """Wait until ``fd`` is readable (or writable)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


def _session_members(sid: int) -> list[int]:
    """Pids whose session id is ``sid`` (background jobs have groups of their own)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 4 and fields[3] == str(sid):
            members.append(int(entry.name))
    return members


def _signal_session(sid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, sig)
    if sig == signal.SIGKILL and os.path.isdir("/proc"):
        for pid in _session_members(sid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


class LocalProcess:
    """A shell the agent started itself: signals go to its whole process session."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        return await self._process.wait()

    def signal(self, sig: signal.Signals) -> None:
        _signal_session(self.pid, sig)

    def close(self) -> None:
        pass


class SandboxedProcess:
    """A shell started by a workspace's init, known through the link it keeps open.

    Signals are sent over the link (the pid is the sandbox's, not the host's); the init
    reports the exit on it; closing the link makes the init end the shell.
    """

    def __init__(self, pid: int, link: socket.socket) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._link = link
        self._link.setblocking(False)
        self._exited = asyncio.Event()
        self._watcher = asyncio.create_task(self._watch(), name=f"shell-link-{pid}")

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        data = b""
        try:
            while True:
                chunk = await loop.sock_recv(self._link, 4096)
                if not chunk:
                    break
                data += chunk
                for line in data.split(b"\n")[:-1]:
                    with contextlib.suppress(ValueError, AttributeError):
                        code = json.loads(line).get("exit")
                        if isinstance(code, int):
                            self.returncode = code
                data = data.rsplit(b"\n", 1)[-1]
        except OSError:
            pass
        finally:
            if self.returncode is None:
                self.returncode = -signal.SIGKILL  # the sandbox itself ended
            self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(OSError):
            self._link.send(json.dumps({"signal": int(sig)}).encode() + b"\n")

    def close(self) -> None:
        self._watcher.cancel()
        self._link.close()


class ShellSession:
    """One PTY and the process session running in it."""

    def __init__(
        self,
        *,
        env_id: str,
        command: str | None,
        replay_limit: int,
        env_status: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.id = secrets.token_urlsafe(18)
        self.env_id = env_id
        self.env_status = env_status
        """Reads the environment's status: a shell that ends while its environment is
        not running was ended by the stop (``workspace_stopped``), not by its user."""
        self.command = command
        self.replay_limit = replay_limit
        self.produced = 0
        """Bytes read from the PTY so far."""
        self.detached_at: float | None = time.monotonic()
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.returncode: int | None = None
        self.stream: Stream | None = None
        self.process: LocalProcess | SandboxedProcess | None = None
        self.master = -1
        self._replay = bytearray()
        self._trimmed = False
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._armed = False
        self._killer: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def spawn(self, target: ShellTarget, *, cols: int, rows: int) -> None:
        """Start the shell on a new PTY; the output reader runs from here on.

        In a sandboxed workspace its init starts the shell inside the sandbox and hands
        over the PTY's master side; the agent then reads and writes it exactly as a
        PTY of its own.
        """
        env = target.env
        if target.sandbox is not None:
            shell = "/bin/bash"
        else:
            shell = shutil.which("bash", path=env.get("PATH")) or "/bin/sh"
        argv = [shell, "-l"] if self.command is None else [shell, "-lc", self.command]
        full_env = {**env, "TERM": "xterm-256color", "COLORTERM": "truecolor", "SHELL": shell}
        if target.sandbox is not None:
            pid, master, link = await sandbox.spawn(
                target.sandbox, argv, full_env, cwd=target.cwd, rows=rows, cols=cols
            )
            self.process = SandboxedProcess(pid, link)
            os.set_blocking(master, False)
        else:
            master, slave = os.openpty()
            try:
                _set_size(master, cols, rows)
                os.set_blocking(master, False)
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=target.cwd,
                    env=full_env,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    start_new_session=True,
                    preexec_fn=_set_controlling_terminal,
                )
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            self.process = LocalProcess(process)
        self.master = master
        self._reader = asyncio.create_task(self._pump(), name=f"shell-{self.id[:8]}")

    # -- output ---------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Read PTY output into the replay buffer and the attached stream, until EOF."""
        try:
            while True:
                data = self._read_available()
                if data is None:
                    break
                if not data:
                    await self._readable()
                    continue
                self.produced += len(data)
                async with self._lock:
                    self._remember(data)
                    stream = self.stream
                    if stream is not None:
                        try:
                            # Waits for credit: while it does, the PTY is not read and
                            # the shell's writes block in the kernel.
                            await stream.write(p.shell_data_record(data))
                        except p.StreamClosed:
                            self._detach_locked(stream)
        finally:
            self._disarm()
            await self._finish(EXITED)

    async def _readable(self) -> None:
        """Wait until the PTY has output.

        The reader registration stays armed between waits (two `epoll_ctl` calls fewer
        per keystroke echo); it is disarmed when it fires while nobody waits — the pump
        is blocked on credit — so a stalled reader never spins the loop.
        """
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        if not self._armed:
            loop.add_reader(self.master, self._on_readable)
            self._armed = True
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _on_readable(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif waiter is None:
            self._disarm()

    def _disarm(self) -> None:
        if self._armed:
            self._armed = False
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.master)

    def _read_available(self) -> bytes | None:
        """What the PTY has now (up to one record); ``b""`` if nothing, None at EOF."""
        parts: list[bytes] = []
        size = 0
        while size < p.SHELL_CHUNK:
            try:
                chunk = os.read(self.master, p.SHELL_CHUNK - size)
            except BlockingIOError:
                break
            except OSError as exc:  # EIO: every process closed the terminal
                if exc.errno != errno.EIO:
                    logger.warning("shell %s: PTY read failed: %s", self.id[:8], exc)
                return b"".join(parts) or None
            if not chunk:
                return b"".join(parts) or None
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    def _remember(self, data: bytes) -> None:
        self._replay += data
        excess = len(self._replay) - self.replay_limit
        if excess > 0:
            del self._replay[:excess]
            self._trimmed = True

    def replay(self) -> bytes:
        """The buffered recent output, starting at a line boundary once it was trimmed."""
        data = bytes(self._replay)
        if self._trimmed:
            newline = data.find(b"\n", 0, 4096)
            if newline >= 0:
                data = data[newline + 1 :]
        return data

    # -- attach / detach ------------------------------------------------------------------

    async def attach(self, stream: Stream, *, resumed: bool) -> None:
        """Make ``stream`` the session's output: session record, replay, then live output."""
        previous = self.stream
        if previous is not None and previous is not stream:
            self.stream = None
            await previous.close(p.CLOSE_SHELL_TAKEN_OVER, TAKEN_OVER)
        async with self._lock:
            hello = {"type": "session", "session": self.id, "resumed": resumed}
            await stream.write(p.shell_control_record(hello))
            replay = self.replay() if resumed else b""
            for piece in p.chunks(replay, p.SHELL_CHUNK):
                await stream.write(p.shell_data_record(piece))
            self.stream = stream
            self.detached_at = None

    def detach(self, stream: Stream) -> None:
        """``stream`` ended: the session waits for a resume during the grace period."""
        self._detach_locked(stream)

    def _detach_locked(self, stream: Stream) -> None:
        if self.stream is stream:
            self.stream = None
            self.detached_at = time.monotonic()

    # -- input ----------------------------------------------------------------------------

    async def write_input(self, data: bytes) -> None:
        """Write keyboard input to the PTY, waiting while its input buffer is full."""
        view = memoryview(data)
        while view and not self.ended.is_set():
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_fd_ready(self.master, write=True), 1.0)
                continue
            except OSError:
                return  # the shell is gone; the reader reports the end
            view = view[written:]

    def resize(self, cols: int, rows: int) -> None:
        if self.master >= 0 and not self.ended.is_set():
            with contextlib.suppress(OSError):
                _set_size(self.master, cols, rows)

    # -- end ------------------------------------------------------------------------------

    def kill(self, reason: str) -> None:
        """End the session: SIGHUP its process session now, SIGKILL it shortly after."""
        if self.ended.is_set() or self._killer is not None or self.process is None:
            return
        self.end_reason = reason
        self.process.signal(signal.SIGHUP)
        self._killer = asyncio.create_task(self._kill_later())

    async def _kill_later(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), KILL_AFTER)
        assert self.process is not None
        self.process.signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), 0.5)
        if not self.ended.is_set() and self._reader is not None:
            # The reader waits for credit that does not come, or something outside the
            # session still holds the terminal open: end it anyway.
            self._reader.cancel()

    async def _finish(self, reason: str) -> None:
        if self.ended.is_set():
            return
        process = self.process
        if process is not None:
            if process.returncode is None:  # not reaped yet, so the pid is still ours
                process.signal(signal.SIGKILL if self.end_reason else signal.SIGHUP)
            with contextlib.suppress(TimeoutError):
                self.returncode = await asyncio.wait_for(process.wait(), KILL_AFTER)
            process.close()
        master, self.master = self.master, -1
        with contextlib.suppress(OSError):
            os.close(master)
        if self.end_reason is None and reason == EXITED and self.env_status is not None:
            with contextlib.suppress(Exception):
                if await self.env_status() != p.RUNNING:
                    reason = WORKSPACE_STOPPED
        reason = self.end_reason or reason
        self.end_reason = reason
        self.ended.set()
        async with self._lock:
            stream, self.stream = self.stream, None
            if stream is not None:
                exit_record = {"type": "exit", "reason": reason, "code": self.returncode}
                # A reader that grants no credit gets the CLOSE without the record.
                with contextlib.suppress(p.StreamClosed, TimeoutError):
                    record = p.shell_control_record(exit_record)
                    await asyncio.wait_for(stream.write(record), KILL_AFTER)
                await stream.close(p.CLOSE_NORMAL, reason)
        logger.info("shell %s of %s ended: %s", self.id[:8], self.env_id, reason)

    async def wait_closed(self) -> None:
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._killer is not None:
            self._killer.cancel()
            await asyncio.gather(self._killer, return_exceptions=True)


class ShellService:
    """The ``shell`` stream handler: starts, resumes and reaps shell sessions."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        grace: float = GRACE,
        replay_limit: int = REPLAY_LIMIT,
        check_interval: float = CHECK_INTERVAL,
        max_per_environment: int = 128,
        max_sessions: int = 1024,
    ) -> None:
        self.runtime = runtime
        self.grace = grace
        self.replay_limit = replay_limit
        self.check_interval = check_interval
        self.max_per_environment = max_per_environment
        self.max_sessions = max_sessions
        self.sessions: dict[str, ShellSession] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle_stream(self, stream: Stream, request: dict[str, Any]) -> None:
        """Serve one ``shell`` stream until it or its shell ends."""
        try:
            params = p.parse_shell_open(request)
        except p.ProtocolError as exc:
            await stream.close(exc.code, exc.reason)
            return
        self._ensure_reaper()
        session = self._resumable(params["session"], params["environment"])
        resumed = session is not None
        if session is None:
            try:
                session = await self._start(params)
            except RuntimeFailure as exc:
                code = "workspace_not_running" if exc.code == CONFLICT else exc.code
                await self._refuse(stream, code, exc.message)
                return
            except (OSError, SandboxError) as exc:
                logger.error("shell for %s could not start: %s", params["environment"], exc)
                await self._refuse(stream, "spawn_failed", "the shell could not be started")
                return
        else:
            session.resize(params["cols"], params["rows"])
        try:
            await session.attach(stream, resumed=resumed)
            await self._serve_input(stream, session)
        except p.StreamClosed:
            pass
        finally:
            session.detach(stream)

    async def _serve_input(self, stream: Stream, session: ShellSession) -> None:
        parser = p.ShellRecordParser()
        while chunk := await stream.read():
            try:
                records = parser.feed(chunk)
            except p.ProtocolError as exc:
                await stream.close(exc.code, exc.reason)
                return
            for record_type, payload in records:
                if record_type == p.SHELL_DATA:
                    await session.write_input(payload)
                    continue
                try:
                    control = p.decode_shell_control(payload)
                    if control["type"] == "resize":
                        cols = p.terminal_dimension(control.get("cols"), "cols")
                        rows = p.terminal_dimension(control.get("rows"), "rows")
                        session.resize(cols, rows)
                    elif control["type"] == "terminate":
                        session.kill(TERMINATED)
                except p.ProtocolError as exc:
                    logger.info("shell %s: ignoring bad control: %s", session.id[:8], exc.reason)

    def _resumable(self, session_id: str | None, env_id: str) -> ShellSession | None:
        session = self.sessions.get(session_id) if session_id else None
        if session is None or session.env_id != env_id or session.ended.is_set():
            return None
        if session.end_reason is not None:  # being killed
            return None
        return session

    async def _start(self, params: dict[str, Any]) -> ShellSession:
        env_id = params["environment"]
        context = getattr(self.runtime, "shell_context", None)
        if context is None:
            raise RuntimeFailure("unsupported", "this runtime has no interactive shells")
        target = context(env_id)
        same_env = sum(1 for s in self.sessions.values() if s.env_id == env_id)
        if same_env >= self.max_per_environment or len(self.sessions) >= self.max_sessions:
            raise RuntimeFailure("too_many_sessions", "too many terminals are open already")
        session = ShellSession(
            env_id=env_id,
            command=params["command"],
            replay_limit=self.replay_limit,
            env_status=lambda: self._status_of(env_id),
        )
        await session.spawn(target, cols=params["cols"], rows=params["rows"])
        self.sessions[session.id] = session
        task = asyncio.create_task(self._forget(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        logger.info("shell %s started in %s (pid %d)", session.id[:8], env_id, session.pid)
        return session

    async def _status_of(self, env_id: str) -> str:
        try:
            return (await self.runtime.get(env_id))["status"]
        except RuntimeFailure:
            return "deleted"

    async def _forget(self, session: ShellSession) -> None:
        await session.ended.wait()
        await session.wait_closed()
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]

    @staticmethod
    async def _refuse(stream: Stream, code: str, detail: str) -> None:
        logger.info("refusing shell stream %d: %s", stream.id, code)
        error = {"type": "error", "code": code, "detail": detail}
        with contextlib.suppress(p.StreamClosed):
            await stream.write(p.shell_control_record(error))
        await stream.close(p.CLOSE_REFUSED, code)

    # -- reaping --------------------------------------------------------------------------

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_forever(), name="shell-reaper")

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.reap()
            except Exception:
                logger.exception("shell reaper failed")

    async def reap(self) -> None:
        """End sessions detached longer than the grace period or whose environment stopped."""
        now = time.monotonic()
        statuses: dict[str, str] = {}
        for session in list(self.sessions.values()):
            if session.ended.is_set():
                continue
            if session.env_id not in statuses:
                try:
                    statuses[session.env_id] = (await self.runtime.get(session.env_id))["status"]
                except RuntimeFailure as exc:
                    statuses[session.env_id] = "deleted" if exc.code == NOT_FOUND else p.ERROR
            if statuses[session.env_id] != p.RUNNING:
                session.kill(WORKSPACE_STOPPED)
            elif session.detached_at is not None and now - session.detached_at >= self.grace:
                session.kill(EXPIRED)

    async def aclose(self) -> None:
        """End every session (agent shutdown, tests)."""
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        sessions = list(self.sessions.values())
        for session in sessions:
            session.kill(SHUTDOWN)
        await asyncio.gather(*(s.ended.wait() for s in sessions))
        await asyncio.gather(*(s.wait_closed() for s in sessions))
