"""Reads of clusters."""

from __future__ import annotations

from clusters.models import Cluster
from core.crypto import hash_secret


def cluster_for_token(raw_token: str) -> Cluster | None:
    """The cluster whose agent token is `raw_token` (looked up by hash), or None."""
    if not raw_token:
        return None
    return Cluster.objects.filter(token_hash=hash_secret(raw_token)).first()


def cluster_still_holds(*, cluster_id: int, token_hash: str) -> bool:
    """Whether the cluster exists and still has the token its tunnel was opened with."""
    return Cluster.objects.filter(pk=cluster_id, token_hash=token_hash).exists()
