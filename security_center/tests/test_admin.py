"""Console pages of the security centre: audited firewall rules, untouchable trails."""

import pytest
from django.urls import reverse

from accounts.tests.factories import AdminFactory, UserFactory
from audit.models import AuditEvent
from audit.tests.factories import AuditEventFactory
from core.tests.admin import assert_refused, changeform_data, messages_of
from security_center.models import ConnectionSession, FirewallEvent, FirewallRule
from security_center.tests.factories import (
    ConnectionSessionFactory,
    FirewallEventFactory,
    FirewallRuleFactory,
)

pytestmark = pytest.mark.django_db

TRAILS = [
    (AuditEvent, lambda: AuditEventFactory(action="member.invite", target_type="user")),
    (ConnectionSession, ConnectionSessionFactory),
    (FirewallEvent, FirewallEventFactory),
]


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def console(client):
    client.force_login(AdminFactory())
    return client


def test_firewall_rule_pages_render_for_admin(console):
    rule = FirewallRuleFactory()
    for page in (
        url(FirewallRule, "changelist"),
        url(FirewallRule, "add"),
        url(FirewallRule, "change", rule.pk),
    ):
        assert console.get(page).status_code == 200, page


@pytest.mark.parametrize(("model", "factory"), TRAILS)
def test_trail_pages_render_for_admin(console, model, factory):
    obj = factory()
    for page in (
        url(model, "changelist"),
        url(model, "change", obj.pk),
    ):
        assert console.get(page).status_code == 200, page


def test_connection_filters_render(console):
    active = ConnectionSessionFactory()
    ended = ConnectionSessionFactory(ended_at="2030-01-01T00:00:00Z", close_reason="admin")
    changelist = url(ConnectionSession, "changelist")
    for query, shown, hidden in (("?state=active", active, ended), ("?state=ended", ended, active)):
        content = console.get(changelist + query).content.decode()
        assert shown.environment_id in content
        assert hidden.environment_id not in content
    assert console.get(changelist + "?kind__exact=preview").status_code == 200


def test_firewall_event_filters_render(console):
    FirewallEventFactory()
    for query in ("?kind__exact=shell", "?q=203.0.113.7"):
        response = console.get(url(FirewallEvent, "changelist") + query)
        assert response.status_code == 200
        assert "203.0.113.7" in response.content.decode()


def test_audit_filters_and_search_render(console):
    AuditEventFactory(action="trust.grant")
    for query in ("?outcome__exact=success", "?action=trust.grant", "?q=trust"):
        response = console.get(url(AuditEvent, "changelist") + query)
        assert response.status_code == 200
        assert "trust.grant" in response.content.decode()


@pytest.mark.parametrize(("model", "factory"), [(FirewallRule, FirewallRuleFactory), *TRAILS])
def test_pages_are_refused_to_a_member(client, model, factory):
    obj = factory()
    client.force_login(UserFactory())
    for page in (url(model, "changelist"), url(model, "add"), url(model, "change", obj.pk)):
        assert_refused(client, page)
        assert_refused(client, page, method="post")


@pytest.mark.parametrize(("model", "factory"), TRAILS)
def test_trails_refuse_add_change_and_delete(console, model, factory):
    obj = factory()
    count = model.objects.count()
    assert console.get(url(model, "add")).status_code == 403
    assert console.post(url(model, "add"), {}).status_code == 403
    assert console.post(url(model, "change", obj.pk), {"ip": "10.0.0.1"}).status_code == 403
    assert console.get(url(model, "delete", obj.pk)).status_code == 403
    assert console.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    response = console.post(
        url(model, "changelist"), {"action": "delete_selected", "_selected_action": [obj.pk]}
    )
    assert response.status_code in (200, 302)
    assert model.objects.count() == count


def test_creating_a_rule_goes_through_the_service(console):
    data = {"priority": "5", "action": "deny", "cidr": "10.1.2.3", "description": "x"}
    data["enabled"] = "on"
    response = console.post(url(FirewallRule, "add"), data)
    assert response.status_code == 302
    rule = FirewallRule.objects.get(priority=5)
    assert rule.cidr == "10.1.2.3/32"
    assert rule.created_by.email.startswith("admin")
    assert AuditEvent.objects.filter(action="firewall_rule.create", target_id=str(rule.pk)).exists()


def test_invalid_cidr_is_a_form_error(console):
    data = {"priority": "5", "action": "deny", "cidr": "10.0.0.1/8"}
    response = console.post(url(FirewallRule, "add"), data)
    assert response.status_code == 200
    assert "host bits set" in response.content.decode()
    assert not FirewallRule.objects.exists()


def test_changing_a_rule_goes_through_the_service(console):
    rule = FirewallRuleFactory()
    data = changeform_data(console.get(url(FirewallRule, "change", rule.pk)))
    data["cidr"] = "2001:db8::/32"
    assert console.post(url(FirewallRule, "change", rule.pk), data).status_code == 302
    rule.refresh_from_db()
    assert rule.cidr == "2001:db8::/32"
    event = AuditEvent.objects.get(action="firewall_rule.update")
    assert event.details["changed"] == ["cidr"]


def test_deleting_a_rule_goes_through_the_service_and_bulk_delete_is_off(console):
    rule = FirewallRuleFactory()
    actions = console.get(url(FirewallRule, "changelist")).context["action_form"].fields["action"]
    assert "delete_selected" not in dict(actions.choices)
    response = console.post(url(FirewallRule, "delete", rule.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not FirewallRule.objects.exists()
    assert AuditEvent.objects.filter(action="firewall_rule.delete", target_id=str(rule.pk)).exists()


@pytest.mark.parametrize(
    ("action", "start", "audit"),
    [("enable", False, "firewall_rule.enable"), ("disable", True, "firewall_rule.disable")],
)
def test_enable_disable_actions_call_the_service(console, action, start, audit):
    rules = [FirewallRuleFactory(enabled=start), FirewallRuleFactory(enabled=start)]
    response = console.post(
        url(FirewallRule, "changelist"),
        {"action": action, "_selected_action": [r.pk for r in rules]},
    )
    assert response.status_code == 302
    for rule in rules:
        rule.refresh_from_db()
        assert rule.enabled is not start
    assert AuditEvent.objects.filter(action=audit).count() == 2
    (message,) = messages_of(response)
    assert "2 firewall rule(s)" in message
