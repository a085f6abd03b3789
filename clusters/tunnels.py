"""How a cluster's live tunnel is ended when its credential goes: a closer the relay registers.

Rotating a cluster's agent token or deleting the cluster must end the agent's tunnel at
once, in whichever portal process holds it, but tunnels belong to the relay, above this
app. So the relay registers its closer here in `RelayConfig.ready()` and this app never
imports it; `clusters.services` calls `tunnel_close` once the revoking transaction has
committed. Without a closer nothing is sent, and the tunnel consumer's own credential
check (on connect and at every heartbeat touch) still ends the tunnel soon after.
"""

from __future__ import annotations

from collections.abc import Callable

TunnelCloser = Callable[..., None]
"""`closer(cluster_id=…, tunnel_channel=…, reason=…)`, from synchronous code; logs its
failures instead of raising them (the revoking change has committed already)."""

_closer: TunnelCloser | None = None


def register_tunnel_closer(closer: TunnelCloser) -> None:
    """Install the transport's closer (the relay does, once per process)."""
    global _closer
    _closer = closer


def tunnel_close(*, cluster_id: int, tunnel_channel: str, reason: str) -> None:
    """Ask whoever holds the cluster's tunnel to close it for `reason`
    (a `clusters.choices.TunnelCloseReason`)."""
    if _closer is not None:
        _closer(cluster_id=cluster_id, tunnel_channel=tunnel_channel, reason=reason)
