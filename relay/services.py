"""Writes of clusters and tickets."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from relay.choices import TicketKind
from relay.models import Cluster, Ticket, hash_secret
from security_center.services import audit_record

TICKET_TTL = timedelta(seconds=30)


def cluster_create(*, name: str, description: str = "", actor) -> tuple[Cluster, str]:
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


def cluster_rotate_token(*, cluster: Cluster, actor) -> str:
    """Replace a cluster's agent token; the old one stops working at its next connection."""
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


def cluster_update(*, cluster: Cluster, description: str, actor) -> Cluster:
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


def ticket_issue(
    *,
    kind: str,
    user,
    environment_id: str,
    cluster: Cluster,
    port: int | None = None,
    client_ip: str | None = None,
) -> tuple[Ticket, str]:
    """A single-use ticket valid 30 s for (user, workspace, kind, port); returns the raw value."""
    raw = secrets.token_urlsafe(32)
    ticket = Ticket.objects.create(
        kind=kind,
        token_hash=hash_secret(raw),
        user=user,
        environment_id=environment_id,
        cluster=cluster,
        port=port,
        expires_at=timezone.now() + TICKET_TTL,
        client_ip=client_ip,
    )
    return ticket, raw


def ticket_redeem(
    *, raw: str, kind: str, environment_id: str | None = None, port: int | None = None
) -> Ticket | None:
    """Consume a ticket: exactly one caller wins, however many race for the same value.

    One conditional UPDATE (`used_at IS NULL AND expires_at > now`) decides; the loser,
    an expired, reused, unknown or mismatched ticket all get None.
    """
    if not raw or len(raw) > 200:
        return None
    if kind == TicketKind.PREVIEW and port is None:
        return None  # a preview ticket only ever opens the port it was issued for
    filters = {"token_hash": hash_secret(raw), "kind": kind}
    if environment_id is not None:
        filters["environment_id"] = environment_id
    if port is not None:
        filters["port"] = port
    now = timezone.now()
    won = Ticket.objects.filter(used_at__isnull=True, expires_at__gt=now, **filters).update(
        used_at=now
    )
    if not won:
        return None
    return Ticket.objects.select_related("user", "cluster").get(token_hash=filters["token_hash"])


def tickets_purge(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete tickets that expired more than `older_than` ago; returns how many."""
    deleted, _ = Ticket.objects.filter(expires_at__lt=timezone.now() - older_than).delete()
    return deleted


def cluster_delete(*, cluster: Cluster, actor) -> None:
    """Delete a cluster no blueprint or publish request refers to (audited).

    Refuses with 409 `cluster_in_use` while anything still points at it; the agent's
    token dies with the row.
    """
    from django.db.models import ProtectedError

    from portal.errors import ApplicationError

    in_use = ApplicationError(
        "Blueprints or publish requests still use this cluster.", code="cluster_in_use", status=409
    )
    if cluster.blueprints.exists():
        raise in_use
    try:
        with transaction.atomic():
            audit_record(
                action="cluster.delete", actor=actor, target_type="cluster", target_id=cluster.name
            )
            cluster.delete()
    except ProtectedError as exc:
        raise in_use from exc
