"""API of trust rules: who may publish from a blueprint without review."""

import pytest

from accounts.tests.factories import UserFactory
from audit.models import AuditEvent
from blueprints.tests.factories import BlueprintFactory
from publishing.models import TrustRule
from publishing.tests.factories import TrustRuleFactory

pytestmark = pytest.mark.django_db

ADMIN_ENDPOINTS = [
    ("get", "/api/v1/admin/trust-rules"),
    ("post", "/api/v1/admin/trust-rules"),
    ("post", "/api/v1/admin/trust-rules/{trust}/revoke"),
]


@pytest.mark.parametrize(("method", "url"), ADMIN_ENDPOINTS)
def test_trust_rule_endpoints_need_an_admin(api_client, member, method, url):
    trust = TrustRuleFactory()
    url = url.format(trust=trust.pk)
    anonymous = getattr(api_client, method)(url, {}, format="json")
    api_client.force_authenticate(member)
    builder = getattr(api_client, method)(url, {}, format="json")
    assert anonymous.status_code == 401
    assert builder.status_code == 403
    assert builder.json()["code"] == "permission_denied"
    assert TrustRule.objects.get(pk=trust.pk).revoked_at is None
    assert TrustRule.objects.count() == 1


def test_trust_rule_grant(api_client, admin_member):
    UserFactory(email="ann@example.com")
    BlueprintFactory(key="web")
    api_client.force_authenticate(admin_member)

    response = api_client.post(
        "/api/v1/admin/trust-rules", {"user": "Ann@Example.com", "blueprint": "web"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["user"], body["blueprint"], body["is_active"]) == ("ann@example.com", "web", True)
    assert body["granted_by"] == admin_member.email
    assert AuditEvent.objects.filter(action="trust.grant").exists()


def test_trust_rule_grant_twice(api_client, admin_member):
    trust = TrustRuleFactory()
    api_client.force_authenticate(admin_member)

    response = api_client.post(
        "/api/v1/admin/trust-rules",
        {"user": trust.user.email, "blueprint": trust.blueprint.key},
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["code"] == "already_trusted"
    assert TrustRule.objects.count() == 1


def test_trust_rule_grant_invalid(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    response = api_client.post(
        "/api/v1/admin/trust-rules", {"user": "ghost@example.com", "blueprint": "none"}, "json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert set(response.json()["errors"]) == {"user", "blueprint"}
    assert not TrustRule.objects.exists()


def test_trust_rule_revoke_and_list(api_client, admin_member):
    revoked = TrustRuleFactory()
    active = TrustRuleFactory()
    api_client.force_authenticate(admin_member)

    response = api_client.post(f"/api/v1/admin/trust-rules/{revoked.pk}/revoke")
    listing = api_client.get("/api/v1/admin/trust-rules")

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert response.json()["revoked_by"] == admin_member.email
    assert {(r["id"], r["is_active"]) for r in listing.json()} == {
        (revoked.pk, False),
        (active.pk, True),
    }
    assert AuditEvent.objects.filter(action="trust.revoke").exists()
