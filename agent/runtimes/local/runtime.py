"""`LocalRuntime`: the operations of the local runtime, its locks, jobs and state changes.

The guarantees are the package's (see `agent.runtimes.local`). Every change of an
environment goes through `LocalRuntime._commit` (persisted, then reported); the disk
layout is `store`'s, provisioning steps are `provision`'s and process groups are
`supervise`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from agent.protocol import (
    DELETING,
    DEPLOYING,
    ERROR,
    EVENT_DELETED,
    EVENT_UPDATED,
    LOG_END_DELETED,
    OWNER_TAG,
    RUNNING,
    STOPPED,
    STOPPING,
)
from agent.runtimes import process as proc_util
from agent.runtimes.base import (
    CONFLICT,
    INTERNAL,
    INVALID_PARAMS,
    INVALID_SPEC,
    NOT_FOUND,
    EventCallback,
    LogFollower,
    Runtime,
    RuntimeFailure,
    ShellTarget,
    WorkspaceHome,
    connect_loopback,
)
from agent.runtimes.local import (
    launch,
    limits,
    provision,
    sandbox,
    secret_store,
    store,
    supervise,
)
from agent.runtimes.local.logtail import LogFollowers
from agent.runtimes.local.sandbox import Sandbox, SandboxError, SandboxUnavailable
from agent.runtimes.records import EnvRecord, ProcRecord, now
from agent.runtimes.spec import (
    MAX_TAGS,
    validate_metadata,
    validate_secret_env,
    validate_spec,
)

logger = logging.getLogger(__name__)

_BEFORE_FILES = ("validating", "creating", "cloning")
"""Provisioning phases during which a new workspace's home is not complete yet."""


