"""Writes of clusters and their agents' tunnels.

Admins register, describe, rotate and delete clusters (each audited); rotating a token
or deleting a cluster also ends the agent's live tunnel once the change has committed
(`clusters.tunnels`). The relay's tunnel consumer records an agent's tunnel through
`tunnel_claim`, `tunnel_hello`, `tunnel_touch` and `tunnel_release`, each one
conditional UPDATE so that two portal processes racing for the same cluster can never
both believe they hold it, and audits a tunnel it ended through `tunnel_closed`.
"""

from __future__ import annotations

import functools

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts.models import User
from agent.protocol import known_isolation
from audit.services import audit_record
from clusters.choices import TunnelCloseReason
from clusters.models import Cluster
from clusters.tunnels import tunnel_close
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
    """Replace a cluster's agent token (audited) and return the new one, shown once.

    The old token is refused from the commit on, and the agent's live tunnel, in
    whichever portal process holds it, is closed right after the commit
    (`TUNNEL_CLOSE_REVOKED`, audited by the relay as `cluster.tunnel_closed`).
    """
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
        _close_tunnel_on_commit(cluster.pk, TunnelCloseReason.TOKEN_ROTATED)
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
    above this one); the agent's token dies with the row, and its live tunnel is closed
    right after the commit (`TUNNEL_CLOSE_REVOKED`, audited as `cluster.tunnel_closed`).
    """
    in_use = ApplicationError(
        "Blueprints or publish requests still use this cluster.", code="cluster_in_use", status=409
    )
    try:
        with transaction.atomic():
            audit_record(
                action="cluster.delete", actor=actor, target_type="cluster", target_id=cluster.name
            )
            _close_tunnel_on_commit(cluster.pk, TunnelCloseReason.CLUSTER_DELETED)
            cluster.delete()
    except ProtectedError as exc:
        raise in_use from exc


def _close_tunnel_on_commit(cluster_id: int, reason: TunnelCloseReason) -> None:
    """Once the revoking transaction commits, close the tunnel recorded now.

    The row is locked first, so a tunnel claimed concurrently is claimed either before
    (and named here) or after the commit (and its consumer, checking its credential once
    it holds the tunnel, finds it revoked): no tunnel escapes. A failure to reach the
    consumer is logged by the closer; `robust` keeps it from failing the committed change.
    """
    locked = Cluster.objects.select_for_update().filter(pk=cluster_id)
    tunnel_channel = locked.values_list("tunnel_channel", flat=True).first() or ""
    transaction.on_commit(
        functools.partial(
            tunnel_close, cluster_id=cluster_id, tunnel_channel=tunnel_channel, reason=reason.value
        ),
        robust=True,
    )


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


def tunnel_hello(*, cluster_id: int, version: str, runtime: str, isolation: object) -> None:
    """Store what the agent said of itself in its `hello`.

    Every field is bounded: version and runtime are truncated to their columns, and of
    `isolation` only the known mechanisms with known values are kept (anything else is
    dropped, so an agent that says nothing, or something new, is never shown isolated).
    """
    Cluster.objects.filter(pk=cluster_id).update(
        agent_version=version[:40],
        runtime=runtime[:20],
        isolation=known_isolation(isolation),
        last_seen_at=timezone.now(),
    )


def tunnel_touch(*, cluster_id: int, channel_name: str) -> None:
    """The agent was heard from (only while this channel still holds the tunnel)."""
    Cluster.objects.filter(pk=cluster_id, tunnel_channel=channel_name).update(
        last_seen_at=timezone.now()
    )


def tunnel_release(*, cluster_id: int, channel_name: str) -> None:
    """Forget the tunnel, unless a newer channel has claimed it meanwhile."""
    Cluster.objects.filter(pk=cluster_id, tunnel_channel=channel_name).update(tunnel_channel="")


def tunnel_closed(*, cluster_name: str, reason: str) -> None:
    """Audit that the relay ended the live tunnel of `cluster_name` because its credential
    was revoked (`reason`: a `TunnelCloseReason`). The cluster may be gone already."""
    audit_record(
        action="cluster.tunnel_closed",
        actor=None,
        target_type="cluster",
        target_id=cluster_name,
        details={"reason": reason},
    )
