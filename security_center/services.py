"""Writes of the security centre: audit log, firewall, connection records.

Every other app records its operations through `audit_record`; relay consumers call
`firewall_check` before accepting a connection and `connection_open/close` around it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from security_center.choices import AuditOutcome, ConnectionKind, FirewallAction
from security_center.models import (
    AuditEvent,
    ConnectionSession,
    FirewallEvent,
    FirewallRule,
)

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
# An arbitrary constant naming the audit chain's PostgreSQL advisory lock.
AUDIT_LOCK_KEY = 0x656E636C


# --- audit log -----------------------------------------------------------------------------


def _entry_digest(
    *,
    prev_hash: str,
    created_at: datetime,
    actor_id: int | None,
    actor_email: str,
    action: str,
    target_type: str,
    target_id: str,
    ip: str | None,
    outcome: str,
    details: dict,
) -> str:
    payload = json.dumps(
        {
            "prev": prev_hash,
            "at": created_at.isoformat(timespec="microseconds"),
            "actor": actor_id,
            "email": actor_email,
            "action": action,
            "type": target_type,
            "id": target_id,
            "ip": ip,
            "outcome": outcome,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def entry_hash(event: AuditEvent) -> str:
    """The hash an audit entry must carry given its stored content."""
    return _entry_digest(
        prev_hash=event.prev_hash,
        created_at=event.created_at,
        actor_id=event.actor_id,
        actor_email=event.actor_email,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        ip=event.ip,
        outcome=event.outcome,
        details=event.details,
    )


def audit_record(
    *,
    action: str,
    actor=None,
    target_type: str = "",
    target_id: str | int = "",
    ip: str | None = None,
    outcome: str = AuditOutcome.SUCCESS,
    details: dict | None = None,
) -> AuditEvent:
    """Append one entry to the audit log, chained to the previous one.

    Safe under concurrency: the chain is extended under a lock (PostgreSQL advisory
    lock; SQLite serialises writers) and `prev_hash` is unique, so a lost race retries
    instead of forking the chain. Runs inside the caller's transaction when there is one,
    so an entry exists exactly when the audited change does. `details` must hold no
    secret.
    """
    details = json.loads(json.dumps(details or {}, default=str))
    # Hash the address as the column stores it (IPv6 is canonicalised on save).
    ip = AuditEvent._meta.get_field("ip").get_prep_value(ip) or None
    actor_id = actor.pk if actor is not None and actor.is_authenticated else None
    actor_email = actor.email if actor_id else ""
    for _attempt in range(5):
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])
                last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
                prev_hash = last or GENESIS_HASH
                created_at = timezone.now()
                event = AuditEvent(
                    actor_id=actor_id,
                    actor_email=actor_email,
                    action=action,
                    target_type=target_type,
                    target_id=str(target_id),
                    ip=ip,
                    outcome=outcome,
                    details=details,
                    created_at=created_at,
                    prev_hash=prev_hash,
                )
                event.hash = entry_hash(event)
                event.save(force_insert=True)
                return event
        except IntegrityError:
            logger.info("audit chain moved under us; retrying append of %s", action)
    raise RuntimeError("could not append to the audit chain after 5 attempts")


@dataclass(frozen=True)
class ChainBreak:
    """Where the audit chain stops verifying, and why."""

    event_id: int
    reason: str


def audit_verify_chain(events: Iterable[AuditEvent] | None = None) -> ChainBreak | None:
    """Walk the chain oldest first; return the first broken entry, or None when intact.

    Detects an altered row (its hash no longer matches its content) and a removed row
    (the next entry's `prev_hash` no longer names its predecessor).
    """
    if events is None:
        events = AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
    expected_prev = GENESIS_HASH
    for event in events:
        if event.prev_hash != expected_prev:
            return ChainBreak(event.id, "previous entry is missing or was altered")
        if entry_hash(event) != event.hash:
            return ChainBreak(event.id, "entry content was altered")
        expected_prev = event.hash
    return None


# --- firewall ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirewallDecision:
    allowed: bool
    rule: FirewallRule | None


def firewall_evaluate(ip: str, rules: Iterable[FirewallRule] | None = None) -> FirewallDecision:
    """Decide whether `ip` may connect: enabled rules by priority, first match wins.

    No matching rule allows. An address that is not an IP at all is denied (the socket
    never gives one, so it can only come from a bad proxy header).
    """
    try:
        address = ipaddress.ip_address(ip.strip().split("%", 1)[0])
    except (ValueError, AttributeError):
        return FirewallDecision(False, None)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if rules is None:
        rules = FirewallRule.objects.filter(enabled=True).order_by("priority")
    for rule in rules:
        if not rule.enabled:
            continue
        network = rule.network
        if address.version == network.version and address in network:
            return FirewallDecision(rule.action == FirewallAction.ALLOW, rule)
    return FirewallDecision(True, None)


def firewall_check(
    *, ip: str, kind: str, user_email: str = "", environment_id: str = ""
) -> FirewallDecision:
    """`firewall_evaluate` plus a `FirewallEvent` row when the connection is blocked."""
    decision = firewall_evaluate(ip)
    if not decision.allowed:
        rule = decision.rule
        FirewallEvent.objects.create(
            ip=_storable_ip(ip),
            rule=rule,
            rule_summary=str(rule) if rule else "not an IP address",
            kind=kind,
            user_email=user_email,
            environment_id=environment_id,
        )
    return decision


def _storable_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return "0.0.0.0"  # noqa: S104 - placeholder for an unparseable address, never bound


def firewall_rule_set_enabled(*, rule: FirewallRule, enabled: bool, actor) -> FirewallRule:
    """Enable or disable a rule (audited)."""
    with transaction.atomic():
        FirewallRule.objects.filter(pk=rule.pk).update(enabled=enabled, updated_at=timezone.now())
        rule.enabled = enabled
        audit_record(
            action="firewall_rule.enable" if enabled else "firewall_rule.disable",
            actor=actor,
            target_type="firewall_rule",
            target_id=rule.pk,
            details={"cidr": rule.cidr, "action": rule.action, "priority": rule.priority},
        )
    return rule


def firewall_rule_save(
    *, rule: FirewallRule, actor, changed: list[str] | None = None
) -> FirewallRule:
    """Create or update a rule after full validation (audited)."""
    creating = rule.pk is None
    rule.full_clean()
    with transaction.atomic():
        if creating and actor is not None and actor.is_authenticated:
            rule.created_by = actor
        rule.save()
        audit_record(
            action="firewall_rule.create" if creating else "firewall_rule.update",
            actor=actor,
            target_type="firewall_rule",
            target_id=rule.pk,
            details={
                "cidr": rule.cidr,
                "action": rule.action,
                "priority": rule.priority,
                "enabled": rule.enabled,
                "changed": changed or [],
            },
        )
    return rule


def firewall_rule_delete(*, rule: FirewallRule, actor) -> None:
    """Delete a rule (audited)."""
    with transaction.atomic():
        audit_record(
            action="firewall_rule.delete",
            actor=actor,
            target_type="firewall_rule",
            target_id=rule.pk,
            details={"cidr": rule.cidr, "action": rule.action, "priority": rule.priority},
        )
        rule.delete()


# --- connections ---------------------------------------------------------------------------


def connection_open(
    *,
    user,
    ip: str,
    kind: str,
    environment_id: str,
    cluster=None,
    port: int | None = None,
    channel_name: str = "",
) -> ConnectionSession:
    """Record the start of a terminal or preview session."""
    if kind not in ConnectionKind.values:
        raise ValueError(f"unknown connection kind {kind!r}")
    now = timezone.now()
    return ConnectionSession.objects.create(
        user=user,
        email=user.email,
        ip=_storable_ip(ip),
        kind=kind,
        environment_id=environment_id,
        cluster=cluster,
        port=port,
        channel_name=channel_name,
        last_activity_at=now,
    )


def connection_add_traffic(
    *, session_id: int, bytes_in: int = 0, bytes_out: int = 0, requests: int = 0
) -> None:
    """Add traffic counters to a session (atomic increments; safe from many processes)."""
    ConnectionSession.objects.filter(pk=session_id).update(
        bytes_in=F("bytes_in") + bytes_in,
        bytes_out=F("bytes_out") + bytes_out,
        requests=F("requests") + requests,
        last_activity_at=timezone.now(),
    )


def connection_close(
    *, session_id: int, reason: str, bytes_in: int = 0, bytes_out: int = 0
) -> bool:
    """Mark a session ended with its reason and final counters; only the first close counts.

    Returns whether this call ended it (a second close — e.g. a consumer's disconnect
    after an admin already terminated it — changes nothing).
    """
    updated = ConnectionSession.objects.filter(pk=session_id, ended_at__isnull=True).update(
        ended_at=timezone.now(),
        close_reason=reason[:100],
        bytes_in=F("bytes_in") + bytes_in,
        bytes_out=F("bytes_out") + bytes_out,
    )
    return bool(updated)


def preview_sessions_end_idle(*, idle_for: timedelta, now: datetime | None = None) -> int:
    """End every open preview session with no activity for `idle_for`; returns how many.

    Activity is `last_activity_at` (the preview proxy refreshes it every few seconds while
    requests or WebSocket messages flow, and while a WebSocket stays open). Ended sessions
    get `close_reason="idle"`; their cookies stop working at the next request. Safe to
    run from many processes at once: each session is ended exactly once.
    """
    cutoff = (now or timezone.now()) - idle_for
    return ConnectionSession.objects.filter(
        kind=ConnectionKind.PREVIEW, ended_at__isnull=True, last_activity_at__lt=cutoff
    ).update(ended_at=now or timezone.now(), close_reason="idle")


TERMINATED_BY_ADMIN = "terminated_by_admin"
TERMINATE_MESSAGE = {"type": "connection.terminate"}
"""Channel-layer message the consumer holding a session receives when an admin ends it."""


def connection_terminate(*, session: ConnectionSession, actor, ip: str | None = None) -> bool:
    """End a live terminal or preview session on an admin's behalf (audited).

    The row is closed with reason `terminated_by_admin` and an audit entry is written in
    one transaction; once committed, the consumer holding the connection is told through
    the channel layer (`connection.terminate`) and closes the browser's socket with a
    message. Returns False — and changes, audits and sends nothing — when the session had
    already ended. A consumer that cannot be reached (its process is gone) leaves the row
    closed all the same.
    """
    with transaction.atomic():
        if not connection_close(session_id=session.pk, reason=TERMINATED_BY_ADMIN):
            return False
        audit_record(
            action="connection.terminate",
            actor=actor,
            target_type="connection",
            target_id=session.pk,
            ip=ip,
            details={
                "kind": session.kind,
                "email": session.email,
                "environment_id": session.environment_id,
            },
        )
        channel_name = session.channel_name
        if channel_name:
            transaction.on_commit(lambda: _notify_consumer(channel_name))
    session.refresh_from_db()
    return True


def _notify_consumer(channel_name: str) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        logger.warning("no channel layer: cannot reach the consumer of %s", channel_name)
        return
    try:
        async_to_sync(layer.send)(channel_name, dict(TERMINATE_MESSAGE))
    except Exception:
        logger.exception("could not tell %s to end its session", channel_name)
