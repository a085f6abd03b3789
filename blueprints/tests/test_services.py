"""Blueprint services: state changes, access rules and AI providers, all audited."""

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from audit.services import audit_verify_chain
from blueprints.choices import AccessRuleKind, BlueprintState
from blueprints.models import AIProvider, Blueprint, BlueprintAccessRule
from blueprints.services import (
    access_rules_replace,
    ai_provider_save,
    blueprint_delete,
    blueprint_save,
    blueprint_set_state,
)
from blueprints.tests.factories import AccessRuleFactory, AIProviderFactory, BlueprintFactory
from clusters.tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (BlueprintState.TESTING, BlueprintState.ENABLED),
        (BlueprintState.ENABLED, BlueprintState.DISABLED),
        (BlueprintState.DISABLED, BlueprintState.TESTING),
    ],
)
def test_blueprint_set_state_moves_and_audits(admin_member, start, to):
    blueprint = BlueprintFactory(key="bp", state=start)
    blueprint_set_state(blueprint=blueprint, state=to, actor=admin_member)
    assert blueprint.state == to
    assert Blueprint.objects.get(pk=blueprint.pk).state == to
    event = AuditEvent.objects.get(action="blueprint.set_state")
    assert (event.target_type, event.target_id) == ("blueprint", "bp")
    assert event.details == {"from": start, "to": to}
    assert event.actor_email == admin_member.email


def test_blueprint_set_state_refuses_an_unknown_state(admin_member):
    blueprint = BlueprintFactory(state=BlueprintState.ENABLED)
    with pytest.raises(ValueError, match="archived"):
        blueprint_set_state(blueprint=blueprint, state="archived", actor=admin_member)
    assert Blueprint.objects.get(pk=blueprint.pk).state == BlueprintState.ENABLED
    assert not AuditEvent.objects.exists()


def test_blueprint_save_validates_creates_and_updates(admin_member):
    blueprint = Blueprint(
        key="node", name="Node", cluster=ClusterFactory(), start_command="npm start"
    )
    blueprint_save(blueprint=blueprint, actor=admin_member)
    blueprint.name = "Node 22"
    blueprint_save(blueprint=blueprint, actor=admin_member, changed=["name"])
    assert list(AuditEvent.objects.order_by("id").values_list("action", "details")) == [
        ("blueprint.create", {"changed": []}),
        ("blueprint.update", {"changed": ["name"]}),
    ]
    blueprint.env = {"PORT": "1"}
    with pytest.raises(ValidationError):
        blueprint_save(blueprint=blueprint, actor=admin_member)
    assert AuditEvent.objects.count() == 2


def test_blueprint_delete_removes_rules_and_providers(admin_member):
    provider = AIProviderFactory()
    AccessRuleFactory(blueprint=provider.blueprint)
    blueprint_delete(blueprint=provider.blueprint, actor=admin_member)
    assert not Blueprint.objects.exists()
    assert not BlueprintAccessRule.objects.exists()
    assert not AIProvider.objects.exists()
    assert AuditEvent.objects.get().action == "blueprint.delete"


# --- access rules --------------------------------------------------------------------------


def test_access_rules_replace_normalises_deduplicates_and_audits(admin_member):
    blueprint = BlueprintFactory(key="bp")
    AccessRuleFactory(blueprint=blueprint, kind=AccessRuleKind.DOMAIN, value="old.example.com")
    rules = access_rules_replace(
        blueprint=blueprint,
        rules=[
            {"kind": "email", "value": "  Alice@Example.COM "},
            {"kind": "domain", "value": "@Example.com"},
            {"kind": "domain", "value": "example.com"},
        ],
        actor=admin_member,
    )
    assert len(rules) == 2
    assert sorted(blueprint.access_rules.values_list("kind", "value")) == [
        ("domain", "example.com"),
        ("email", "alice@example.com"),
    ]
    event = AuditEvent.objects.get(action="blueprint.access_rules")
    assert event.details == {"rules": ["email:alice@example.com", "domain:example.com"]}


