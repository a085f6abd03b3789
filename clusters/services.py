"""Writes of clusters and their agents' tunnels.

Admins register, describe, rotate and delete clusters (each audited); the relay's
tunnel consumer records an agent's tunnel through `tunnel_claim`, `tunnel_hello`,
`tunnel_touch` and `tunnel_release`, each one conditional UPDATE so that two portal
processes racing for the same cluster can never both believe they hold it.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from clusters.models import Cluster
from core.errors import ApplicationError


def cluster_create(*, name: str, description: str = "", actor: User | None) -> tuple[Cluster, str]:
    """Register a cluster; return it with its agent token, which is never shown again."""
    raw, prefix, digest = Cluster.generate_token()
    cluster = Cluster(name=name, description=description, token_prefix=prefix, token_hash=digest)
    cluster.full_clean()
    with transaction.atomic():
        cluster.save()
        audit_record(
            action="cluster.create", actor=actor, target_type="cluster", target_id=cluster.name
        )
    return cluster, raw


def cluster_rotate_token(*, cluster: Cluster, actor: User | None) -> str:
    """Replace a cluster's agent token (audited); the old one stops working at its next
    connection."""
    raw, prefix, digest = Cluster.generate_token()
    with transaction.atomic():
        Cluster.objects.filter(pk=cluster.pk).update(token_hash=digest, token_prefix=prefix)
        cluster.token_hash, cluster.token_prefix = digest, prefix
        audit_record(
            action="cluster.rotate_token",
            actor=actor,
            target_type="cluster",
            target_id=cluster.name,
        )
    return raw


def cluster_update(*, cluster: Cluster, description: str, actor: User | None) -> Cluster:
    """Change a cluster's description (audited). Its name is its identity and stays fixed."""
    cluster.description = description
    cluster.full_clean()
    with transaction.atomic():
        Cluster.objects.filter(pk=cluster.pk).update(description=description)
        audit_record(
            action="cluster.update",
            actor=actor,
            target_type="cluster",
            target_id=cluster.name,
            details={"changed": ["description"]},
        )
    return cluster


def cluster_delete(*, cluster: Cluster, actor: User | None) -> None:
    """Delete a cluster no blueprint or publish request refers to (audited).

    Refuses with 409 `cluster_in_use` while anything still points at it (every such
    reference is a protecting foreign key, so the refusal needs no knowledge of the apps
    above this one); the agent's token dies with the row.
    """
    in_use = ApplicationError(
        "Blueprints or publish requests still use this cluster.", code="cluster_in_use", status=409
    )
    try:
        with transaction.atomic():
            audit_record(
                action="cluster.delete", actor=actor, target_type="cluster", target_id=cluster.name
            )
            cluster.delete()
    except ProtectedError as exc:
        raise in_use from exc


# --- the agent's tunnel (called by the relay's tunnel consumer) ------------------------------


def tunnel_claim(*, cluster_id: int, channel_name: str) -> str:
    """Record `channel_name` as the cluster's tunnel; return the channel it replaced.

    A compare-and-swap: one conditional UPDATE replaces exactly the holder that was read
    (and retries if another claim got in between), so of any number of concurrent
    claims each replaces exactly one predecessor and the last one holds the tunnel.
    """
    rows = Cluster.objects.filter(pk=cluster_id)
    while True:
        previous = rows.values_list("tunnel_channel", flat=True).first()
        if previous is None:
            return ""  # the cluster was deleted meanwhile
        now = timezone.now()
        if rows.filter(tunnel_channel=previous).update(
            tunnel_channel=channel_name, connected_at=now, last_seen_at=now
        ):
            return previous


def tunnel_hello(*, cluster_id: int, version: str, runtime: str) -> None:
    """Store what the agent said of itself in its `hello`."""
    Cluster.objects.filter(pk=cluster_id).update(
        agent_version=version[:40], runtime=runtime[:20], last_seen_at=timezone.now()
    )


def tunnel_touch(*, cluster_id: int, channel_name: str) -> None:
    """The agent was heard from (only while this channel still holds the tunnel)."""
    Cluster.objects.filter(pk=cluster_id, tunnel_channel=channel_name).update(
        last_seen_at=timezone.now()
    )


def tunnel_release(*, cluster_id: int, channel_name: str) -> None:
    """Forget the tunnel, unless a newer channel has claimed it meanwhile."""
    Cluster.objects.filter(pk=cluster_id, tunnel_channel=channel_name).update(tunnel_channel="")