class LocalRuntime(Runtime):
    """Environments as directories and process groups under ``data_dir``."""

    name = "local"
    capabilities = ("environments", "logs", "files")

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        on_event: EventCallback | None = None,
        stop_grace: float = 10.0,
        ready_timeout: float = 30.0,
        setup_timeout: float = 1800.0,
        poll_interval: float = 1.0,
        allow_file_git: bool = False,
        sandbox: Sandbox | None,
        enforcer: limits.Enforcer | None = None,
        limits_interval: float = 5.0,
        tools_dir: str | os.PathLike[str] | None = None,
        secret_key: bytes | None = None,
    ) -> None:
        self.root = Path(data_dir) / "environments"
        self.on_event = on_event
        self.stop_grace = stop_grace
        self.ready_timeout = ready_timeout
        self.setup_timeout = setup_timeout
        self.poll_interval = poll_interval
        self.allow_file_git = allow_file_git
        self.tools_dir = Path(tools_dir).resolve() if tools_dir is not None else None
        """The AI tools (``--tools-dir``) every workspace gets; None: workspaces have none."""
        self.sandbox = sandbox.with_tools(self.tools_dir) if sandbox is not None else None
        """How workspaces are isolated; None only with ``--insecure-no-sandbox``."""
        self.enforcer = enforcer if enforcer is not None else limits.detect()
        """How blueprint resources (cpu, memory, storage) are enforced."""
        self.limits_interval = limits_interval
        self._envs: dict[str, EnvRecord] = {}
        self._secrets: dict[str, dict[str, str]] = {}
        self._secret_key = secret_key
        """Seals each secret env on disk (`secret_store`); None: held in memory only."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._log_followers = LogFollowers()

    # -- lifecycle of the runtime itself ---------------------------------------------------

    async def load(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        loaded = await asyncio.to_thread(store.read_all, self.root)
        for env in loaded:
            self._envs[env.id] = env
        if self._secret_key is not None:
            saved = await asyncio.to_thread(secret_store.load_all, loaded, self._secret_key)
            self._secrets.update(saved)
        for env in loaded:
            changes = supervise.reconcile(env)
            if changes is not None:
                await self._commit(env, **changes)
        self._monitor = asyncio.create_task(self._monitor_loop(), name="local-runtime-monitor")
        logger.info("local runtime: %d environments under %s", len(self._envs), self.root)

    async def shutdown(self) -> None:
        self._log_followers.close()
        tasks = [t for t in (self._monitor, *self._tasks) if t is not None]
        tasks += [env.job for env in self._envs.values() if env.job is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def count(self) -> int:
        return len(self._envs)

    @property
    def isolation(self) -> dict[str, str]:
        mechanism = self.enforcer.mechanism
        if self.sandbox is None:
            return {"sandbox": "none", "network": "shared", "limits": mechanism}
        return {"sandbox": "bubblewrap", "network": "private", "limits": mechanism}

    async def _monitor_loop(self) -> None:
        """Rotate busy logs, notice when adopted processes end, enforce resource limits."""
        next_limits = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.poll_interval)
            if loop.time() >= next_limits:
                next_limits = loop.time() + self.limits_interval
                await self._check_limits()
            try:
                envs = self._envs.values()
                busy = [(e.id, e.log_dir) for e in envs if e.proc is not None or e.job]
                await self._log_followers.rotate(busy)
            except OSError:
                logger.exception("log rotation failed")
            for env, proc in supervise.newly_ended(self._envs.values()):
                self._spawn_task(self._on_exit(env, proc))

    async def _check_limits(self) -> None:
        """Stop, with the reason as its error, every running workspace over its limits."""
        for env in list(self._envs.values()):
            proc = env.proc
            if proc is None or env.data["status"] != RUNNING:
                continue
            try:
                bounds = limits.Limits.from_resources(env.data["spec"]["resources"])
                pids = await asyncio.to_thread(proc_util.descendants, proc.pid)
                reason = await asyncio.to_thread(
                    self.enforcer.violation, env.id, pids, env.home, bounds
                )
            except (OSError, ValueError) as exc:
                logger.warning("environment %s: limits not checked: %s", env.id, exc)
                continue
            if reason is not None:
                self._spawn_task(self._over_limit(env, reason))

    async def _over_limit(self, env: EnvRecord, reason: str) -> None:
        async with env.lock:
            if env.proc is None or self._envs.get(env.id) is not env:
                return
            logger.warning("environment %s: %s; stopping it", env.id, reason)
            await asyncio.to_thread(proc_util.append_log, env.log_dir, reason)
            await supervise.terminate(env, self.stop_grace)
            self.enforcer.release(env.id)
            await self._commit_ended(env, ERROR, reason)

    def _spawn_task(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reads -----------------------------------------------------------------------------

    async def list(self, selector: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        selector = dict(selector or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
            raise RuntimeFailure(INVALID_PARAMS, "selector must map tag names to strings")
        owner = selector.pop(OWNER_TAG, None)
        owner = owner.lower() if owner is not None else None
        items = selector.items()
        return [
            env.summary
            for env in self._envs.values()
            if (owner is None or env.owner == owner)
            and all(env.data["metadata"].get(k) == v for k, v in items)
        ]

    async def get(self, env_id: str) -> dict[str, Any]:
        return self._require(env_id).snapshot

    async def logs(self, env_id: str, tail: int = 200) -> list[str]:
        env = self._require(env_id)
        if not isinstance(tail, int) or isinstance(tail, bool) or tail < 0:
            raise RuntimeFailure(INVALID_PARAMS, "tail must be a non-negative integer")
        return await asyncio.to_thread(
            proc_util.tail_lines, env.log_dir, min(tail, proc_util.MAX_TAIL)
        )

    def follow_logs(self, env_id: str) -> LogFollower:
        """A follower of the service log (`agent.runtimes.local.logtail`), ended once the
        environment is deleted."""
        env = self._require(env_id)
        env.log_dir.mkdir(exist_ok=True, mode=0o700)  # a new environment has none yet
        return self._log_followers.open(env_id, env.log_dir)

    def shell_context(self, env_id: str) -> ShellTarget:
        """Where and how an interactive shell of ``env_id`` starts.

        The environment is the workspace process's own (blueprint env, the secret env it
        was launched with, the AI tools' settings, ``PORT``/``DEV_PORT``/``PORT_<n>`` of
        its ports). A sandboxed workspace's shells are started by its init, inside its
        sandbox. Raises ``not_found``, or ``conflict`` unless the environment is
        ``running``.
        """
        env = self._require(env_id)
        if env.data["status"] != RUNNING:
            raise RuntimeFailure(CONFLICT, f"environment is {env.data['status']}")
        result = self._process_env(env)
        ports = [p for p in env.data["ports"] or () if p.get("host_port")]
        result.update(supervise.port_env(ports))
        if self.sandbox is None:
            return ShellTarget(cwd=str(env.home), env=result, sandbox=None)
        return ShellTarget(cwd=sandbox.HOME, env=self.sandbox.environment(result), sandbox=env.path)

    async def connect_port(self, env_id: str, port: int, timeout: float) -> socket.socket:
        """A connected socket to the app on declared ``port`` of a running environment.

        Raises ``ConnectionRefusedError`` when nothing listens, ``TimeoutError``, or
        another ``OSError`` when the workspace cannot be reached.
        """
        env = self._require(env_id)
        declared = [p for p in env.data["ports"] or () if p.get("port") == port]
        host_port = declared[0].get("host_port") if declared else None
        if not host_port:
            raise ConnectionRefusedError(f"port {port} is not served")
        if self.sandbox is None:
            return await connect_loopback(int(host_port), timeout)
        try:
            return await sandbox.connect(env.path, int(host_port), timeout)
        except SandboxError as exc:
            if exc.code == "refused":
                raise ConnectionRefusedError(str(exc)) from None
            if exc.code == "timeout":
                raise TimeoutError(str(exc)) from None
            raise OSError(str(exc)) from None

    @contextlib.asynccontextmanager
    async def workspace_home(self, env_id: str) -> AsyncIterator[WorkspaceHome]:
        """The environment's ``home/``, whatever its status but ``deleting``.

        Files of a stopped workspace are there too; before its clone finished (phases
        up to ``cloning``) they are not, and ``conflict`` answers. `delete` waits for
        every block still using the home before it removes it. When the agent runs as
        root, new files belong to the sandbox's uid (the workspace's ``builder``).
        """
        env = self._require(env_id)
        status, phase = env.data["status"], env.data["phase"]
        if status == DELETING:
            raise RuntimeFailure(CONFLICT, "environment is being deleted")
        if (status == DEPLOYING and phase in _BEFORE_FILES) or not env.home.is_dir():
            raise RuntimeFailure(CONFLICT, "the workspace's files are not ready yet")
        owner = env.data.get("sandbox_uid")
        if self.sandbox is None or not self.sandbox.as_root or not isinstance(owner, int):
            owner = None
        mount = sandbox.HOME if self.sandbox is not None else str(env.home)
        env.file_users += 1
        env.files_idle.clear()
        try:
            yield WorkspaceHome(env.home, mount, owner, owner, env.files_lock)
        finally:
            env.file_users -= 1
            if env.file_users == 0:
                env.files_idle.set()

    def _require(self, env_id: Any) -> EnvRecord:
        env = self._envs.get(env_id) if isinstance(env_id, str) else None
        if env is None:
            raise RuntimeFailure(NOT_FOUND, f"environment {env_id!r} does not exist")
        return env

    # -- writes ----------------------------------------------------------------------------

    async def create(
        self,
        spec: Mapping[str, Any],
        metadata: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        clean_spec = self._validate_spec(spec)
        tags = validate_metadata(metadata)
        secret = validate_secret_env(secret_env)
        env = store.new_environment(self.root, clean_spec, tags)
        env_id = env.id
        if self.sandbox is not None:
            env.data["sandbox_uid"] = self._sandbox_uid()
        self._envs[env_id] = env
        if secret:
            await self._set_secret(env, secret)
        await self._commit(env)
        env.job = asyncio.create_task(self._run_job(env, self._provision), name=env_id)
        logger.info("environment %s: provisioning", env_id)
        return env.snapshot

    async def start(
        self, env_id: str, secret_env: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Launch a stopped (or failed) environment with ``secret_env`` when given.

        One already running or deploying keeps the secret env it was launched with, so
        its new shells get the same variables as its app: only a launch takes new ones.
        """
        secret = validate_secret_env(secret_env)
        env = self._require(env_id)
        if env.data["status"] in (RUNNING, DEPLOYING):
            return env.snapshot
        async with self._locked(env):
            if env.data["status"] in (STOPPING, DELETING):
                raise RuntimeFailure(CONFLICT, f"environment is {env.data['status']}")
            if env.data["status"] in (STOPPED, ERROR):
                if secret is not None:
                    await self._set_secret(env, secret)
                await self._launch(env, self._activate)
        return env.snapshot

    async def stop(self, env_id: str) -> dict[str, Any]:
        env = self._require(env_id)
        await self._cancel_job(env)
        async with self._locked(env):
            await self._cancel_job(env)
            self._forbid_deleting(env)
            await self._stop_locked(env)
        return env.snapshot

    async def restart(
        self, env_id: str, secret_env: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return await self._replace(env_id, None, secret_env)

    async def upgrade(
        self,
        env_id: str,
        spec: Mapping[str, Any],
        secret_env: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        clean = self._validate_spec(spec)
        return await self._replace(env_id, clean, secret_env)

    def _validate_spec(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        clean = validate_spec(spec, allow_file_git=self.allow_file_git)
        try:
            limits.Limits.from_resources(clean["resources"])
        except ValueError as exc:
            raise RuntimeFailure(INVALID_SPEC, f"resources: {exc}") from None
        if self.sandbox is not None and clean["network"] not in self.sandbox.networks:
            raise RuntimeFailure(
                INVALID_SPEC, f"network {clean['network']!r} is not available on this cluster"
            )
        return clean

    async def _replace(
        self, env_id: str, spec: dict[str, Any] | None, secret_env: Mapping[str, str] | None
    ) -> dict[str, Any]:
        """Stop, optionally swap the spec, start again — as one locked operation."""
        secret = validate_secret_env(secret_env)
        env = self._require(env_id)
        await self._cancel_job(env)
        async with self._locked(env):
            await self._cancel_job(env)
            self._forbid_deleting(env)
            await self._stop_locked(env)
            if secret is not None:
                await self._set_secret(env, secret)
            if spec is not None:
                ports = [dict(p, host_port=None) for p in spec["ports"]]
                await self._commit(env, spec=spec, ports=ports)
            await self._launch(env, self._activate)
        return env.snapshot

    async def delete(self, env_id: str) -> dict[str, Any]:
        env = self._require(env_id)
        await self._cancel_job(env)
        async with self._locked(env):
            await self._cancel_job(env)
            await self._commit(env, status=DELETING, phase=None)
            await supervise.terminate(env, self.stop_grace)
            self.enforcer.release(env.id)
            await env.files_idle.wait()  # no file operation admitted since ``deleting``
            async with env.write_lock:
                env.deleted = True  # from here on, no write recreates the directory
            del self._envs[env_id]
            try:
                await asyncio.to_thread(shutil.rmtree, env.path)
            except OSError as exc:
                logger.error("environment %s: delete failed: %s", env_id, exc)
                self._envs[env_id], env.deleted = env, False
                await self._commit(env, status=ERROR, error="delete failed")
                raise RuntimeFailure(INTERNAL, "could not remove the environment files") from None
            self._secrets.pop(env_id, None)
        self._log_followers.end(env_id, LOG_END_DELETED, "the workspace was deleted")
        logger.info("environment %s: deleted", env_id)
        self._emit(EVENT_DELETED, env.snapshot)
        return {"id": env_id, "deleted": True}

    async def set_metadata(self, env_id: str, metadata: Mapping[str, str | None]) -> dict[str, Any]:
        env = self._require(env_id)
        changes = validate_metadata(metadata, allow_delete=True)
        merged = {**env.data["metadata"], **changes}
        tags = {k: v for k, v in merged.items() if v is not None}
        if len(tags) > MAX_TAGS:
            raise RuntimeFailure(INVALID_SPEC, f"an environment has at most {MAX_TAGS} tags")
        await self._commit(env, metadata=tags)
        return env.snapshot

    # -- internals -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self, env: EnvRecord) -> AsyncIterator[None]:
        """Hold the environment's lock; fail if it was deleted while waiting."""
        async with env.lock:
            if self._envs.get(env.id) is not env:
                raise RuntimeFailure(NOT_FOUND, f"environment {env.id!r} does not exist")
            yield

    @staticmethod
    def _forbid_deleting(env: EnvRecord) -> None:
        if env.data["status"] == DELETING:
            raise RuntimeFailure(CONFLICT, "environment is being deleted")

    async def _cancel_job(self, env: EnvRecord) -> None:
        job = env.job
        if job is not None and not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(job)
        env.job = None

    async def _launch(self, env: EnvRecord, step: Callable[[EnvRecord], Awaitable[None]]) -> None:
        """Move to ``deploying`` and run ``step`` in the background under the lock."""
        await self._commit(env, status=DEPLOYING, phase="deploying", error=None)
        env.job = asyncio.create_task(self._run_job(env, step), name=env.id)

    async def _run_job(self, env: EnvRecord, step: Callable[[EnvRecord], Awaitable[None]]) -> None:
        async with env.lock:
            if self._envs.get(env.id) is not env:
                return
            try:
                await step(env)
            except RuntimeFailure as exc:
                await self._fail(env, exc.message)
            except Exception:
                logger.exception("environment %s: provisioning failed", env.id)
                await self._fail(env, "internal error (see the agent log)")

    async def _fail(self, env: EnvRecord, reason: str) -> None:
        logger.warning("environment %s: %s", env.id, reason)
        supervise.kill(env)
        await asyncio.to_thread(proc_util.append_log, env.log_dir, reason)
        await self._commit_ended(env, ERROR, reason)

    async def _set_secret(self, env: EnvRecord, secret: dict[str, str]) -> None:
        """Make ``secret`` the environment's secret env; with a key also sealed on disk,
        so it outlives an agent restart (under the environment's lock, or at create)."""
        self._secrets[env.id] = secret
        if self._secret_key is None:
            return
        try:
            await asyncio.to_thread(secret_store.save, env.path, env.id, secret, self._secret_key)
        except OSError as exc:
            logger.warning(
                "environment %s: secret environment kept in memory only (not saved: %s)",
                env.id,
                exc.strerror,
            )

    def _process_env(self, env: EnvRecord) -> dict[str, str]:
        """The environment of every workspace process, with host paths (`Sandbox.environment`
        maps them): blueprint env, secret env, then the AI tools' (which always win)."""
        result = proc_util.base_env(env.home)
        result["ENCLAVE_ENVIRONMENT_ID"] = env.id
        result.update(env.data["spec"]["env"])
        result.update(self._secrets.get(env.id, {}))
        result.update(launch.tools_env(self.tools_dir, result["PATH"]))
        return result

    def _sandbox_uid(self) -> int:
        assert self.sandbox is not None
        taken = {e.data.get("sandbox_uid") for e in self._envs.values()}
        return self.sandbox.host_uid({uid for uid in taken if isinstance(uid, int)})

    async def _ensure_sandbox_dirs(self, env: EnvRecord) -> None:
        if self.sandbox is None:
            return
        if not isinstance(env.data.get("sandbox_uid"), int):
            await self._commit(env, sandbox_uid=self._sandbox_uid())
        try:
            await asyncio.to_thread(self.sandbox.prepare, env.path, env.data["sandbox_uid"])
        except (SandboxUnavailable, OSError) as exc:
            raise RuntimeFailure(INTERNAL, f"the sandbox could not be prepared: {exc}") from None

    async def _provision(self, env: EnvRecord) -> None:
        await self._ensure_sandbox_dirs(env)
        await provision.prepare(
            env,
            phase=lambda phase: self._commit(env, phase=phase),
            setup_env=lambda: self._process_env(env),
            timeout=self.setup_timeout,
            wrap=launch.provision_wrap(self.sandbox, env),
        )
        await self._commit(env, phase="deploying")
        await self._activate(env)

    async def _activate(self, env: EnvRecord) -> None:
        """Run the start command with allocated ports; ``running`` once it is ready.

        With AI tools it runs under their entrypoint (`launch.start_argv`). Ready means
        the first declared app port accepts connections, or ``ready_timeout`` passed
        (slow dev servers still reach ``running``); a command that exits first fails the
        start.
        """
        spec = env.data["spec"]
        if self.sandbox is None:
            argv = launch.start_argv(self.tools_dir, spec["start_command"])
            if argv is None:
                await self._commit(env, status=RUNNING, phase=None, error=None)
                return
            taken = {p["host_port"] for e in self._envs.values() for p in e.data["ports"] or ()}
            ports = proc_util.allocate_ports(spec["ports"], taken)
            run_env = self._process_env(env) | supervise.port_env(ports)
        else:
            # The workspace has a network of its own: its ports are the declared ones.
            await self._ensure_sandbox_dirs(env)
            ports = [dict(p, host_port=p["port"]) for p in spec["ports"]]
            run_env = self.sandbox.environment(self._process_env(env) | supervise.port_env(ports))
            argv = self.sandbox.command(
                env.path,
                self.sandbox.init_command(spec["start_command"] or None),
                host_uid=env.data["sandbox_uid"],
                network=spec.get("network", "outbound"),
                one_shot=False,
                hostname=env.id,
            )
        bounds = limits.Limits.from_resources(spec["resources"])
        proc = await supervise.spawn(
            env, argv, run_env, preexec=self.enforcer.preexec(env.id, bounds)
        )
        env.proc = proc
        try:
            await asyncio.to_thread(self.enforcer.attach, env.id, proc.pid, bounds)
        except OSError as exc:
            raise RuntimeFailure(INTERNAL, f"resource limits could not be applied: {exc}") from None
        self._spawn_task(self._watch_child(env, proc))
        await self._commit(
            env,
            phase="finalizing",
            pid=proc.pid,
            pgid=proc.pid,  # start_new_session: the process leads its own group
            process_started=proc.start_time,
            ports=ports,
        )
        probe = launch.ready_probe(self.sandbox, env, ports)
        await supervise.wait_ready(env, proc, probe, self.ready_timeout)
        if proc.exited.is_set():
            reason = proc_util.exit_reason(proc.returncode)
            raise RuntimeFailure(INTERNAL, f"start command ended ({reason})")
        await self._commit(env, status=RUNNING, phase=None, error=None)
        logger.info("environment %s: running (pid %d)", env.id, proc.pid)

    async def _watch_child(self, env: EnvRecord, proc: ProcRecord) -> None:
        assert proc.child is not None
        proc.returncode = await proc.child.wait()
        proc.exited.set()
        await self._on_exit(env, proc)

    async def _on_exit(self, env: EnvRecord, proc: ProcRecord) -> None:
        """The workspace process ended on its own: the environment turns to ``error``."""
        if proc.stop_requested:
            return
        proc_util.signal_group(proc.pid, signal.SIGKILL)
        async with env.lock:
            if env.proc is not proc or self._envs.get(env.id) is not env:
                return
            env.proc = None
            reason = proc_util.exit_reason(proc.returncode)
            logger.warning("environment %s: process ended (%s)", env.id, reason)
            await self._commit_ended(env, ERROR, reason)

    async def _stop_locked(self, env: EnvRecord) -> None:
        if env.data["status"] == STOPPED and env.proc is None:
            return
        if env.proc is not None:
            await self._commit(env, status=STOPPING, phase=None)
            await supervise.terminate(env, self.stop_grace)
        self.enforcer.release(env.id)
        await self._commit_ended(env, STOPPED, None)
        logger.info("environment %s: stopped", env.id)

    async def _commit_ended(self, env: EnvRecord, status: str, error: str | None) -> None:
        """The process is gone: ``status`` and ``error`` recorded, no pid, ports released."""
        ports = supervise.released_ports(env)
        await self._commit(env, status=status, phase=None, error=error, pid=None, ports=ports)

    async def _commit(self, env: EnvRecord, **changes: Any) -> None:
        """Apply changes, persist them atomically, then report the new state."""
        env.data.update(changes)
        if env.data["pid"] is None:  # a recycled pid must never look adopted
            env.data["process_started"] = env.data["pgid"] = None
        env.data["updated_at"] = now()
        env.refresh()
        await env.persist()
        self._emit(EVENT_UPDATED, env.snapshot)

    def _emit(self, kind: str, snapshot: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, snapshot)
        except Exception:
            logger.exception("event callback failed")
