"""Writes and checks of the audit log.

Every app records its operations through `audit_record`; `audit_verify_chain` walks the
chain (`manage.py verify_audit_chain`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.choices import AuditOutcome
from audit.context import current_ip
from audit.models import AuditEvent

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
# An arbitrary constant naming the audit chain's PostgreSQL advisory lock.
AUDIT_LOCK_KEY = 0x656E636C


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
    actor: AbstractBaseUser | None = None,
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
    if ip is None:
        ip = current_ip()  # the request's client, e.g. the admin making a change
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
