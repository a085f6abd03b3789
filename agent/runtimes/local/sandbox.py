"""The workspace sandbox of the local runtime: bubblewrap, a private network, one init.

Every process of a sandboxed workspace runs inside ``bwrap`` (Debian ``bubblewrap``):

* its own user namespace, where it is ``builder`` (uid/gid 1000, never root), mapped on
  the host to the agent's own unprivileged uid — or, when the agent runs as root, to a
  uid of its own per environment (``SANDBOX_UIDS``), so one workspace's files and
  processes are another user's to the kernel as well;
* its own PID, IPC and UTS namespaces (no other workspace's processes visible or
  killable) and a fresh ``/proc``, ``/dev``, ``/tmp``, ``/var/tmp`` and ``/run``;
* the host's system directories read-only (``/usr``, ``/bin``, ``/lib*``, ``/sbin``,
  ``/etc`` with ``passwd``/``group`` replaced and the shadow files masked), its own
  ``home`` at ``/home/builder``, the AI tools (the agent's ``--tools-dir``: OpenCode,
  Claude Code, the entrypoint) read-only at ``/opt/enclave/tools`` with their ``bin/``
  first on ``PATH``, and nothing else of the host: not the agent's data dir, not the
  agent's token, not the portal's ``var/``, not another workspace;
* its own network namespace: a loopback of its own (its app ports are reachable only
  from inside and, through the init's ``connect``, by the agent), and — with network
  ``outbound``, the default — a user-mode uplink by ``pasta`` (Debian ``passt``) that
  reaches the internet but not the host's loopback (``--no-map-gw``: not the portal,
  the agent or other workspaces' ports); with network ``none``, loopback only.

A running workspace is one sandbox whose first process is `sandbox_init` (mapped
read-only at ``/opt/enclave/init.py``): it runs the start command (under the tools'
entrypoint when there are tools: it writes the AI context and runs the assistant), opens
shells on PTYs and connects to app ports for the agent over ``/run/enclave/control.sock``
(the environment's ``run/`` directory on the host). One-shot steps (git, the setup
script) run in a sandbox of their own, with ``--die-with-parent``.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HOME = "/home/builder"
CONTROL = "/run/enclave/control.sock"
INIT = "/opt/enclave/init.py"
PROFILE = "/etc/profile"
TOOLS = "/opt/enclave/tools"
"""Where a workspace sees the AI tools directory, read-only."""
ENTRYPOINT = "bin/enclave-entrypoint"
"""The start command's wrapper, relative to a tools directory (``tools/bin/…``)."""
UID = GID = 1000
SANDBOX_UIDS = range(200_000, 200_000 + 65_536)
"""Host uids given to environments' sandboxes when the agent runs as root."""
NETWORKS = ("outbound", "none")
INIT_SCRIPT = Path(__file__).with_name("sandbox_init.py")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
MASKED = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers")
MASKED_DIRS = ("/etc/ssh", "/etc/sudoers.d", "/etc/ssl/private")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxUnavailable(Exception):
    """This host cannot sandbox workspaces; the message says why and what to install."""


