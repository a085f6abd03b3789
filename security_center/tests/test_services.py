"""Audit chain, firewall evaluation and connection records."""

import io
import itertools
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from audit.models import AuditEvent
from audit.services import GENESIS_HASH, audit_record, audit_verify_chain, entry_hash
from audit.tests.factories import AuditEventFactory
from security_center.choices import ConnectionKind
from security_center.models import ConnectionSession, FirewallEvent, FirewallRule
from security_center.services import (
    connection_add_traffic,
    connection_close,
    connection_open,
    firewall_check,
    firewall_evaluate,
    firewall_rule_delete,
    firewall_rule_save,
    firewall_rule_set_enabled,
)
from security_center.tests.factories import FirewallRuleFactory

# --- audit chain ---------------------------------------------------------------------------


def verify() -> str:
    out = io.StringIO()
    call_command("verify_audit_chain", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_audit_record_links_every_entry_to_the_previous_one(member):
    events = [
        audit_record(action="a.one", actor=member, target_type="user", target_id=member.pk),
        audit_record(action="a.two", ip="198.51.100.7", details={"k": [1, 2], "n": None}),
        audit_record(action="a.three", outcome="denied", details={"when": "now"}),
    ]
    stored = list(AuditEvent.objects.order_by("id"))
    assert [e.pk for e in stored] == [e.pk for e in events]
    assert stored[0].prev_hash == GENESIS_HASH == "0" * 64
    for previous, current in itertools.pairwise(stored):
        assert current.prev_hash == previous.hash
    for event in stored:
        assert entry_hash(event) == event.hash
    assert (stored[0].actor_email, stored[0].target_id) == (member.email, str(member.pk))
    assert stored[1].actor_email == ""
    assert audit_verify_chain() is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "ip", ["198.51.100.7", "2001:db8::1", "2001:DB8:0::0001", "::ffff:10.1.2.3", "", None]
)
def test_the_chain_verifies_whatever_the_ip_spelling(ip):
    audit_record(action="x", ip=ip)
    audit_record(action="y")
    assert audit_verify_chain() is None


@pytest.mark.django_db
def test_audit_details_are_stored_as_json_safe_values():
    import datetime
    import uuid

    event = audit_record(
        action="x", details={"at": datetime.date(2026, 1, 2), "id": uuid.UUID(int=1)}
    )
    assert AuditEvent.objects.get(pk=event.pk).details == {
        "at": "2026-01-02",
        "id": "00000000-0000-0000-0000-000000000001",
    }
    assert audit_verify_chain() is None


@pytest.mark.django_db
def test_verify_audit_chain_passes_on_an_intact_chain():
    for index in range(5):
        AuditEventFactory(action=f"test.{index}")
    assert "audit chain intact (5 entries)" in verify()


@pytest.mark.django_db
def test_verify_audit_chain_passes_on_an_empty_log():
    assert "intact (0 entries)" in verify()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"details": {"tampered": True}},
        {"action": "nothing.happened"},
        {"actor_email": "someone@else.com"},
        {"target_id": "999"},
        {"outcome": "failure"},
        {"ip": "192.0.2.1"},
    ],
)
def test_verify_audit_chain_names_an_altered_entry(change):
    events = [audit_record(action=f"test.{i}", details={"i": i}) for i in range(5)]
    middle = events[2]
    AuditEvent.objects.filter(pk=middle.pk).update(**change)
    with pytest.raises(CommandError, match=rf"entry #{middle.pk}: entry content was altered"):
        verify()


@pytest.mark.django_db
def test_verify_audit_chain_names_the_entry_after_a_deleted_one():
    events = [audit_record(action=f"test.{i}") for i in range(5)]
    AuditEvent.objects.filter(pk=events[2].pk).delete()
    with pytest.raises(CommandError, match=rf"entry #{events[3].pk}: previous entry is missing"):
        verify()


@pytest.mark.django_db
def test_verify_audit_chain_detects_a_deleted_first_entry():
    events = [audit_record(action=f"test.{i}") for i in range(3)]
    AuditEvent.objects.filter(pk=events[0].pk).delete()
    with pytest.raises(CommandError, match=rf"entry #{events[1].pk}"):
        verify()


