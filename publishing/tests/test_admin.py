"""Console pages for publish requests (view only) and trust rules (grant, revoke)."""

import pytest
from django.urls import reverse

from accounts.tests.factories import AdminFactory, UserFactory
from audit.models import AuditEvent
from blueprints.tests.factories import BlueprintFactory
from core.tests.admin import assert_refused, messages_of
from publishing.models import PublishRequest, TrustRule
from publishing.tests.factories import PublishRequestFactory, TrustRuleFactory

pytestmark = pytest.mark.django_db


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def console(client):
    client.force_login(AdminFactory())
    return client


def test_pages_render_for_admin(console):
    request, rule = PublishRequestFactory(), TrustRuleFactory()
    for page in (
        url(PublishRequest, "changelist"),
        url(PublishRequest, "changelist") + "?status__exact=pending",
        url(PublishRequest, "change", request.pk),
        url(TrustRule, "changelist"),
        url(TrustRule, "changelist") + "?state=active",
        url(TrustRule, "add"),
        url(TrustRule, "change", rule.pk),
    ):
        assert console.get(page).status_code == 200, page


def test_pages_are_refused_to_a_member(client):
    request, rule = PublishRequestFactory(), TrustRuleFactory()
    client.force_login(UserFactory())
    for page in (
        url(PublishRequest, "changelist"),
        url(PublishRequest, "change", request.pk),
        url(TrustRule, "changelist"),
        url(TrustRule, "add"),
        url(TrustRule, "change", rule.pk),
    ):
        assert_refused(client, page)
        assert_refused(client, page, method="post")


def test_publish_requests_are_view_only(console):
    request = PublishRequestFactory()
    content = console.get(url(PublishRequest, "change", request.pk)).content.decode()
    assert request.requester.email in content
    assert request.environment_id in content
    assert console.get(url(PublishRequest, "add")).status_code == 403
    change = url(PublishRequest, "change", request.pk)
    assert console.post(change, {"status": "published"}).status_code == 403
    delete = url(PublishRequest, "delete", request.pk)
    assert console.post(delete, {"post": "yes"}).status_code == 403
    request.refresh_from_db()
    assert request.status == "pending"


def test_granting_trust_goes_through_the_service(console):
    member, blueprint = UserFactory(), BlueprintFactory()
    response = console.post(url(TrustRule, "add"), {"user": member.pk, "blueprint": blueprint.pk})
    assert response.status_code == 302
    rule = TrustRule.objects.get(user=member, blueprint=blueprint)
    assert rule.granted_by.email.startswith("admin")
    assert AuditEvent.objects.filter(action="trust.grant", target_id=str(rule.pk)).exists()


def test_granting_trust_twice_is_refused_with_a_message(console):
    rule = TrustRuleFactory()
    response = console.post(
        url(TrustRule, "add"), {"user": rule.user.pk, "blueprint": rule.blueprint.pk}
    )
    assert response.status_code == 302
    assert messages_of(response) == ["This member is already trusted on this blueprint."]
    assert TrustRule.objects.count() == 1
    assert not AuditEvent.objects.filter(action="trust.grant").exists()


def test_revoke_action_calls_the_service(console):
    rules = [TrustRuleFactory(), TrustRuleFactory()]
    response = console.post(
        url(TrustRule, "changelist"),
        {"action": "revoke", "_selected_action": [r.pk for r in rules]},
    )
    assert response.status_code == 302
    for rule in rules:
        rule.refresh_from_db()
        assert rule.revoked_at is not None
        assert rule.revoked_by.email.startswith("admin")
    assert AuditEvent.objects.filter(action="trust.revoke").count() == 2
    assert messages_of(response) == ["Revoked 2 trust rule(s)."]


def test_trust_rules_are_not_edited_or_deleted(console):
    rule = TrustRuleFactory()
    assert console.post(url(TrustRule, "change", rule.pk), {}).status_code == 403
    assert console.post(url(TrustRule, "delete", rule.pk), {"post": "yes"}).status_code == 403
    actions = console.get(url(TrustRule, "changelist")).context["action_form"].fields["action"]
    assert "delete_selected" not in dict(actions.choices)
