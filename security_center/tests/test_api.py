"""API of the security centre: firewall rules and the read-only records."""

import pytest

from audit.models import AuditEvent
from audit.services import audit_record
from security_center.models import FirewallRule
from security_center.tests.factories import (
    ConnectionSessionFactory,
    FirewallEventFactory,
    FirewallRuleFactory,
)

pytestmark = pytest.mark.django_db

ADMIN_ENDPOINTS = [
    ("get", "/api/v1/admin/firewall-rules"),
    ("post", "/api/v1/admin/firewall-rules"),
    ("get", "/api/v1/admin/firewall-rules/{rule}"),
    ("patch", "/api/v1/admin/firewall-rules/{rule}"),
    ("delete", "/api/v1/admin/firewall-rules/{rule}"),
    ("post", "/api/v1/admin/firewall-rules/{rule}/disable"),
    ("get", "/api/v1/admin/connections"),
    ("get", "/api/v1/admin/firewall-events"),
    ("get", "/api/v1/admin/audit-events"),
]


@pytest.mark.parametrize(("method", "url"), ADMIN_ENDPOINTS)
def test_security_endpoints_need_an_admin(api_client, member, method, url):
    rule = FirewallRuleFactory(priority=10, cidr="10.0.0.0/8")
    url = url.format(rule=rule.pk)

    anonymous = getattr(api_client, method)(url, {"priority": 99}, format="json")
    api_client.force_authenticate(member)
    builder = getattr(api_client, method)(url, {"priority": 99}, format="json")

    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    assert builder.status_code == 403
    assert builder.json()["code"] == "permission_denied"
    rule.refresh_from_db()
    assert (rule.priority, rule.enabled) == (10, True)
    assert FirewallRule.objects.count() == 1


# --- firewall rules ------------------------------------------------------------------------