@pytest.mark.django_db
def test_a_rehashed_altered_entry_still_breaks_the_next_link():
    events = [audit_record(action=f"test.{i}") for i in range(3)]
    forged = AuditEvent.objects.get(pk=events[1].pk)
    forged.details = {"forged": True}
    forged.hash = entry_hash(forged)
    forged.save()
    assert audit_verify_chain().event_id == events[2].pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_linear_chain():
    threads = 20
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def append(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            audit_record(action=f"concurrent.{index}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=append, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert AuditEvent.objects.count() == threads
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {
        f"concurrent.{i}" for i in range(threads)
    }
    assert audit_verify_chain() is None
    verify()


# --- firewall evaluation -------------------------------------------------------------------

RULES = {
    "allow office v4": (10, "allow", "10.1.0.0/16"),
    "deny private v4": (20, "deny", "10.0.0.0/8"),
    "deny doc v6": (30, "deny", "2001:db8::/32"),
    "allow doc host v6": (40, "allow", "2001:db8::1/128"),
    "deny test-net": (50, "deny", "203.0.113.0/24"),
}


@pytest.fixture
def rules(db):
    return {
        name: FirewallRuleFactory(priority=p, action=a, cidr=c) for name, (p, a, c) in RULES.items()
    }


@pytest.mark.parametrize(
    ("ip", "allowed", "matched"),
    [
        ("10.1.2.3", True, "allow office v4"),  # allow before deny
        ("10.2.0.1", False, "deny private v4"),
        ("2001:db8::1", False, "deny doc v6"),  # deny (30) before allow (40)
        ("2001:db8:ffff::5", False, "deny doc v6"),
        ("2001:DB8::2", False, "deny doc v6"),
        ("203.0.113.200", False, "deny test-net"),
        ("::ffff:10.1.2.3", True, "allow office v4"),  # IPv4-mapped IPv6
        ("::ffff:10.9.9.9", False, "deny private v4"),
        ("fe80::1%eth0", True, None),  # zone id stripped, no match
        (" 10.2.0.1 ", False, "deny private v4"),
        ("192.0.2.1", True, None),  # no match → allowed
        ("2001:db9::1", True, None),
        ("not-an-ip", False, None),  # garbage → denied
        ("", False, None),
        ("10.0.0.256", False, None),
    ],
)
def test_firewall_evaluate_table(rules, ip, allowed, matched):
    decision = firewall_evaluate(ip)
    assert decision.allowed is allowed
    assert decision.rule == (rules[matched] if matched else None)


def test_firewall_evaluate_none_is_denied():
    assert firewall_evaluate(None).allowed is False


@pytest.mark.django_db
def test_no_rules_allows_everything():
    assert firewall_evaluate("203.0.113.7").allowed
    assert firewall_evaluate("2001:db8::1").allowed


@pytest.mark.django_db
def test_disabled_rules_are_skipped(rules):
    FirewallRule.objects.filter(pk=rules["allow office v4"].pk).update(enabled=False)
    decision = firewall_evaluate("10.1.2.3")
    assert (decision.allowed, decision.rule) == (False, rules["deny private v4"])
    FirewallRule.objects.update(enabled=False)
    assert firewall_evaluate("10.1.2.3") == firewall_evaluate("10.1.2.3").__class__(True, None)


@pytest.mark.parametrize(
    ("rules", "ip", "allowed"),
    [
        ([(1, "deny", "0.0.0.0/0"), (2, "allow", "10.0.0.0/8")], "10.0.0.1", False),
        ([(1, "allow", "10.0.0.0/8"), (2, "deny", "0.0.0.0/0")], "10.0.0.1", True),
        ([(1, "allow", "10.0.0.0/8"), (2, "deny", "0.0.0.0/0")], "11.0.0.1", False),
        ([(1, "deny", "::/0")], "10.0.0.1", True),  # a v6 rule never matches v4
        ([(1, "deny", "0.0.0.0/0")], "2001:db8::1", True),  # and vice versa
        ([(1, "deny", "::/0")], "::ffff:10.0.0.1", True),  # mapped address is IPv4
        ([(1, "deny", "0.0.0.0/0", False)], "10.0.0.1", True),
    ],
)
def test_firewall_evaluate_with_given_rules(rules, ip, allowed):
    built = [
        FirewallRule(priority=r[0], action=r[1], cidr=r[2], enabled=r[3] if len(r) > 3 else True)
        for r in rules
    ]
    assert firewall_evaluate(ip, rules=built).allowed is allowed


@pytest.mark.django_db
def test_firewall_check_records_an_event_only_when_blocked(rules):
    assert firewall_check(ip="10.1.2.3", kind=ConnectionKind.SHELL).allowed
    assert firewall_check(ip="192.0.2.1", kind=ConnectionKind.SHELL).allowed
    assert not FirewallEvent.objects.exists()

    decision = firewall_check(
        ip="10.2.0.1", kind=ConnectionKind.PREVIEW, user_email="a@example.com", environment_id="e1"
    )
    assert not decision.allowed
    event = FirewallEvent.objects.get()
    assert (event.ip, event.kind, event.user_email, event.environment_id) == (
        "10.2.0.1",
        "preview",
        "a@example.com",
        "e1",
    )
    assert event.rule == rules["deny private v4"]
    assert event.rule_summary == "#20 deny 10.0.0.0/8"


@pytest.mark.django_db
def test_firewall_check_records_garbage_addresses_too():
    assert not firewall_check(ip="garbage", kind=ConnectionKind.SHELL).allowed
    event = FirewallEvent.objects.get()
    assert (event.ip, event.rule, event.rule_summary) == ("0.0.0.0", None, "not an IP address")


@pytest.mark.django_db
def test_firewall_rule_services_validate_and_audit(admin_member):
    rule = firewall_rule_save(
        rule=FirewallRule(action="deny", cidr="2001:DB8::/32", priority=5), actor=admin_member
    )
    assert rule.cidr == "2001:db8::/32"
    assert rule.created_by == admin_member
    firewall_rule_set_enabled(rule=rule, enabled=False, actor=admin_member)
    assert FirewallRule.objects.get(pk=rule.pk).enabled is False
    with pytest.raises(Exception, match="did you mean"):
        firewall_rule_save(
            rule=FirewallRule(action="deny", cidr="10.0.0.1/8", priority=6), actor=admin_member
        )
    firewall_rule_delete(rule=rule, actor=admin_member)
    assert not FirewallRule.objects.exists()
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "firewall_rule.create",
        "firewall_rule.disable",
        "firewall_rule.delete",
    ]
    assert audit_verify_chain() is None


# --- connections ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_connection_open_records_the_session(member):
    session = connection_open(
        user=member, ip="::ffff:198.51.100.4", kind="preview", environment_id="env-1", port=3000
    )
    session.refresh_from_db()
    assert (session.email, session.kind, session.port) == (member.email, "preview", 3000)
    assert session.is_active
    assert session.last_activity_at is not None


@pytest.mark.django_db
def test_connection_open_refuses_an_unknown_kind(member):
    with pytest.raises(ValueError, match="sftp"):
        connection_open(user=member, ip="10.0.0.1", kind="sftp", environment_id="e")
    assert not ConnectionSession.objects.exists()


@pytest.mark.django_db
def test_connection_traffic_and_close_happen_once(member):
    session = connection_open(user=member, ip="10.0.0.1", kind="shell", environment_id="env-1")
    connection_add_traffic(session_id=session.pk, bytes_in=10, bytes_out=20, requests=1)
    connection_add_traffic(session_id=session.pk, bytes_in=5, requests=2)
    assert connection_close(session_id=session.pk, reason="terminated by admin", bytes_out=7)
    session.refresh_from_db()
    assert (session.bytes_in, session.bytes_out, session.requests) == (15, 27, 3)
    assert session.close_reason == "terminated by admin"
    ended_at = session.ended_at
    assert ended_at is not None and not session.is_active

    assert connection_close(session_id=session.pk, reason="client closed", bytes_in=99) is False
    session.refresh_from_db()
    assert (session.ended_at, session.close_reason, session.bytes_in) == (
        ended_at,
        "terminated by admin",
        15,
    )


@pytest.mark.django_db
def test_connection_close_truncates_a_long_reason(member):
    session = connection_open(user=member, ip="10.0.0.1", kind="shell", environment_id="e")
    connection_close(session_id=session.pk, reason="x" * 500)
    session.refresh_from_db()
    assert session.close_reason == "x" * 100


@pytest.mark.django_db
def test_connection_close_of_an_unknown_session_is_false():
    assert connection_close(session_id=987654, reason="gone") is False
