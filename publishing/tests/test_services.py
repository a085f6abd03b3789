"""Trust grants and revocations (audited, one active rule)."""

import pytest

from accounts.tests.factories import UserFactory
from audit.models import AuditEvent
from audit.services import audit_verify_chain
from blueprints.tests.factories import BlueprintFactory
from core.errors import ApplicationError
from publishing.models import TrustRule
from publishing.services import trust_grant, trust_revoke

pytestmark = pytest.mark.django_db


def test_trust_grant_creates_an_active_rule_and_audits(admin_member):
    user, blueprint = UserFactory(email="t@example.com"), BlueprintFactory(key="py")
    rule = trust_grant(user=user, blueprint=blueprint, actor=admin_member)
    assert rule.is_active
    assert rule.granted_by == admin_member
    event = AuditEvent.objects.get(action="trust.grant")
    assert event.target_id == str(rule.pk)
    assert event.details == {"user": "t@example.com", "blueprint": "py"}


def test_trust_grant_twice_is_refused_and_writes_nothing(admin_member):
    user, blueprint = UserFactory(), BlueprintFactory()
    trust_grant(user=user, blueprint=blueprint, actor=admin_member)
    with pytest.raises(ApplicationError) as excinfo:
        trust_grant(user=user, blueprint=blueprint, actor=admin_member)
    assert (excinfo.value.code, excinfo.value.status) == ("already_trusted", 409)
    assert TrustRule.objects.count() == 1
    assert AuditEvent.objects.filter(action="trust.grant").count() == 1
    assert audit_verify_chain() is None


def test_trust_revoke_then_grant_again(admin_member):
    user, blueprint = UserFactory(email="t@example.com"), BlueprintFactory(key="py")
    rule = trust_grant(user=user, blueprint=blueprint, actor=admin_member)
    trust_revoke(rule=rule, actor=admin_member)
    assert not rule.is_active
    assert rule.revoked_by == admin_member
    event = AuditEvent.objects.get(action="trust.revoke")
    assert event.details == {"user": "t@example.com", "blueprint": "py"}
    again = trust_grant(user=user, blueprint=blueprint, actor=admin_member)
    assert again.is_active and again.pk != rule.pk


def test_revoking_a_revoked_rule_changes_nothing(admin_member):
    rule = trust_grant(user=UserFactory(), blueprint=BlueprintFactory(), actor=admin_member)
    trust_revoke(rule=rule, actor=admin_member)
    revoked_at = rule.revoked_at
    other_admin = UserFactory(role="admin")
    trust_revoke(rule=rule, actor=other_admin)
    assert (rule.revoked_at, rule.revoked_by) == (revoked_at, admin_member)
    assert AuditEvent.objects.filter(action="trust.revoke").count() == 1