def test_access_rules_replace_with_nothing_opens_the_blueprint(admin_member):
    blueprint = AccessRuleFactory().blueprint
    assert access_rules_replace(blueprint=blueprint, rules=[], actor=admin_member) == []
    assert not blueprint.access_rules.exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "email", "value": "not-an-email"},
        {"kind": "domain", "value": "localhost"},
        {"kind": "group", "value": "devs"},
    ],
)
def test_access_rules_replace_is_all_or_nothing(admin_member, bad):
    blueprint = BlueprintFactory()
    AccessRuleFactory(blueprint=blueprint, kind="domain", value="keep.example.com")
    with pytest.raises(ValidationError):
        access_rules_replace(
            blueprint=blueprint,
            rules=[{"kind": "domain", "value": "new.example.com"}, bad],
            actor=admin_member,
        )
    assert list(blueprint.access_rules.values_list("value", flat=True)) == ["keep.example.com"]
    assert not AuditEvent.objects.exists()


# --- AI providers --------------------------------------------------------------------------


def test_ai_provider_save_encrypts_the_key_and_never_audits_it(admin_member):
    provider = AIProvider(blueprint=BlueprintFactory(key="bp"), provider="anthropic")
    ai_provider_save(provider=provider, actor=admin_member, api_key="sk-ant-secret-1")
    assert AIProvider.objects.get(pk=provider.pk).api_key == "sk-ant-secret-1"
    event = AuditEvent.objects.get(action="ai_provider.create")
    assert "sk-ant-secret-1" not in str(event.details)
    assert event.details == {
        "provider": "anthropic",
        "enabled": True,
        "api_key_replaced": True,
        "changed": [],
    }


def test_ai_provider_save_keeps_the_key_when_none_is_passed(admin_member):
    provider = AIProviderFactory(api_key="sk-original")
    fresh = AIProvider.objects.get(pk=provider.pk)
    fresh.model = "claude-opus-4"
    ai_provider_save(provider=fresh, actor=admin_member, changed=["model"])
    stored = AIProvider.objects.get(pk=provider.pk)
    assert (stored.api_key, stored.model) == ("sk-original", "claude-opus-4")
    event = AuditEvent.objects.get(action="ai_provider.update")
    assert event.details["api_key_replaced"] is False
    assert "sk-original" not in str(event.details)


def test_ai_provider_save_replaces_the_key_when_passed(admin_member):
    provider = AIProviderFactory(api_key="sk-original")
    ai_provider_save(provider=provider, actor=admin_member, api_key="sk-rotated")
    assert AIProvider.objects.get(pk=provider.pk).api_key == "sk-rotated"
    details = AuditEvent.objects.get().details
    assert details["api_key_replaced"] is True
    assert "sk-rotated" not in str(details) and "sk-original" not in str(details)


def test_ai_provider_save_refuses_an_enabled_provider_without_key(admin_member):
    provider = AIProvider(blueprint=BlueprintFactory(), provider="openai")
    with pytest.raises(ValidationError) as excinfo:
        ai_provider_save(provider=provider, actor=admin_member)
    assert "api_key" in excinfo.value.message_dict
    assert not AIProvider.objects.exists()
    assert not AuditEvent.objects.exists()


def test_blueprint_services_keep_the_audit_chain_intact(admin_member):
    blueprint = BlueprintFactory()
    blueprint_set_state(blueprint=blueprint, state="disabled", actor=admin_member)
    access_rules_replace(
        blueprint=blueprint, rules=[{"kind": "domain", "value": "a.com"}], actor=admin_member
    )
    ai_provider_save(
        provider=AIProvider(blueprint=blueprint, provider="openai"),
        actor=admin_member,
        api_key="sk-x",
    )
    assert audit_verify_chain() is None


def test_the_key_of_an_existing_blueprint_never_changes(admin_member):
    from django.core.exceptions import ValidationError

    blueprint = BlueprintFactory(key="shop")
    with pytest.raises(ValidationError) as refused:
        blueprint_save(blueprint=blueprint, actor=admin_member, fields={"key": "renamed"})
    assert "key" in refused.value.message_dict
    assert Blueprint.objects.get(pk=blueprint.pk).key == "shop"
