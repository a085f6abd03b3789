"""Writes and checks of the audit log.

Every app records its operations through `audit_record`; `audit_verify_chain` walks the
chain (`manage.py verify_audit_chain`). Each entry's link is an HMAC-SHA256 under a key
that is not in the database (`audit.keys`), so nobody with the database alone can edit
an entry and recompute the chain after it. Cutting entries off the tail leaves a valid
chain, which is why every append logs the chain head (``audit chain head SEQ HASH``,
logger ``audit.head``) and the portal logs it again every minute: a head kept outside
the database (the log stream) proves what the tail was (`verify_audit_chain --head`).
"""

from __future__ import annotations

import hmac
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
from audit.keys import chain_keys
from audit.models import AuditEvent

logger = logging.getLogger(__name__)
head_logger = logging.getLogger("audit.head")

GENESIS_HASH = "0" * 64
# An arbitrary constant naming the audit chain's PostgreSQL advisory lock.
AUDIT_LOCK_KEY = 0x656E636C


class UnknownKey(Exception):
    """An entry names a key id that is not (any more) configured."""


def _entry_digest(
    *,
    key_id: str,
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
    keys, _ = chain_keys()
    if key_id not in keys:
        raise UnknownKey(key_id)
    payload = json.dumps(
        {
            "key": key_id,
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
    return hmac.new(keys[key_id], payload.encode(), "sha256").hexdigest()


def entry_hash(event: AuditEvent) -> str:
    """The link an audit entry must carry given its stored content (raises `UnknownKey`)."""
    return _entry_digest(
        key_id=event.key_id,
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
    _, key_id = chain_keys()
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
                    key_id=key_id,
                )
                event.hash = entry_hash(event)
                event.save(force_insert=True)
                transaction.on_commit(lambda e=event: publish_head(e.id, e.hash))
                return event
        except IntegrityError:
            logger.info("audit chain moved under us; retrying append of %s", action)
    raise RuntimeError("could not append to the audit chain after 5 attempts")


@dataclass(frozen=True)
class ChainBreak:
    """Where the audit chain stops verifying, and why."""

    event_id: int
    reason: str


class ChainBroken(Exception):
    """The chain does not verify: it is not re-linked (that would launder the break)."""

    def __init__(self, broken: ChainBreak) -> None:
        super().__init__(f"audit chain broken at entry #{broken.event_id}: {broken.reason}")
        self.broken = broken


def audit_relink() -> int:
    """After a key rotation: verify the whole chain under every configured key, then
    re-link it under the current one, so the old key can be dropped. Returns how many
    entries were re-linked (0 when all are current). Heads published before it no longer
    match: the new head is published at once. Raises `ChainBroken` and changes nothing
    when the chain does not verify."""
    _, current = chain_keys()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])
        broken = audit_verify_chain()
        if broken is not None:
            raise ChainBroken(broken)
        events = list(AuditEvent.objects.order_by("id"))
        if all(event.key_id == current for event in events):
            return 0
        for event in events:  # park every link first: the columns are unique
            AuditEvent.objects.filter(pk=event.pk).update(
                prev_hash=f"relink-p-{event.pk}", hash=f"relink-h-{event.pk}"
            )
        prev = GENESIS_HASH
        for event in events:
            event.key_id, event.prev_hash = current, prev
            event.hash = entry_hash(event)
            AuditEvent.objects.filter(pk=event.pk).update(
                key_id=current, prev_hash=prev, hash=event.hash
            )
            prev = event.hash
        last = events[-1]
        transaction.on_commit(lambda: publish_head(last.id, last.hash))
    return len(events)


def publish_head(sequence: int, digest: str) -> None:
    """Write the chain head to the log stream, which lives outside the database."""
    head_logger.info("audit chain head %d %s", sequence, digest)


def audit_publish_head() -> AuditEvent | None:
    """Log the current head (the portal does so every minute); None on an empty log."""
    head = AuditEvent.objects.order_by("-id").only("id", "hash").first()
    if head is not None:
        publish_head(head.id, head.hash)
    return head


def audit_verify_chain(
    events: Iterable[AuditEvent] | None = None, *, head: tuple[int, str] | None = None
) -> ChainBreak | None:
    """Walk the chain oldest first; return the first broken entry, or None when intact.

    Detects an altered row (its HMAC no longer matches its content, or names a key that
    is not configured), a removed row (the next entry's `prev_hash` no longer names its
    predecessor) and a chain recomputed without the key. With ``head`` (a sequence and
    hash published earlier, e.g. read from the log stream), also a cut tail or a
    rewritten chain: that entry must still be there, with that hash.
    """
    if events is None:
        events = AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
    expected_prev = GENESIS_HASH
    seen_head = False
    for event in events:
        if event.prev_hash != expected_prev:
            return ChainBreak(event.id, "previous entry is missing or was altered")
        try:
            digest = entry_hash(event)
        except UnknownKey:
            return ChainBreak(
                event.id, f"signed with key {event.key_id!r}, which is not configured"
            )
        if not hmac.compare_digest(digest, event.hash):
            return ChainBreak(event.id, "entry content was altered")
        if head is not None and event.id == head[0]:
            if event.hash != head[1]:
                return ChainBreak(event.id, "differs from the published head (rewritten)")
            seen_head = True
        expected_prev = event.hash
    if head is not None and not seen_head:
        return ChainBreak(head[0], "the published head is missing (the log was cut)")
    return None