def test_firewall_rule_create(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    response = api_client.post(
        "/api/v1/admin/firewall-rules",
        {"action": "deny", "cidr": "2001:db8::/32", "priority": 5, "description": "docs"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["action"], body["cidr"], body["priority"], body["enabled"]) == (
        "deny",
        "2001:db8::/32",
        5,
        True,
    )
    assert body["created_by"] == admin_member.email
    event = AuditEvent.objects.get(action="firewall_rule.create")
    assert event.target_id == str(body["id"])


@pytest.mark.parametrize(
    ("cidr", "message"),
    [("10.0.0.1/8", "has host bits set; did you mean 10.0.0.0/8?"), ("nope", "is not an IPv4")],
)
def test_firewall_rule_bad_cidr(api_client, admin_member, cidr, message):
    api_client.force_authenticate(admin_member)

    response = api_client.post(
        "/api/v1/admin/firewall-rules",
        {"action": "deny", "cidr": cidr, "priority": 5},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert message in response.json()["errors"]["cidr"][0]
    assert not FirewallRule.objects.exists()
    assert not AuditEvent.objects.exists()


def test_firewall_rule_duplicate_priority(api_client, admin_member):
    FirewallRuleFactory(priority=5)
    api_client.force_authenticate(admin_member)

    response = api_client.post(
        "/api/v1/admin/firewall-rules",
        {"action": "allow", "cidr": "10.0.0.0/8", "priority": 5},
        format="json",
    )

    assert response.status_code == 400
    assert "priority" in response.json()["errors"]
    assert FirewallRule.objects.count() == 1


def test_firewall_rule_update(api_client, admin_member):
    rule = FirewallRuleFactory(priority=10, cidr="10.0.0.0/8")
    api_client.force_authenticate(admin_member)

    response = api_client.patch(
        f"/api/v1/admin/firewall-rules/{rule.pk}",
        {"cidr": "192.168.1.7", "action": "allow"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["cidr"] == "192.168.1.7/32"
    rule.refresh_from_db()
    assert (rule.cidr, rule.action) == ("192.168.1.7/32", "allow")
    assert AuditEvent.objects.filter(action="firewall_rule.update").exists()


def test_firewall_rule_update_invalid_changes_nothing(api_client, admin_member):
    rule = FirewallRuleFactory(priority=10, cidr="10.0.0.0/8")
    api_client.force_authenticate(admin_member)

    response = api_client.patch(
        f"/api/v1/admin/firewall-rules/{rule.pk}",
        {"cidr": "300.0.0.0/8", "description": "changed"},
        format="json",
    )

    assert response.status_code == 400
    rule.refresh_from_db()
    assert (rule.cidr, rule.description) == ("10.0.0.0/8", "test rule")


@pytest.mark.parametrize(("verb", "enabled"), [("disable", False), ("enable", True)])
def test_firewall_rule_enable_disable(api_client, admin_member, verb, enabled):
    rule = FirewallRuleFactory(enabled=not enabled)
    api_client.force_authenticate(admin_member)

    response = api_client.post(f"/api/v1/admin/firewall-rules/{rule.pk}/{verb}")

    assert response.status_code == 200
    assert response.json()["enabled"] is enabled
    rule.refresh_from_db()
    assert rule.enabled is enabled
    assert AuditEvent.objects.filter(action=f"firewall_rule.{verb}").exists()


def test_firewall_rule_delete(api_client, admin_member):
    rule = FirewallRuleFactory()
    api_client.force_authenticate(admin_member)

    response = api_client.delete(f"/api/v1/admin/firewall-rules/{rule.pk}")

    assert response.status_code == 204
    assert not FirewallRule.objects.exists()
    assert AuditEvent.objects.filter(action="firewall_rule.delete").exists()


def test_firewall_rules_list_in_priority_order(api_client, admin_member):
    FirewallRuleFactory(priority=20, cidr="10.0.0.0/8")
    FirewallRuleFactory(priority=10, cidr="192.168.0.0/16")
    api_client.force_authenticate(admin_member)

    response = api_client.get("/api/v1/admin/firewall-rules")

    assert [r["priority"] for r in response.json()] == [10, 20]


# --- read-only records ---------------------------------------------------------------------


def test_connections_list_and_active_filter(api_client, admin_member):
    from django.utils import timezone

    open_session = ConnectionSessionFactory()
    ConnectionSessionFactory(ended_at=timezone.now(), close_reason="closed")
    api_client.force_authenticate(admin_member)

    everything = api_client.get("/api/v1/admin/connections")
    active = api_client.get("/api/v1/admin/connections", {"active": "true"})

    assert everything.status_code == 200
    assert len(everything.json()["results"]) == 2
    assert "next" in everything.json()
    assert [c["id"] for c in active.json()["results"]] == [open_session.pk]
    assert active.json()["results"][0]["is_active"] is True
    assert "channel_name" not in everything.content.decode()


def test_firewall_events_list(api_client, admin_member):
    event = FirewallEventFactory()
    api_client.force_authenticate(admin_member)

    response = api_client.get("/api/v1/admin/firewall-events")

    assert response.status_code == 200
    assert [e["ip"] for e in response.json()["results"]] == [event.ip]


def test_audit_events_paginate_by_100(api_client, admin_member):
    for index in range(101):
        audit_record(action="test.action", details={"n": index})
    api_client.force_authenticate(admin_member)

    first = api_client.get("/api/v1/admin/audit-events")
    second = api_client.get(first.json()["next"])

    assert first.status_code == 200
    assert len(first.json()["results"]) == 100
    assert first.json()["results"][0]["details"] == {"n": 100}
    assert [e["details"] for e in second.json()["results"]] == [{"n": 0}]
    assert second.json()["next"] is None


def test_read_only_records_refuse_writes(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    for url in ["connections", "firewall-events", "audit-events"]:
        response = api_client.post(f"/api/v1/admin/{url}", {}, format="json")
        assert response.status_code == 405
    assert not AuditEvent.objects.exists()