class SandboxError(Exception):
    """A request to a workspace's init failed (it is gone, or refused)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


@dataclass(frozen=True)
class Sandbox:
    """How this host builds workspace sandboxes (found once by `detect`)."""

    bwrap: str
    pasta: str
    python: str
    as_root: bool
    tools: Path | None = None
    """The AI tools directory on the host (mapped at `TOOLS`); None: workspaces have none."""

    @property
    def networks(self) -> tuple[str, ...]:
        return NETWORKS

    def with_tools(self, tools: Path | None) -> Sandbox:
        """The same sandbox with ``tools`` (an absolute, resolved path) mapped in, or none."""
        return dataclasses.replace(self, tools=tools)

    # -- detection ----------------------------------------------------------------------------

    @classmethod
    def detect(cls) -> Sandbox:
        """The host's sandbox, after checking that bubblewrap really works here."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
            )
        pasta = shutil.which("pasta")
        if pasta is None:
            raise SandboxUnavailable(
                "pasta, which gives each workspace its own network, is not installed "
                "(Debian/Ubuntu: apt-get install passt)"
            )
        python = next(
            (p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)),
            None,
        )
        if python is None:
            raise SandboxUnavailable("no python3 under /usr/bin or /usr/local/bin for the init")
        sandbox = cls(bwrap=bwrap, pasta=pasta, python=python, as_root=os.geteuid() == 0)
        probe = sandbox._probe()
        if probe.returncode != 0:
            reason = (probe.stderr or b"").decode(errors="replace").strip().splitlines()
            raise SandboxUnavailable(
                "bubblewrap cannot create a sandbox here"
                + (f": {reason[-1]}" if reason else "")
                + " (user namespaces must be enabled: sysctl kernel.unprivileged_userns_clone=1)"
            )
        return sandbox

    def _probe(self) -> subprocess.CompletedProcess:
        argv = [*self._drop_privileges(SANDBOX_UIDS.start), self.bwrap]
        argv += ["--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(GID)]
        argv += [*self._system_binds(), "--proc", "/proc", "--dev", "/dev"]
        argv += ["--die-with-parent", "true"]
        return subprocess.run(argv, capture_output=True, timeout=20, check=False)

    # -- the host side of an environment ----------------------------------------------------

    def host_uid(self, taken: set[int]) -> int:
        """The host uid of a new environment's sandbox."""
        if not self.as_root:
            return os.getuid()
        for uid in SANDBOX_UIDS:
            if uid not in taken:
                return uid
        raise SandboxUnavailable("no free sandbox uid left")

    def prepare(self, env_path: Path, host_uid: int) -> None:
        """Create the environment's sandbox directories, owned by its host uid (blocking)."""
        for name in ("home", "run"):
            (env_path / name).mkdir(exist_ok=True, mode=0o700)
        etc = env_path / "sandbox"
        etc.mkdir(exist_ok=True, mode=0o755)
        (etc / "passwd").write_text(
            f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"builder:x:{UID}:{GID}:Builder:{HOME}:/bin/bash\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (etc / "group").write_text(f"root:x:0:\nbuilder:x:{GID}:\nnogroup:x:65534:\n")
        (etc / "profile").write_text(self._profile())
        for path in (etc / "passwd", etc / "group", etc / "profile"):
            path.chmod(0o644)
        if self.as_root:
            # The sandbox's uid reaches its own directories through the root-owned ones.
            for path in (env_path.parent.parent, env_path.parent, env_path):
                path.chmod(0o711)
            blocked = [
                str(path)
                for path in env_path.parent.parent.parents
                if path.stat().st_mode & 0o001 == 0
            ]
            if blocked:
                raise SandboxUnavailable(
                    f"sandboxes cannot reach the agent's data dir through {blocked[0]} "
                    f"(run: chmod o+x {blocked[0]})"
                )
            for name in ("home", "run"):
                _chown_tree(env_path / name, host_uid)
        self._check_tools(host_uid)

    def _profile(self) -> str:
        """The sandbox's ``/etc/profile``: the host's, then the AI tools first on ``PATH``.

        Shells and the setup script are login shells, and Debian's ``/etc/profile`` sets
        ``PATH`` afresh: without this line ``claude`` would not be found in a terminal.
        """
        try:
            text = Path(PROFILE).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        if self.tools is not None:
            text += (
                f'\n# Enclave: the AI tools come first.\nPATH="{TOOLS}/bin:$PATH"\nexport PATH\n'
            )
        return text

    def _check_tools(self, host_uid: int) -> None:
        """Fail, naming the ``chmod`` to run, unless ``host_uid`` can reach and read the
        tools: bubblewrap maps them as that uid, and a workspace runs them as it."""
        if self.tools is None:
            return
        for path in reversed(self.tools.parents):
            if not self._may(path, host_uid, os.X_OK):
                raise SandboxUnavailable(
                    f"sandboxes cannot reach the AI tools through {path} (run: chmod o+x {path})"
                )
        for path in _tool_paths(self.tools):
            if not self._may(path, host_uid, os.R_OK | os.X_OK):
                raise SandboxUnavailable(
                    f"sandboxes cannot read the AI tools at {path} "
                    f"(run: chmod -R o+rX {self.tools})"
                )

    def _may(self, path: Path, host_uid: int, access: int) -> bool:
        """Whether the sandbox's uid has ``access`` (``os.R_OK``/``os.X_OK`` bits) to path."""
        if not self.as_root:  # the sandbox runs as the agent's own user
            return os.access(path, access)
        st = path.stat()
        if st.st_uid == host_uid:
            bits = st.st_mode >> 6
        elif st.st_gid == host_uid:  # setpriv --regid=<uid> --clear-groups
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        return bits & access == access

    # -- command lines --------------------------------------------------------------------------

    def command(
        self,
        env_path: Path,
        argv: list[str],
        *,
        host_uid: int,
        network: str,
        one_shot: bool,
        hostname: str,
    ) -> list[str]:
        """The host command line that runs ``argv`` in the environment's sandbox."""
        bwrap = [self.bwrap, "--unshare-user", "--uid", str(UID), "--gid", str(GID)]
        bwrap += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        bwrap += ["--hostname", hostname, "--disable-userns"]
        if not one_shot:
            bwrap.append("--as-pid-1")  # the init reaps; the host's paths stay out of /proc/1
        if network == "none":
            bwrap.append("--unshare-net")
        bwrap += self._system_binds()
        bwrap += ["--ro-bind", "/etc", "/etc"]
        for masked in MASKED:
            if os.path.lexists(masked):
                bwrap += ["--ro-bind", "/dev/null", masked]
        for masked in MASKED_DIRS:
            if os.path.isdir(masked):
                bwrap += ["--tmpfs", masked]
        bwrap += ["--ro-bind", str(env_path / "sandbox" / "passwd"), "/etc/passwd"]
        bwrap += ["--ro-bind", str(env_path / "sandbox" / "group"), "/etc/group"]
        if os.path.isfile(PROFILE):  # a mount point must exist in the read-only /etc
            bwrap += ["--ro-bind", str(env_path / "sandbox" / "profile"), PROFILE]
        bwrap += ["--proc", "/proc", "--dev", "/dev"]
        # The sandbox's own fresh, empty /tmp and /var/tmp: mount points, not host files.
        bwrap += ["--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]  # noqa: S108 # nosec B108
        bwrap += ["--tmpfs", "/run", "--bind", str(env_path / "run"), "/run/enclave"]
        bwrap += ["--dir", "/home", "--bind", str(env_path / "home"), HOME]
        bwrap += ["--ro-bind", str(INIT_SCRIPT), INIT]
        if self.tools is not None:
            bwrap += ["--ro-bind", str(self.tools), TOOLS]
        bwrap += ["--chdir", HOME]
        if one_shot:
            bwrap.append("--die-with-parent")
        bwrap += ["--", *argv]
        if network != "none":
            pasta = [self.pasta, "--config-net", "--no-map-gw", "--quiet", "--foreground"]
            pasta += ["-t", "none", "-u", "none", "-T", "none", "-U", "none", "--"]
            bwrap = pasta + bwrap
        return [*self._drop_privileges(host_uid), *bwrap]

    def init_command(self, start_command: str | None) -> list[str]:
        """``argv`` of a workspace's first process: the init, then the start command —
        under the tools' entrypoint when there are tools (alone without a start command:
        it still writes the AI context and runs the assistant)."""
        argv = [self.python, "-I", "-S", INIT, CONTROL]
        command = ["bash", "-c", start_command] if start_command else []
        if self.tools is not None:
            command = [f"{TOOLS}/{ENTRYPOINT}", *command]
        if command:
            argv += ["--", *command]
        return argv

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """The environment of a sandboxed process: paths as the sandbox sees them."""
        result = {k: v for k, v in env.items() if k not in ("PWD", "OLDPWD", "TMPDIR")}
        path = PATH if self.tools is None else f"{TOOLS}/bin:{PATH}"
        result.update(HOME=HOME, USER="builder", LOGNAME="builder", PATH=path, SHELL="/bin/bash")
        if "ENCLAVE_TOOLS" in result:
            result["ENCLAVE_TOOLS"] = TOOLS
        return result

    def _drop_privileges(self, host_uid: int) -> list[str]:
        if not self.as_root:
            return []
        return [
            "setpriv",
            f"--reuid={host_uid}",
            f"--regid={host_uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]

    @staticmethod
    def _system_binds() -> list[str]:
        binds: list[str] = []
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                binds += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                binds += ["--ro-bind", path, path]
        return binds


def _tool_paths(tools: Path) -> list[Path]:
    """What a workspace needs to read in the tools: the directory, ``bin/`` and each
    command there with the directories down to the file it links to."""
    paths = [tools, tools / "bin"]
    for entry in sorted((tools / "bin").iterdir()):
        target = entry.resolve()
        if not target.is_relative_to(tools) or not target.exists():
            continue  # outside the mapped directory, or not installed: nothing to read
        below = [p for p in target.parents if p.is_relative_to(tools) and p != tools]
        paths += [*reversed(below), target]
    return list(dict.fromkeys(paths))


def _chown_tree(root: Path, uid: int) -> None:
    if root.stat().st_uid == uid:
        return
    os.chown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)


# -- talking to a workspace's init ------------------------------------------------------------


async def _request(env_path: Path, message: dict[str, Any], timeout: float = 5.0):
    """Open the control socket, send ``message``; the reply, a passed fd, the connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        # Through a directory fd: a data dir's path can pass the 108 bytes of sun_path.
        directory = os.open(env_path / "run", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            path = f"/proc/self/fd/{directory}/control.sock"
            await asyncio.wait_for(loop.sock_connect(sock, path), timeout)
        finally:
            os.close(directory)
        await loop.sock_sendall(sock, (json.dumps(message) + "\n").encode())
        reply, fd = await asyncio.wait_for(_receive_line(loop, sock), timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        sock.close()
        raise SandboxError("unavailable", f"the workspace's init did not answer: {exc}") from None
    return reply, fd, sock


async def _receive_line(loop: asyncio.AbstractEventLoop, sock: socket.socket):
    fds = array.array("i")
    data = b""
    while b"\n" not in data:
        await _readable(loop, sock)
        try:
            chunk, ancdata, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(fds.itemsize))
        except BlockingIOError:
            continue
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not chunk:
            raise ValueError("closed before replying")
        data += chunk
    for extra in fds[1:]:
        os.close(extra)
    return json.loads(data.split(b"\n", 1)[0]), (fds[0] if fds else None)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def ping(env_path: Path, timeout: float = 1.0) -> bool:
    """True once the workspace's init answers."""
    try:
        reply, _, sock = await _request(env_path, {"op": "ping"}, timeout)
    except SandboxError:
        return False
    sock.close()
    return bool(reply.get("ok"))


async def connect(env_path: Path, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP socket connected to ``port`` on the workspace's own loopback.

    Raises `SandboxError` with code ``refused`` (nothing listens), ``timeout`` or
    ``unavailable`` (the init is gone).
    """
    reply, fd, sock = await _request(env_path, {"op": "connect", "port": port}, timeout)
    sock.close()
    if not reply.get("ok") or fd is None:
        if fd is not None:
            os.close(fd)
        raise SandboxError(str(reply.get("error") or "unavailable"))
    upstream = socket.socket(fileno=fd)
    tcp = upstream.family in (socket.AF_INET, socket.AF_INET6)
    if not tcp or upstream.type != socket.SOCK_STREAM:
        upstream.close()
        raise SandboxError("unavailable", "the init passed something that is not a TCP socket")
    upstream.setblocking(False)
    return upstream


async def spawn(
    env_path: Path, argv: list[str], env: dict[str, str], *, cwd: str, rows: int, cols: int
) -> tuple[int, int, socket.socket]:
    """Start ``argv`` on a new PTY in the workspace: (pid inside, PTY master fd, link).

    The link stays open for the process's life: `ShellLink` reads its exit from it.
    """
    message = {"op": "spawn", "argv": argv, "env": env, "cwd": cwd, "rows": rows, "cols": cols}
    reply, fd, sock = await _request(env_path, message)
    if not reply.get("ok") or fd is None:
        sock.close()
        if fd is not None:
            os.close(fd)
        raise SandboxError(str(reply.get("error") or "unavailable"), str(reply.get("detail", "")))
    return int(reply["pid"]), fd, sock
