"""`AgentControlPlane`: the control plane as RPCs over each cluster's agent tunnel.

Each call opens an `rpc` stream through the transport the relay registered
(`workspaces.controlplane.transport`: in-process when this portal process holds the
tunnel, through the channel layer otherwise), sends the request (and its body, for a
file's content) and reads the response until the agent closes the stream. A call that
cannot reach the agent, or gets no answer within `AGENT_RPC_TIMEOUT` seconds, raises
`ClusterUnavailable` — it never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings

from agent import protocol as p
from clusters.models import Cluster
from core.errors import ApplicationError
from workspaces.controlplane.base import (
    ClusterUnavailable,
    ControlPlane,
    Environment,
    ListResult,
    domain_error,
)
from workspaces.controlplane.files import DirectoryListing, FileContent, FileEntry, FileVersion
from workspaces.controlplane.transport import TunnelUnavailable, open_stream

logger = logging.getLogger(__name__)


async def rpc(
    cluster: Cluster,
    method: str,
    params: dict[str, Any],
    timeout: float,
    *,
    body: bytes | None = None,
) -> Any:
    """One RPC to `cluster`'s agent; maps every failure to a portal domain error.

    ``body`` (a file's content) follows the request as DATA, under the stream's flow
    control, and counts against the same ``timeout``.
    """
    length = None if body is None else len(body)
    try:
        stream = await open_stream(
            cluster_id=cluster.pk,
            tunnel_channel=cluster.tunnel_channel if cluster.is_connected else "",
            request=p.rpc_request(method, params, body=length),
        )
    except TunnelUnavailable as exc:
        raise ClusterUnavailable(cluster.name) from exc

    async def exchange() -> bytes:
        if body is not None:
            with contextlib.suppress(p.StreamClosed):  # the answer says why
                await stream.write(body)
        return await stream.read_all()

    try:
        response = await asyncio.wait_for(exchange(), timeout)
    except TimeoutError as exc:
        await stream.close(p.CLOSE_TIMEOUT, "no answer in time")
        raise ClusterUnavailable(cluster.name, f"did not answer within {timeout:g} s") from exc
    if stream.close_code not in (None, p.CLOSE_NORMAL):
        raise ClusterUnavailable(cluster.name, "dropped the request")
    try:
        return p.decode_rpc_response(response)
    except p.RpcError as exc:
        raise domain_error(exc) from exc
    except p.ProtocolError as exc:
        logger.warning("cluster %s: malformed RPC response to %s: %s", cluster, method, exc)
        raise ClusterUnavailable(cluster.name, "sent a malformed answer") from exc


class AgentControlPlane(ControlPlane):
    """RPC over the tunnel; synchronous facade for services and views."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout if timeout is not None else settings.AGENT_RPC_TIMEOUT

    def _call(self, cluster: Cluster, method: str, params: dict[str, Any]) -> Any:
        return async_to_sync(rpc)(cluster, method, params, self.timeout)

    def _env(self, cluster: Cluster, method: str, params: dict[str, Any]) -> Environment:
        return Environment.from_agent(cluster.name, self._call(cluster, method, params))

    def list_environments(self, clusters, selector: dict[str, str]) -> ListResult:
        return async_to_sync(self._list_all)(list(clusters), selector)

    async def _list_all(self, clusters: list[Cluster], selector: dict[str, str]) -> ListResult:
        results = await asyncio.gather(
            *(
                rpc(cluster, "environments.list", {"selector": selector}, self.timeout)
                for cluster in clusters
            ),
            return_exceptions=True,
        )
        environments: list[Environment] = []
        unreachable: list[str] = []
        for cluster, result in zip(clusters, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, ApplicationError):
                    logger.error("listing cluster %s failed", cluster, exc_info=result)
                unreachable.append(cluster.name)
                continue
            environments.extend(Environment.from_agent(cluster.name, e) for e in result)
        return ListResult(environments, unreachable)

    def get(self, cluster, environment_id: str) -> Environment:
        return self._env(cluster, "environments.get", {"id": environment_id})

    def create(self, cluster, *, spec, metadata, secret_env) -> Environment:
        params = {"spec": spec, "metadata": metadata, "secret_env": secret_env}
        return self._env(cluster, "environments.create", params)

    def start(self, cluster, environment_id: str, *, secret_env) -> Environment:
        params = {"id": environment_id, "secret_env": secret_env}
        return self._env(cluster, "environments.start", params)

    def stop(self, cluster, environment_id: str) -> Environment:
        return self._env(cluster, "environments.stop", {"id": environment_id})

    def restart(self, cluster, environment_id: str, *, secret_env) -> Environment:
        params = {"id": environment_id, "secret_env": secret_env}
        return self._env(cluster, "environments.restart", params)

    def delete(self, cluster, environment_id: str) -> None:
        self._call(cluster, "environments.delete", {"id": environment_id})

    def logs(self, cluster, environment_id: str, *, tail: int) -> list[str]:
        result = self._call(cluster, "environments.logs", {"id": environment_id, "tail": tail})
        return list(result.get("lines", [])) if isinstance(result, dict) else []

    def set_metadata(self, cluster, environment_id: str, metadata) -> Environment:
        params = {"id": environment_id, "metadata": metadata}
        return self._env(cluster, "environments.set_metadata", params)

    def upgrade(self, cluster, environment_id: str, *, spec, secret_env) -> Environment:
        params = {"id": environment_id, "spec": spec, "secret_env": secret_env}
        return self._env(cluster, "environments.upgrade", params)

    def files_list(self, cluster, environment_id: str, *, path: str) -> DirectoryListing:
        result = self._call(cluster, "files.list", {"id": environment_id, "path": path})
        return DirectoryListing.from_agent(result)

    def file_read(self, cluster, environment_id: str, *, path: str) -> FileContent:
        result = self._call(cluster, "files.read", {"id": environment_id, "path": path})
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
        params = {"id": environment_id, "path": path, "base_version": base_version}
        body = content.encode("utf-8")
        result = async_to_sync(rpc)(cluster, "files.write", params, self.timeout, body=body)
        return FileVersion.from_agent(result)

    def file_rename(
        self, cluster, environment_id: str, *, source: str, target: str, overwrite: bool
    ) -> FileEntry:
        params = {"id": environment_id, "from": source, "to": target, "overwrite": overwrite}
        return FileEntry.from_agent(self._call(cluster, "files.rename", params))

    def file_delete(self, cluster, environment_id: str, *, path: str, recursive: bool) -> None:
        params = {"id": environment_id, "path": path, "recursive": recursive}
        self._call(cluster, "files.delete", params)
