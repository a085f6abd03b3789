"""The keyed audit chain: links nobody can recompute without the key, key rotation, and
truncation caught against a head published to the log stream."""

import base64
import hashlib
import io
import json
import logging

import pytest
from django.core.management import CommandError, call_command

from audit.keys import chain_keys
from audit.models import AuditEvent
from audit.services import audit_publish_head, audit_record, audit_verify_chain

pytestmark = pytest.mark.django_db

KEY_A = "a1:" + base64.b64encode(b"A" * 32).decode()
KEY_B = "b2:" + base64.b64encode(b"B" * 32).decode()


def verify(*args) -> str:
    out = io.StringIO()
    call_command("verify_audit_chain", *args, stdout=out)
    return out.getvalue()


def plain_sha256(event: AuditEvent) -> str:
    """What someone with only the database could compute for an entry."""
    payload = json.dumps(
        {
            "key": event.key_id,
            "prev": event.prev_hash,
            "at": event.created_at.isoformat(timespec="microseconds"),
            "actor": event.actor_id,
            "email": event.actor_email,
            "action": event.action,
            "type": event.target_type,
            "id": event.target_id,
            "ip": event.ip,
            "outcome": event.outcome,
            "details": event.details,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def test_an_entry_edited_and_relinked_without_the_key_is_detected():
    events = [audit_record(action=f"test.{i}") for i in range(4)]
    # The attacker edits entry 2 and recomputes every link after it, without the key.
    prev = events[1].hash
    for event in events[2:]:
        event.refresh_from_db()
        if event.pk == events[2].pk:
            event.details = {"forged": True}
        event.prev_hash = prev
        event.hash = plain_sha256(event)
        AuditEvent.objects.filter(pk=event.pk).update(
            details=event.details, prev_hash=event.prev_hash, hash=event.hash
        )
        prev = event.hash
    broken = audit_verify_chain()
    assert broken is not None and broken.event_id == events[2].pk
    assert broken.reason == "entry content was altered"


def test_links_are_keyed_by_the_last_configured_key_and_survive_rotation(settings):
    settings.PORTAL_ENCRYPTION_KEYS = [KEY_A]
    old = audit_record(action="before.rotation")
    assert old.key_id == "a1"
    settings.PORTAL_ENCRYPTION_KEYS = [KEY_A, KEY_B]  # rotated: b2 signs, a1 still verifies
    new = audit_record(action="after.rotation")
    assert new.key_id == "b2" and chain_keys()[1] == "b2"
    assert audit_verify_chain() is None
    settings.PORTAL_ENCRYPTION_KEYS = [KEY_B]  # the old key dropped too early
    broken = audit_verify_chain()
    assert broken is not None and broken.event_id == old.pk
    assert "key 'a1', which is not configured" in broken.reason


def test_a_cut_tail_is_caught_against_a_published_head(caplog, django_capture_on_commit_callbacks):
    with (
        caplog.at_level(logging.INFO, logger="audit.head"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        events = [audit_record(action=f"test.{i}") for i in range(5)]
    published = [r.getMessage() for r in caplog.records if r.name == "audit.head"]
    assert published[-1] == f"audit chain head {events[-1].pk} {events[-1].hash}"
    head = f"{events[-1].pk}:{events[-1].hash}"
    assert "intact (5 entries)" in verify("--head", head)

    AuditEvent.objects.filter(pk__in=[e.pk for e in events[3:]]).delete()
    assert audit_verify_chain() is None  # a shorter chain is still a valid chain …
    with pytest.raises(CommandError, match=rf"#{events[-1].pk}: the published head is missing"):
        verify("--head", head)  # … but not the one whose head the log kept


def test_a_rewritten_head_is_caught(settings):
    events = [audit_record(action=f"test.{i}") for i in range(3)]
    head = (events[-1].pk, events[-1].hash)
    AuditEvent.objects.filter(pk=events[-1].pk).update(hash="f" * 64)
    broken = audit_verify_chain(head=head)
    assert broken is not None and broken.event_id == events[-1].pk


def test_a_malformed_head_is_a_clear_error():
    with pytest.raises(CommandError, match="--head must be SEQ:HASH"):
        verify("--head", "12-abc")


def test_the_head_is_published_on_demand(caplog):
    assert audit_publish_head() is None  # an empty log has no head
    event = audit_record(action="x")
    with caplog.at_level(logging.INFO, logger="audit.head"):
        audit_publish_head()
    assert f"audit chain head {event.pk} {event.hash}" in caplog.text
