"""`InMemoryControlPlane`: the whole control-plane contract, kept in process memory.

It is the control plane of the test suite and of a portal run without any agent
(`CONTROL_PLANE="workspaces.controlplane.memory.InMemoryControlPlane"`). It is not a
stub: every operation of `ControlPlane` behaves as a cluster would — environments get
ids, statuses, ports and metadata tags; listings filter by every tag (the owner e-mail
case-insensitively); unknown ids raise `EnvironmentNotFound`; a cluster marked
unreachable raises `ClusterUnavailable` on every call and is reported in listings.
As from an agent, listings are summaries (no `spec`); `get` returns everything.

The store is module-level and guarded by a lock, so every instance returned by
`get_control_plane()` (one per call) and every thread sees the same environments. It
lives as long as the process; `reset()` empties it. Secret environment variables are
kept apart from the environments (as the agent keeps them in memory only), so tests
can check that AI keys reach the data plane without ever appearing in a listing.
Whether a cluster's agent tunnel is up is not consulted: nothing here needs a tunnel.

Each environment's home is a real directory (a temporary one, made on first use and
removed with the environment or by `reset()`), worked on by the agent's own file
operations (`agent.files`): paths, links, bounds, versions and refusals behave exactly
as on a cluster.
"""

from __future__ import annotations

import copy
import secrets
import shutil
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.utils import timezone

from agent import files as agent_files
from agent.protocol import DELETING, OWNER_TAG, RUNNING, STOPPED, RpcError
from agent.runtimes.base import WorkspaceHome
from workspaces.controlplane.base import (
    ClusterUnavailable,
    ControlPlane,
    Environment,
    EnvironmentNotFound,
    ListResult,
    domain_error,
)
from workspaces.controlplane.files import DirectoryListing, FileContent, FileEntry, FileVersion

LOG_KEEP = 5000
HOME_MOUNT = "/home/builder"
"""Where a workspace sees its home (absolute links under it stay inside)."""


@dataclass
class _Store:
    """Everything the in-memory clusters hold, keyed by (cluster name, environment id)."""

    environments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secret_env: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    logs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    homes: dict[tuple[str, str], WorkspaceHome] = field(default_factory=dict)


_LOCK = threading.RLock()
_STORE = _Store()


def _now() -> str:
    return timezone.now().isoformat()


def _matches(metadata: dict[str, str], selector: dict[str, str]) -> bool:
    for tag, wanted in selector.items():
        value = metadata.get(tag)
        if value is None:
            return False
        if tag == OWNER_TAG:
            if value.strip().lower() != wanted.strip().lower():
                return False
        elif value != wanted:
            return False
    return True


