"""Reads of clusters."""

from __future__ import annotations

from agent.protocol import SANDBOX_NONE
from clusters.choices import TunnelCloseReason
from clusters.models import Cluster
from core.crypto import hash_secret


def cluster_for_token(raw_token: str) -> Cluster | None:
    """The cluster whose agent token is `raw_token` (looked up by hash), or None."""
    if not raw_token:
        return None
    return Cluster.objects.filter(token_hash=hash_secret(raw_token)).first()


def cluster_token_revocation(*, cluster_id: int, token_hash: str) -> str:
    """Why a tunnel opened with `token_hash` may no longer run: `cluster_deleted`,
    `token_rotated` (a `TunnelCloseReason`), or "" while the cluster still has that token."""
    current = Cluster.objects.filter(pk=cluster_id).values_list("token_hash", flat=True).first()
    if current is None:
        return TunnelCloseReason.CLUSTER_DELETED.value
    return "" if current == token_hash else TunnelCloseReason.TOKEN_ROTATED.value


def clusters_not_isolated() -> set[str]:
    """Names of the clusters whose agent reported workspaces without a sandbox."""
    return set(
        Cluster.objects.filter(isolation__sandbox=SANDBOX_NONE).values_list("name", flat=True)
    )
