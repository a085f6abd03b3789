"""Writes of the security centre: firewall rules and events, connection records.

Relay consumers call `firewall_check` before accepting a connection and
`connection_open/close` around it; admins end live sessions with `connection_terminate`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from security_center.choices import ConnectionKind, FirewallAction
from security_center.models import (
    ConnectionSession,
    FirewallEvent,
    FirewallRule,
)

logger = logging.getLogger(__name__)

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
        # A placeholder stored for an unparseable address: never bound to.
        return "0.0.0.0"  # noqa: S104  # nosec B104


def firewall_rule_set_enabled(
    *, rule: FirewallRule, enabled: bool, actor: User | None
) -> FirewallRule:
    """Enable or disable a rule (audited); live sessions it now denies end at once."""
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
        firewall_enforce(actor=actor)
    return rule


def firewall_rule_save(
    *, rule: FirewallRule, actor: User | None, changed: list[str] | None = None
) -> FirewallRule:
    """Create or update a rule after full validation (audited); live sessions the rules
    now deny end at once (`firewall_enforce`)."""
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
        firewall_enforce(actor=actor)
    return rule


def firewall_rule_delete(*, rule: FirewallRule, actor: User | None) -> None:
    """Delete a rule (audited); deleting an allow rule can deny live sessions, which end."""
    with transaction.atomic():
        audit_record(
            action="firewall_rule.delete",
            actor=actor,
            target_type="firewall_rule",
            target_id=rule.pk,
            details={"cidr": rule.cidr, "action": rule.action, "priority": rule.priority},
        )
        rule.delete()
        firewall_enforce(actor=actor)


def firewall_enforce(*, actor: User | None) -> int:
    """End every live terminal and preview session whose client address the current rules
    deny: each gets a `FirewallEvent` and is closed with reason `firewall_denied`
    (audited, its consumer told after commit, as `connection_terminate` does). Runs in the
    caller's transaction, after a rule change; returns how many sessions it ended."""
    rules = list(FirewallRule.objects.filter(enabled=True).order_by("priority"))
    if not any(rule.action == FirewallAction.DENY for rule in rules):
        return 0  # nothing is denied: every open session stays
    ended = 0
    for session in ConnectionSession.objects.filter(ended_at__isnull=True):
        decision = firewall_evaluate(session.ip, rules)
        if decision.allowed:
            continue
        FirewallEvent.objects.create(
            ip=_storable_ip(session.ip),
            rule=decision.rule,
            rule_summary=str(decision.rule) if decision.rule else "not an IP address",
            kind=session.kind,
            user_email=session.email,
            environment_id=session.environment_id,
        )
        ended += _terminate(session=session, reason=FIREWALL_DENIED, actor=actor, ip=None)
    return ended


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
MEMBER_SUSPENDED = "member_suspended"
FIREWALL_DENIED = "firewall_denied"
TERMINATE_MESSAGE = {"type": "connection.terminate"}
"""Channel-layer message the consumer holding a session receives when it is ended for it;
its `reason` is `TERMINATED_BY_ADMIN`, `MEMBER_SUSPENDED` or `FIREWALL_DENIED`."""


def connection_terminate(
    *, session: ConnectionSession, actor: User | None, ip: str | None = None
) -> bool:
    """End a live terminal or preview session on an admin's behalf (audited).

    The row is closed with reason `terminated_by_admin` and an audit entry is written in
    one transaction; once committed, the consumer holding the connection is told through
    the channel layer (`connection.terminate`) and closes the browser's socket with a
    message. Returns False — and changes, audits and sends nothing — when the session had
    already ended. A consumer that cannot be reached (its process is gone) leaves the row
    closed all the same.
    """
    with transaction.atomic():
        ended = _terminate(session=session, reason=TERMINATED_BY_ADMIN, actor=actor, ip=ip)
    if ended:
        session.refresh_from_db()
    return ended


def connections_end_for_member(*, user_id: int, actor: User | None) -> int:
    """End every live terminal and preview session of a member being suspended.

    Each open row is closed with reason `member_suspended` and audited
    (`connection.terminate`) in the caller's transaction; once it commits, each holding
    consumer is told as `connection_terminate` tells it. Registered as the accounts'
    access ender (`accounts.access`); returns how many sessions it ended.
    """
    ended = 0
    with transaction.atomic():
        for session in ConnectionSession.objects.filter(user_id=user_id, ended_at__isnull=True):
            ended += _terminate(session=session, reason=MEMBER_SUSPENDED, actor=actor, ip=None)
    return ended


def _terminate(
    *, session: ConnectionSession, reason: str, actor: User | None, ip: str | None
) -> bool:
    if not connection_close(session_id=session.pk, reason=reason):
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
            "reason": reason,
        },
    )
    channel_name = session.channel_name
    if channel_name:
        transaction.on_commit(lambda: _notify_consumer(channel_name, reason))
    return True


def _notify_consumer(channel_name: str, reason: str) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        logger.warning("no channel layer: cannot reach the consumer of %s", channel_name)
        return
    try:
        async_to_sync(layer.send)(channel_name, {**TERMINATE_MESSAGE, "reason": reason})
    except Exception:
        logger.exception("could not tell %s to end its session", channel_name)
