"""The control-plane interface: environments in the data plane, seen from the portal.

The portal never touches a runtime directly. Everything that lives next to the
workspaces — listing, lifecycle, logs, metadata tags, the files of their homes — goes
through a `ControlPlane`.
The first implementation is `AgentControlPlane` (RPC over the agent tunnel); the
interface is deliberately small and synchronous so that a REST adapter (e.g. Qovery's
API with an organisation token) can implement it as well.

Failures are domain errors the API maps directly: `ClusterUnavailable` (503
`cluster_unavailable`: no agent, or it did not answer in time),
`EnvironmentNotFound` (404), and whatever the data plane refused, as `domain_error`
maps it (file refusals keep their own codes: `FileRefused`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import import_string

from agent.protocol import FILE_ERRORS, RpcError
from core.errors import ApplicationError, NotFound
from workspaces.controlplane.files import (
    DirectoryListing,
    FileContent,
    FileEntry,
    FileRefused,
    FileVersion,
)


class ClusterUnavailable(ApplicationError):
    """The cluster's agent is not connected or did not answer in time."""

    status = 503

    def __init__(self, cluster: str, reason: str = "is not reachable") -> None:
        super().__init__(
            f"Cluster {cluster!r} {reason}.", code="cluster_unavailable", extra={"cluster": cluster}
        )
        self.cluster = cluster


class EnvironmentNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Workspace not found.", code="not_found")


def domain_error(exc: RpcError) -> ApplicationError:
    """The portal's error for what the data plane refused (`agent.protocol.RpcError`)."""
    if exc.code == "not_found":
        return EnvironmentNotFound()
    if exc.code == "conflict":
        return ApplicationError(exc.message, code="workspace_conflict", status=409)
    if exc.code in FILE_ERRORS:
        return FileRefused(exc.code, exc.message)
    if exc.code in ("invalid_spec", "invalid_params"):
        return ApplicationError(
            f"The cluster refused the workspace definition: {exc.message}",
            code="invalid_blueprint",
            status=422,
        )
    return ApplicationError("The cluster's agent failed.", code="agent_error", status=502)


@dataclass(frozen=True)
class Environment:
    """A snapshot of one environment as its cluster reports it."""

    id: str
    cluster: str
    status: str
    phase: str | None
    metadata: dict[str, str]
    ports: list[dict[str, Any]]
    created_at: str | None = None
    error: str | None = None
    spec: dict[str, Any] = field(default_factory=dict, repr=False)
    updated_at: str | None = None
    """When the cluster last changed it (its own clock): orders two snapshots of it."""

    @classmethod
    def from_agent(cls, cluster: str, data: dict[str, Any]) -> Environment:
        return cls(
            id=str(data["id"]),
            cluster=cluster,
            status=str(data.get("status", "")),
            phase=data.get("phase"),
            metadata=dict(data.get("metadata") or {}),
            ports=list(data.get("ports") or []),
            created_at=data.get("created_at"),
            error=data.get("error"),
            spec=dict(data.get("spec") or {}),
            updated_at=data.get("updated_at"),
        )


@dataclass(frozen=True)
class ListResult:
    """Environments from every cluster that answered, and the clusters that did not."""

    environments: list[Environment]
    unreachable: list[str]


class ControlPlane(abc.ABC):
    """What the portal may ask of the data plane. `cluster` is a `relay.Cluster`."""

    @abc.abstractmethod
    def list_environments(self, clusters, selector: dict[str, str]) -> ListResult:
        """Environments on all `clusters` (queried in parallel) matching every tag."""

    @abc.abstractmethod
    def get(self, cluster, environment_id: str) -> Environment: ...

    @abc.abstractmethod
    def create(
        self, cluster, *, spec: dict, metadata: dict[str, str], secret_env: dict[str, str]
    ) -> Environment: ...

    @abc.abstractmethod
    def start(self, cluster, environment_id: str, *, secret_env: dict[str, str]) -> Environment: ...

    @abc.abstractmethod
    def stop(self, cluster, environment_id: str) -> Environment: ...

    @abc.abstractmethod
    def restart(
        self, cluster, environment_id: str, *, secret_env: dict[str, str]
    ) -> Environment: ...

    @abc.abstractmethod
    def delete(self, cluster, environment_id: str) -> None: ...

    @abc.abstractmethod
    def logs(self, cluster, environment_id: str, *, tail: int) -> list[str]: ...

    @abc.abstractmethod
    def set_metadata(
        self, cluster, environment_id: str, metadata: dict[str, str | None]
    ) -> Environment: ...

    @abc.abstractmethod
    def upgrade(
        self, cluster, environment_id: str, *, spec: dict, secret_env: dict[str, str]
    ) -> Environment: ...

    # -- the files of a workspace's home (paths relative to it; see `agent.files`) -------

    @abc.abstractmethod
    def files_list(self, cluster, environment_id: str, *, path: str) -> DirectoryListing:
        """A directory's entries (bounded: ``truncated`` says whether there were more)."""

    @abc.abstractmethod
    def file_read(self, cluster, environment_id: str, *, path: str) -> FileContent:
        """A file's text and version, or ``binary`` without content (5 MiB at most)."""

    @abc.abstractmethod
    def file_write(
        self,
        cluster,
        environment_id: str,
        *,
        path: str,
        content: str,
        base_version: str | None,
    ) -> FileVersion:
        """Replace or create a file atomically; with ``base_version``, only if the file
        still has it (else `FileRefused` ``file_conflict``)."""

    @abc.abstractmethod
    def file_rename(
        self, cluster, environment_id: str, *, source: str, target: str, overwrite: bool
    ) -> FileEntry:
        """Rename or move; an existing target only with ``overwrite``."""

    @abc.abstractmethod
    def file_delete(self, cluster, environment_id: str, *, path: str, recursive: bool) -> None:
        """Delete a file, link or empty folder (a folder with content with ``recursive``)."""


def get_control_plane() -> ControlPlane:
    """The configured implementation (setting `CONTROL_PLANE`)."""
    from django.conf import settings

    return import_string(settings.CONTROL_PLANE)()
