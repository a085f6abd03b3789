"""The first process of a workspace sandbox (pid 1): runs the start command, serves the agent.

Runs *inside* the sandbox with the host's ``python3`` and the standard library only
(the agent's own packages are not mapped in). Usage::

    python3 sandbox_init.py CONTROL_SOCKET [--] [COMMAND...]

* ``COMMAND`` (optional) is started as a child; when it exits, this process exits
  with its status (a signal ``n`` becomes ``128 + n``), which ends the sandbox and
  every process left in it. Without a command it serves until SIGTERM.
* SIGTERM is passed on to the command's process group and to every shell, then this
  process exits once the command has (the agent sends SIGKILL after its grace period).
* The agent talks to ``CONTROL_SOCKET`` (a Unix socket in a directory only it and this
  sandbox see), one JSON request per connection, newline-terminated:

  - ``{"op": "ping"}`` → ``{"ok": true}``.
  - ``{"op": "connect", "port": N}`` → ``{"ok": true}`` with a TCP socket connected to
    ``127.0.0.1:N`` *in the sandbox's network* passed as ``SCM_RIGHTS``, or
    ``{"ok": false, "error": "refused" | "timeout" | "unreachable"}``.
  - ``{"op": "spawn", "argv": [...], "env": {...}, "cwd": "...", "rows": R, "cols": C}``
    → ``{"ok": true, "pid": P}`` with the master side of a new PTY passed as
    ``SCM_RIGHTS``; the process leads a new session whose controlling terminal is that
    PTY. The connection stays open: ``{"signal": S}`` sent on it signals the process's
    session; ``{"exit": code}`` is sent when the process ends (``-S`` when killed by
    signal ``S``). When the agent closes the connection first, the session gets SIGHUP,
    then SIGKILL two seconds later.
* As pid 1 it reaps every orphan of the sandbox.
* When the workspace's home directory is removed on the host (the environment was
  deleted while nobody stopped it), this process exits: nothing outlives its files.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import json
import os
import pty
import selectors
import signal
import socket
import struct
import sys
import termios
import time

HOME = os.environ.get("HOME", "/home/builder")
MAX_REQUEST = 1 << 20
KILL_AFTER = 2.0
HOME_CHECK_EVERY = 5.0


def _send(conn: socket.socket, message: dict, fd: int | None = None) -> None:
    data = (json.dumps(message) + "\n").encode()
    if fd is None:
        conn.sendall(data)
    else:
        conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def _read_request(conn: socket.socket) -> dict:
    buffer = b""
    conn.settimeout(5.0)
    while b"\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("connection closed before a request")
        buffer += chunk
        if len(buffer) > MAX_REQUEST:
            raise ValueError("request too large")
    conn.settimeout(None)
    request = json.loads(buffer.split(b"\n", 1)[0])
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    return request


def _status(wait_status: int) -> int:
    """A waitpid status as a returncode: the exit code, or ``-signal``."""
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def _signal_session(sid: int, sig: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(sid, sig)
    if sig == signal.SIGKILL:  # background jobs may lead groups of their own
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.getsid(int(entry)) == sid:
                        os.kill(int(entry), sig)


class Shell:
    """A process on a PTY, spawned for one agent connection."""

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self.conn = conn
        self.pid = pid
        self.kill_at: float | None = None
        self.connected = True


class Init:
    def __init__(self, control: str, command: list[str]) -> None:
        self.selector = selectors.DefaultSelector()
        self.shells: dict[int, Shell] = {}  # by pid
        self.command_pid: int | None = None
        self.command_status: int | None = None
        self.terminating = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(control)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(control)
        os.chmod(control, 0o600)
        self.listener.listen(64)
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.home_inode = os.stat(HOME).st_ino if os.path.isdir(HOME) else None
        if command:
            self.command_pid = os.fork()
            if self.command_pid == 0:  # pragma: no cover - the child
                os.setpgid(0, 0)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                os.execvp(command[0], command)  # noqa: S606 - the blueprint's command
            self._watch(self.command_pid)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        next_home_check = time.monotonic() + HOME_CHECK_EVERY
        while True:
            if self.command_status is not None:
                return self._exit_code()
            if self.terminating and self.command_pid is None:
                return 143
            now = time.monotonic()
            timeout = max(0.0, next_home_check - now)
            for shell in self.shells.values():
                if shell.kill_at is not None:
                    timeout = min(timeout, max(0.0, shell.kill_at - now))
            for key, _ in self.selector.select(min(timeout, 1.0)):
                key.data(key.fileobj)
            self._reap_all()
            now = time.monotonic()
            for shell in list(self.shells.values()):
                if shell.kill_at is not None and now >= shell.kill_at:
                    _signal_session(shell.pid, signal.SIGKILL)
                    shell.kill_at = None
            if now >= next_home_check:
                next_home_check = now + HOME_CHECK_EVERY
                if self._home_removed():
                    self._on_sigterm(signal.SIGTERM, None)
                    for shell in self.shells.values():
                        _signal_session(shell.pid, signal.SIGKILL)
                    return 137

    def _exit_code(self) -> int:
        status = self.command_status or 0
        return 128 - status if status < 0 else status

    def _home_removed(self) -> bool:
        if self.home_inode is None:
            return False
        try:
            st = os.stat(HOME)
        except OSError:
            return True
        return st.st_nlink == 0 or st.st_ino != self.home_inode

    def _on_sigterm(self, signum, frame) -> None:
        self.terminating = True
        if self.command_pid is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.command_pid, signal.SIGTERM)
        for shell in self.shells.values():
            _signal_session(shell.pid, signal.SIGHUP)

    def _watch(self, pid: int) -> None:
        """Wake the loop when ``pid`` exits (it is reaped by `_reap_all`)."""
        pidfd = os.pidfd_open(pid)
        self.selector.register(pidfd, selectors.EVENT_READ, self._exited)

    def _exited(self, pidfd) -> None:
        self.selector.unregister(pidfd)
        os.close(pidfd)

    def _reap_all(self) -> None:
        """Collect every exited child: ours are reported, orphans just go."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.command_pid:
                self.command_status = _status(status)
                self.command_pid = None
            elif pid in self.shells:
                self._shell_ended(self.shells.pop(pid), _status(status))

    # -- requests ---------------------------------------------------------------------------

    def _accept(self, listener) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            request = _read_request(conn)
            op = request.get("op")
            if op == "ping":
                _send(conn, {"ok": True})
            elif op == "connect":
                self._connect(conn, request)
            elif op == "spawn":
                self._spawn(conn, request)
                return  # the connection stays open for the shell's lifetime
            else:
                _send(conn, {"ok": False, "error": "unknown_op"})
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                _send(conn, {"ok": False, "error": "bad_request", "detail": str(exc)[:200]})
        conn.close()

    def _connect(self, conn: socket.socket, request: dict) -> None:
        port = request.get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            _send(conn, {"ok": False, "error": "bad_request"})
            return
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.settimeout(float(request.get("timeout", 5.0)))
        try:
            upstream.connect(("127.0.0.1", port))
        except TimeoutError:
            _send(conn, {"ok": False, "error": "timeout"})
        except ConnectionRefusedError:
            _send(conn, {"ok": False, "error": "refused"})
        except OSError:
            _send(conn, {"ok": False, "error": "unreachable"})
        else:
            _send(conn, {"ok": True}, upstream.fileno())
        finally:
            upstream.close()

    def _spawn(self, conn: socket.socket, request: dict) -> None:
        argv, env = request.get("argv"), request.get("env")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise ValueError("argv must be a non-empty list of strings")
        if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise ValueError("env must map names to strings")
        cwd = request.get("cwd") or HOME
        rows, cols = int(request.get("rows", 24)), int(request.get("cols", 80))
        master, slave = pty.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(master)
                os.setsid()
                fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                for fd in (0, 1, 2):
                    os.dup2(slave, fd)
                if slave > 2:
                    os.close(slave)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                with contextlib.suppress(OSError):
                    os.chdir(cwd)
                os.execvpe(argv[0], argv, env)  # noqa: S606 - the agent's shell argv
            finally:
                os._exit(127)
        os.close(slave)
        try:
            _send(conn, {"ok": True, "pid": pid}, master)
        finally:
            os.close(master)
        shell = Shell(conn, pid)
        self.shells[pid] = shell
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ, lambda c: self._shell_message(shell))
        self._watch(pid)

    def _shell_message(self, shell: Shell) -> None:
        try:
            data = shell.conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the agent let go of the shell: end it
            self.selector.unregister(shell.conn)
            shell.connected = False
            if shell.kill_at is None:
                _signal_session(shell.pid, signal.SIGHUP)
                shell.kill_at = time.monotonic() + KILL_AFTER
            return
        for line in data.splitlines():
            with contextlib.suppress(ValueError):
                sig = json.loads(line).get("signal")
                if isinstance(sig, int) and 0 < sig < 65:
                    _signal_session(shell.pid, sig)

    def _shell_ended(self, shell: Shell, code: int) -> None:
        if shell.connected:
            with contextlib.suppress(OSError):
                shell.conn.setblocking(True)
                _send(shell.conn, {"exit": code})
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(shell.conn)
        shell.conn.close()
        # Whatever the shell left in its session goes with it.
        _signal_session(shell.pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: sandbox_init.py CONTROL_SOCKET [--] [COMMAND...]", file=sys.stderr)
        return 2
    control, command = argv[0], argv[1:]
    if command and command[0] == "--":
        command = command[1:]
    with contextlib.suppress(OSError):
        os.chdir(HOME)
    return Init(control, command).run()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except OSError as exc:
        if exc.errno != errno.EINTR:
            raise