class InMemoryControlPlane(ControlPlane):
    """Environments in a process-wide, thread-safe store; see the module docstring."""

    # --- test and operator helpers (not part of the `ControlPlane` contract) ------------

    @classmethod
    def reset(cls) -> None:
        """Forget every environment, secret, log line, unreachable mark and call count."""
        global _STORE
        with _LOCK:
            for home in _STORE.homes.values():
                shutil.rmtree(home.root, ignore_errors=True)
            _STORE = _Store()

    @classmethod
    def set_unreachable(cls, cluster_name: str, unreachable: bool = True) -> None:
        """Make every call to `cluster_name` fail (or succeed again) as if its agent were gone."""
        with _LOCK:
            if unreachable:
                _STORE.unreachable.add(cluster_name)
            else:
                _STORE.unreachable.discard(cluster_name)

    @classmethod
    def seed(
        cls,
        cluster,
        *,
        metadata: dict[str, str],
        status: str = RUNNING,
        spec: dict | None = None,
        secret_env: dict[str, str] | None = None,
    ) -> Environment:
        """Put an environment on `cluster` directly, as if created outside the portal."""
        with _LOCK:
            environment = cls._insert(cluster.name, spec or {}, metadata, secret_env or {})
            environment["status"] = status
            return cls._snapshot(cluster.name, environment)

    @classmethod
    def record(cls, cluster_name: str, environment_id: str) -> dict[str, Any]:
        """A copy of the stored environment (metadata, spec, status...), for assertions."""
        with _LOCK:
            return copy.deepcopy(cls._require(cluster_name, environment_id))

    @classmethod
    def exists(cls, cluster_name: str, environment_id: str) -> bool:
        with _LOCK:
            return (cluster_name, environment_id) in _STORE.environments

    @classmethod
    def secret_env_of(cls, cluster_name: str, environment_id: str) -> dict[str, str]:
        """The secret env last passed for an environment (create, start, restart, upgrade)."""
        with _LOCK:
            return dict(_STORE.secret_env.get((cluster_name, environment_id), {}))

    @classmethod
    def add_log(cls, cluster_name: str, environment_id: str, *lines: str) -> None:
        """Append service log lines, as the workspace's process would write them."""
        with _LOCK:
            cls._require(cluster_name, environment_id)
            cls._log(cluster_name, environment_id, *lines)

    @classmethod
    def home_of(cls, cluster_name: str, environment_id: str) -> Path:
        """The directory holding an environment's home (made on first use)."""
        with _LOCK:
            cls._require(cluster_name, environment_id)
            return cls._home(cluster_name, environment_id).root

    @classmethod
    def call_count(cls, method: str) -> int:
        """How many times `method` was called (for cache tests); `list` counts per cluster."""
        with _LOCK:
            return _STORE.calls[method]

    # --- internals (called with the lock held) -------------------------------------------

    @staticmethod
    def _reachable(cluster_name: str) -> None:
        if cluster_name in _STORE.unreachable:
            raise ClusterUnavailable(cluster_name)

    @staticmethod
    def _require(cluster_name: str, environment_id: str) -> dict[str, Any]:
        environment = _STORE.environments.get((cluster_name, environment_id))
        if environment is None:
            raise EnvironmentNotFound()
        return environment

    @staticmethod
    def _log(cluster_name: str, environment_id: str, *lines: str) -> None:
        log = _STORE.logs.setdefault((cluster_name, environment_id), [])
        log.extend(lines)
        del log[:-LOG_KEEP]

    @classmethod
    def _insert(
        cls, cluster_name: str, spec: dict, metadata: dict[str, str], secret_env: dict[str, str]
    ) -> dict[str, Any]:
        environment_id = f"env-{secrets.token_hex(6)}"
        environment = {
            "id": environment_id,
            "metadata": {str(k): str(v) for k, v in metadata.items()},
            "spec": copy.deepcopy(spec),
            "status": RUNNING,
            "phase": None,
            "error": None,
            "ports": [
                {"port": p["port"], "name": p.get("name", "")} for p in spec.get("ports", [])
            ],
            "created_at": _now(),
        }
        _STORE.environments[(cluster_name, environment_id)] = environment
        _STORE.secret_env[(cluster_name, environment_id)] = dict(secret_env)
        cls._log(cluster_name, environment_id, f"{environment_id}: created", "service started")
        return environment

    @staticmethod
    def _home(cluster_name: str, environment_id: str) -> WorkspaceHome:
        key = (cluster_name, environment_id)
        home = _STORE.homes.get(key)
        if home is None:
            root = Path(tempfile.mkdtemp(prefix=f"enclave-{environment_id}-"))
            home = _STORE.homes[key] = WorkspaceHome(root, HOME_MOUNT)
        return home

    @staticmethod
    def _drop_home(cluster_name: str, environment_id: str) -> None:
        home = _STORE.homes.pop((cluster_name, environment_id), None)
        if home is not None:
            shutil.rmtree(home.root, ignore_errors=True)

    @staticmethod
    def _snapshot(cluster_name: str, environment: dict[str, Any]) -> Environment:
        return Environment.from_agent(cluster_name, copy.deepcopy(environment))

    @staticmethod
    def _summary(cluster_name: str, environment: dict[str, Any]) -> Environment:
        """What a listing carries, as from an agent: everything but the spec."""
        fields = {k: copy.deepcopy(v) for k, v in environment.items() if k != "spec"}
        return Environment.from_agent(cluster_name, fields)

    def _enter(self, method: str, cluster) -> None:
        _STORE.calls[method] += 1
        self._reachable(cluster.name)

    def _files(self, method: str, cluster, environment_id: str, operation, **kwargs: Any) -> Any:
        """Run one of `agent.files`' operations on the environment's home, as an agent would:
        refused while the environment is being deleted, refusals mapped as over a tunnel."""
        with _LOCK:
            self._enter(method, cluster)
            environment = self._require(cluster.name, environment_id)
            if environment["status"] == DELETING:
                raise domain_error(RpcError("conflict", "environment is being deleted"))
            home = self._home(cluster.name, environment_id)
        try:
            return operation(home, **kwargs)
        except RpcError as exc:
            raise domain_error(exc) from exc

    def _transition(
        self,
        method: str,
        cluster,
        environment_id: str,
        *,
        status: str,
        line: str,
        secret_env: dict[str, str] | None = None,
    ) -> Environment:
        with _LOCK:
            self._enter(method, cluster)
            environment = self._require(cluster.name, environment_id)
            if secret_env is not None:
                _STORE.secret_env[(cluster.name, environment_id)] = dict(secret_env)
            environment.update(status=status, phase=None, error=None)
            self._log(cluster.name, environment_id, line)
            return self._snapshot(cluster.name, environment)

    # --- the `ControlPlane` contract -----------------------------------------------------

    def list_environments(self, clusters, selector: dict[str, str]) -> ListResult:
        environments: list[Environment] = []
        unreachable: list[str] = []
        with _LOCK:
            for cluster in clusters:
                _STORE.calls["list"] += 1
                if cluster.name in _STORE.unreachable:
                    unreachable.append(cluster.name)
                    continue
                environments.extend(
                    self._summary(cluster.name, environment)
                    for (name, _), environment in _STORE.environments.items()
                    if name == cluster.name and _matches(environment["metadata"], selector)
                )
        return ListResult(environments, unreachable)

    def get(self, cluster, environment_id: str) -> Environment:
        with _LOCK:
            self._enter("get", cluster)
            return self._snapshot(cluster.name, self._require(cluster.name, environment_id))

    def create(
        self, cluster, *, spec: dict, metadata: dict[str, str], secret_env: dict[str, str]
    ) -> Environment:
        with _LOCK:
            self._enter("create", cluster)
            environment = self._insert(cluster.name, spec, metadata, secret_env)
            return self._snapshot(cluster.name, environment)

    def start(self, cluster, environment_id: str, *, secret_env: dict[str, str]) -> Environment:
        return self._transition(
            "start",
            cluster,
            environment_id,
            status=RUNNING,
            line="service started",
            secret_env=secret_env,
        )

    def stop(self, cluster, environment_id: str) -> Environment:
        return self._transition(
            "stop", cluster, environment_id, status=STOPPED, line="service stopped"
        )

    def restart(self, cluster, environment_id: str, *, secret_env: dict[str, str]) -> Environment:
        return self._transition(
            "restart",
            cluster,
            environment_id,
            status=RUNNING,
            line="service restarted",
            secret_env=secret_env,
        )

    def delete(self, cluster, environment_id: str) -> None:
        with _LOCK:
            self._enter("delete", cluster)
            self._require(cluster.name, environment_id)
            key = (cluster.name, environment_id)
            del _STORE.environments[key]
            _STORE.secret_env.pop(key, None)
            _STORE.logs.pop(key, None)
            self._drop_home(cluster.name, environment_id)

    def logs(self, cluster, environment_id: str, *, tail: int) -> list[str]:
        with _LOCK:
            self._enter("logs", cluster)
            self._require(cluster.name, environment_id)
            lines = _STORE.logs.get((cluster.name, environment_id), [])
            return list(lines[-tail:]) if tail > 0 else []

    def set_metadata(
        self, cluster, environment_id: str, metadata: dict[str, str | None]
    ) -> Environment:
        with _LOCK:
            self._enter("set_metadata", cluster)
            environment = self._require(cluster.name, environment_id)
            tags = environment["metadata"]
            for tag, value in metadata.items():
                if value is None:
                    tags.pop(tag, None)
                else:
                    tags[tag] = str(value)
            return self._snapshot(cluster.name, environment)

    def upgrade(
        self, cluster, environment_id: str, *, spec: dict, secret_env: dict[str, str]
    ) -> Environment:
        with _LOCK:
            self._enter("upgrade", cluster)
            environment = self._require(cluster.name, environment_id)
            environment["spec"] = copy.deepcopy(spec)
            environment["ports"] = [
                {"port": p["port"], "name": p.get("name", "")} for p in spec.get("ports", [])
            ]
            environment.update(status=RUNNING, phase=None, error=None)
            _STORE.secret_env[(cluster.name, environment_id)] = dict(secret_env)
            self._log(cluster.name, environment_id, "upgraded", "service started")
            return self._snapshot(cluster.name, environment)

    def files_list(self, cluster, environment_id: str, *, path: str) -> DirectoryListing:
        result = self._files("files_list", cluster, environment_id, agent_files.list_dir, path=path)
        return DirectoryListing.from_agent(result)

    def file_read(self, cluster, environment_id: str, *, path: str) -> FileContent:
        result = self._files("file_read", cluster, environment_id, agent_files.read_file, path=path)
        return FileContent.from_agent(result)

    def file_write(
        self,
        cluster,
        environment_id: str,
        *,
        path: str,
        content: str,
        base_version: str | None,
    ) -> FileVersion:
        result = self._files(
            "file_write",
            cluster,
            environment_id,
            agent_files.write_file,
            path=path,
            content=content.encode("utf-8"),
            base_version=base_version,
        )
        return FileVersion.from_agent(result)

    def file_rename(
        self, cluster, environment_id: str, *, source: str, target: str, overwrite: bool
    ) -> FileEntry:
        result = self._files(
            "file_rename",
            cluster,
            environment_id,
            agent_files.rename,
            source=source,
            target=target,
            overwrite=overwrite,
        )
        return FileEntry.from_agent(result)

    def file_delete(self, cluster, environment_id: str, *, path: str, recursive: bool) -> None:
        self._files(
            "file_delete",
            cluster,
            environment_id,
            agent_files.delete,
            path=path,
            recursive=recursive,
        )
