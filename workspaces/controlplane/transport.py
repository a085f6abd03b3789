"""How the control plane reaches an agent: a stream opener that the transport registers.

`AgentControlPlane` speaks RPC over a stream to a cluster's agent, but the streams and
the tunnel belong to the relay, which sits above this app. So the relay registers its
`open_stream` here in `AppConfig.ready()` and this app never imports it. Until an opener
is registered every call fails with `TunnelUnavailable`, which the control plane turns
into 503 `cluster_unavailable` like any unreachable agent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class TunnelUnavailable(Exception):
    """No live tunnel for the cluster (agent not connected, or its portal process gone)."""


class Stream(Protocol):
    """What the control plane needs of a stream (`agent.multiplex.Stream` and the relay's
    cross-process stream both are one)."""

    close_code: int | None

    async def read_all(self) -> bytes: ...
    async def write(self, data: bytes) -> None: ...
    async def close(self, code: int = 0, reason: str = "") -> None: ...


StreamOpener = Callable[..., Awaitable[Stream]]
"""`await opener(cluster_id=…, tunnel_channel=…, request={…})`; raises TunnelUnavailable."""

_opener: StreamOpener | None = None


def register_stream_opener(opener: StreamOpener) -> None:
    """Install the transport (the relay does, once per process)."""
    global _opener
    _opener = opener


async def open_stream(*, cluster_id: int, tunnel_channel: str, request: dict[str, Any]) -> Stream:
    """A stream to the cluster's agent through the registered transport."""
    if _opener is None:
        raise TunnelUnavailable("no transport to the agents is installed")
    return await _opener(cluster_id=cluster_id, tunnel_channel=tunnel_channel, request=request)
