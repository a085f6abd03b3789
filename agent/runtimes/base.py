"""The interface every runtime implements, and its one domain error.

A runtime owns the environments of one cluster or host. Every method that
takes an environment id raises ``RuntimeFailure("not_found")`` when it does not
exist; lifecycle methods raise ``RuntimeFailure("conflict")`` when the current
status forbids the operation. Environments report the statuses and phases of
`agent.protocol.environments`. Environment dicts returned by a runtime are
read-only snapshots that are safe to JSON-serialise; callers must not mutate
them. The codes of the Files capability (``path_invalid``, ``file_too_large``…) are
the protocol's, in `agent.protocol.files`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from agent.protocol import RpcError

NOT_FOUND: Final = "not_found"
INVALID_SPEC: Final = "invalid_spec"
INVALID_PARAMS: Final = "invalid_params"
CONFLICT: Final = "conflict"
INTERNAL: Final = "internal"
UNSUPPORTED: Final = "unsupported"

EventCallback = Callable[[str, dict[str, Any]], None]
"""``on_event(kind, environment)`` with kind ``environment.updated|deleted``."""

RuntimeFailure = RpcError
"""An operation failed for a reason the caller may show: ``code`` + ``message``.

The very class of `agent.protocol.RpcError` (the runtime's name for it): what a
runtime raises is what the RPC dispatcher answers, code and message unchanged.
"""


async def connect_loopback(port: int, timeout: float) -> socket.socket:
    """A non-blocking TCP socket connected to ``127.0.0.1:port``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), timeout
        )
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class ShellTarget:
    """Where an interactive shell of a workspace starts (`Runtime.shell_context`).

    ``sandbox`` is the environment's directory when its init must start the shell
    inside the workspace's sandbox; ``None`` when the agent starts it itself.
    """

    cwd: str
    env: dict[str, str]
    sandbox: Path | None = None


@dataclass(frozen=True)
class WorkspaceHome:
    """A workspace's home directory on this host, as `Runtime.workspace_home` lends it.

    ``mount`` is where the workspace itself sees it (``/home/builder`` in a sandbox):
    absolute symbolic links under it point into the home. New files and directories get
    ``uid``/``gid`` (the sandbox's host uid when the agent runs as root), or stay the
    agent's when they are ``None``. ``lock`` serialises the agent's own changes to it.
    """

    root: Path
    mount: str
    uid: int | None = None
    gid: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)


FOLLOWER_CLOSED: Final = "closed"
"""`LogsEnded` code of a follower its reader closed (never sent: the reader is gone)."""


class LogsEnded(Exception):
    """The output an environment's `LogFollower` follows ended for good.

    ``code`` is one of `agent.protocol.LOG_END_CODES`, or `FOLLOWER_CLOSED`; ``detail``
    says it in words.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class LogFollower(abc.ABC):
    """One reader of an environment's output: its last lines, then new ones as written.

    `tail` is awaited once, first; then `next` again and again. Lines come without their
    line ends, each clipped by `agent.protocol.clip_log_line`. `close` may be called at
    any time, from any callback; `next` then raises `LogsEnded`.
    """

    @abc.abstractmethod
    async def tail(self, count: int) -> list[str]:
        """The last ``count`` complete lines (at most MAX_LOG_TAIL_BYTES of them)."""

    @abc.abstractmethod
    async def next(self) -> list[str]:
        """The lines written since the last call (at least one), waiting for them.

        Raises `LogsEnded` once there can be no more (the environment was deleted, the
        runtime shuts down, or the follower was closed).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop following; idempotent."""


class Runtime(abc.ABC):
    """Lifecycle of environments in one data plane.

    ``load`` must be awaited once before any other call; ``shutdown`` stops the
    runtime's own background work but leaves workspaces running.
    """

    name: str = ""
    capabilities: tuple[str, ...] = ()
    on_event: EventCallback | None = None
    """Called after every persisted change; must not block (the tunnel queues it)."""

    @property
    def isolation(self) -> dict[str, str]:
        """How this runtime keeps workspaces apart, as the agent's ``hello`` reports it.

        ``sandbox``: ``bubblewrap`` (or the runtime's own mechanism) or ``none``;
        ``network``: ``private`` (a network namespace per workspace) or ``shared``;
        ``limits``: how blueprint resources are enforced, ``cgroup``, ``prlimit`` or
        ``none``. The portal shows a red "not isolated" badge when ``sandbox`` is ``none``.
        """
        return {"sandbox": "none", "network": "shared", "limits": "none"}

    async def connect_port(self, env_id: str, port: int, timeout: float) -> socket.socket:
        """A non-blocking socket connected to the app on declared ``port`` of ``env_id``.

        Raises ``ConnectionRefusedError`` when nothing listens, ``TimeoutError``, or
        another ``OSError``. By default: the port's ``host_port`` on this host's loopback.
        """
        env = await self.get(env_id)
        declared = [p for p in env.get("ports") or () if p.get("port") == port]
        host_port = declared[0].get("host_port") if declared else None
        if not host_port:
            raise ConnectionRefusedError(f"port {port} is not served")
        return await connect_loopback(int(host_port), timeout)

    @abc.abstractmethod
    async def load(self) -> None:
        """Discover existing environments and resume supervising them."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Stop background tasks; running workspaces keep running."""

    @abc.abstractmethod
    def count(self) -> int:
        """Number of environments known to the runtime."""

    @abc.abstractmethod
    async def list(self, selector: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Environments whose metadata match every ``tag: value`` of ``selector``.

        Listings are summaries: every field of ``get`` except ``spec``.
        """

    @abc.abstractmethod
    async def get(self, env_id: str) -> dict[str, Any]:
        """One environment."""

    @abc.abstractmethod
    async def create(
        self,
        spec: Mapping[str, Any],
        metadata: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Validate and start provisioning; returns at once with status ``deploying``."""

    @abc.abstractmethod
    async def start(
        self, env_id: str, secret_env: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Start a stopped or failed environment (no-op when running or deploying)."""

    @abc.abstractmethod
    async def stop(self, env_id: str) -> dict[str, Any]:
        """Stop the workspace process; returns once it is ``stopped``."""

    @abc.abstractmethod
    async def restart(
        self, env_id: str, secret_env: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Stop then start."""

    @abc.abstractmethod
    async def delete(self, env_id: str) -> dict[str, Any]:
        """Stop and remove the environment and all its files."""

    @abc.abstractmethod
    async def logs(self, env_id: str, tail: int = 200) -> list[str]:
        """The last ``tail`` lines of the workspace's output."""

    def follow_logs(self, env_id: str) -> LogFollower:
        """A follower of the workspace's output (what `logs` reads), from its last lines on.

        Raises ``not_found``; runtimes that cannot follow output raise ``unsupported``.
        """
        raise RuntimeFailure(UNSUPPORTED, f"the {self.name} runtime cannot follow logs")

    def workspace_home(self, env_id: str) -> contextlib.AbstractAsyncContextManager[WorkspaceHome]:
        """``async with`` it: the environment's home, kept while the block runs.

        Raises ``not_found``, or ``conflict`` while the environment is being deleted or
        its files are not there yet; runtimes without files on this host raise
        ``unsupported``.
        """
        raise RuntimeFailure(UNSUPPORTED, f"the {self.name} runtime has no files here")

    @abc.abstractmethod
    async def set_metadata(self, env_id: str, metadata: Mapping[str, str | None]) -> dict[str, Any]:
        """Merge tags into the metadata; a ``None`` value removes the tag."""

    @abc.abstractmethod
    async def upgrade(
        self,
        env_id: str,
        spec: Mapping[str, Any],
        secret_env: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Stop, replace the spec (keeping the workspace files), start."""
