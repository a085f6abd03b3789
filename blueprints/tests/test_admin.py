"""Console pages for blueprints: services behind every write, AI keys never rendered."""

import pytest
from django.urls import reverse

from accounts.tests.factories import AdminFactory, UserFactory
from audit.models import AuditEvent
from blueprints.admin import BlueprintAdmin
from blueprints.choices import AccessRuleKind, BlueprintState
from blueprints.models import AIProvider, Blueprint, BlueprintAccessRule
from blueprints.tests.factories import AccessRuleFactory, AIProviderFactory, BlueprintFactory
from clusters.tests.factories import ClusterFactory
from core.tests.admin import assert_refused, changeform_data, messages_of

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:blueprints_blueprint_changelist")
ADD = reverse("admin:blueprints_blueprint_add")


def change_url(blueprint: Blueprint) -> str:
    return reverse("admin:blueprints_blueprint_change", args=[blueprint.pk])


@pytest.fixture
def console(client):
    client.force_login(AdminFactory())
    return client


@pytest.fixture
def provider():
    provider = AIProviderFactory()
    AccessRuleFactory(blueprint=provider.blueprint)
    return provider


def raw_column(provider: AIProvider) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM blueprints_aiprovider WHERE id = %s", [provider.pk])
        return cursor.fetchone()[0]


def test_pages_render_for_admin_and_never_show_the_key(console, provider):
    ciphertext = raw_column(provider)
    for page in (CHANGELIST, ADD, change_url(provider.blueprint)):
        response = console.get(page)
        assert response.status_code == 200, page
        content = response.content.decode()
        assert provider.api_key not in content
        assert ciphertext not in content
    content = console.get(change_url(provider.blueprint)).content.decode()
    assert "Stored API key" in content
    assert '<div class="readonly">set</div>' in content
    assert 'type="password"' in content


def test_pages_are_refused_to_a_member(client, provider):
    client.force_login(UserFactory())
    blueprint = provider.blueprint
    delete = reverse("admin:blueprints_blueprint_delete", args=[blueprint.pk])
    for page in (CHANGELIST, ADD, change_url(blueprint), delete):
        assert_refused(client, page)
        assert_refused(client, page, method="post")


def test_saving_a_blueprint_goes_through_the_service(console, provider):
    blueprint = provider.blueprint
    data = changeform_data(console.get(change_url(blueprint)))
    data.update(name="Renamed", memory="4Gi")
    response = console.post(change_url(blueprint), data)
    assert response.status_code == 302
    blueprint.refresh_from_db()
    assert (blueprint.name, blueprint.memory) == ("Renamed", "4Gi")
    event = AuditEvent.objects.get(action="blueprint.update")
    assert {"name", "memory"} <= set(event.details["changed"])
    # Untouched inlines are not rewritten (no audit entry for them).
    assert not AuditEvent.objects.filter(action__startswith="ai_provider.").exists()
    assert not AuditEvent.objects.filter(action="blueprint.access_rules").exists()
    provider.refresh_from_db()
    assert provider.api_key.startswith("sk-ant-test-secret-")


def test_adding_a_blueprint_with_rules_and_provider(console):
    cluster = ClusterFactory()
    data = changeform_data(console.get(ADD))
    data.update(
        {
            "key": "new-bp",
            "name": "New",
            "cluster": cluster.pk,
            "start_command": "run",
            "state": BlueprintState.TESTING,
            "access_rules-TOTAL_FORMS": "1",
            "access_rules-0-kind": AccessRuleKind.DOMAIN,
            "access_rules-0-value": "@Example.ORG",
            "ai_providers-TOTAL_FORMS": "1",
            "ai_providers-0-provider": "anthropic",
            "ai_providers-0-enabled": "on",
            "ai_providers-0-auth_mode": "api_key",
            "ai_providers-0-api_key": "sk-fresh-key-000",
        }
    )
    response = console.post(ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    blueprint = Blueprint.objects.get(key="new-bp")
    assert list(blueprint.access_rules.values_list("value", flat=True)) == ["example.org"]
    assert blueprint.ai_providers.get().api_key == "sk-fresh-key-000"
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["blueprint.create", "blueprint.access_rules", "ai_provider.create"]
    assert "sk-fresh-key-000" not in console.get(change_url(blueprint)).content.decode()


def test_blank_key_field_keeps_the_stored_key(console, provider):
    original = provider.api_key
    data = changeform_data(console.get(change_url(provider.blueprint)))
    assert "ai_providers-0-api_key" not in data
    data["ai_providers-0-model"] = "claude-opus-4"
    data["ai_providers-0-api_key"] = ""
    response = console.post(change_url(provider.blueprint), data)
    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.model, provider.api_key) == ("claude-opus-4", original)
    event = AuditEvent.objects.get(action="ai_provider.update")
    assert event.details["api_key_replaced"] is False
    assert original not in str(event.details)


def test_filled_key_field_replaces_the_stored_key(console, provider):
    data = changeform_data(console.get(change_url(provider.blueprint)))
    data["ai_providers-0-api_key"] = "sk-replacement-999"
    response = console.post(change_url(provider.blueprint), data)
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.api_key == "sk-replacement-999"
    event = AuditEvent.objects.get(action="ai_provider.update")
    assert event.details["api_key_replaced"] is True
    assert "sk-replacement-999" not in str(event.details)
    history = reverse("admin:blueprints_blueprint_history", args=[provider.blueprint.pk])
    for page in (change_url(provider.blueprint), history):
        assert "sk-replacement-999" not in console.get(page).content.decode()


def test_provider_without_a_key_is_a_form_error_and_saves_nothing(console):
    blueprint = BlueprintFactory()
    data = changeform_data(console.get(change_url(blueprint)))
    data.update(
        {
            "name": "Changed",
            "ai_providers-TOTAL_FORMS": "1",
            "ai_providers-0-provider": "openai",
            "ai_providers-0-enabled": "on",
            "ai_providers-0-auth_mode": "api_key",
        }
    )
    response = console.post(change_url(blueprint), data)
    assert response.status_code == 200
    assert "An enabled provider needs its API key." in response.content.decode()
    blueprint.refresh_from_db()
    assert blueprint.name != "Changed"
    assert not AuditEvent.objects.exists()


def test_removing_a_provider_and_a_rule_goes_through_services(console, provider):
    blueprint = provider.blueprint
    AccessRuleFactory(blueprint=blueprint, kind=AccessRuleKind.EMAIL, value="a@example.net")
    data = changeform_data(console.get(change_url(blueprint)))
    data["ai_providers-0-DELETE"] = "on"
    data["access_rules-0-DELETE"] = "on"
    response = console.post(change_url(blueprint), data)
    assert response.status_code == 302
    assert not AIProvider.objects.filter(pk=provider.pk).exists()
    assert BlueprintAccessRule.objects.filter(blueprint=blueprint).count() == 1
    assert AuditEvent.objects.filter(action="ai_provider.delete").count() == 1
    event = AuditEvent.objects.get(action="blueprint.access_rules")
    assert len(event.details["rules"]) == 1


def test_delete_goes_through_the_service_and_bulk_delete_is_off(console, provider):
    blueprint = provider.blueprint
    actions = console.get(CHANGELIST).context["action_form"].fields["action"]
    assert "delete_selected" not in dict(actions.choices)
    delete = reverse("admin:blueprints_blueprint_delete", args=[blueprint.pk])
    response = console.post(delete, {"post": "yes"})
    assert response.status_code == 302
    assert not Blueprint.objects.filter(pk=blueprint.pk).exists()
    assert AuditEvent.objects.filter(action="blueprint.delete", target_id=blueprint.key).exists()


@pytest.mark.parametrize(
    ("action", "start", "expected"),
    [
        ("enable", BlueprintState.DISABLED, BlueprintState.ENABLED),
        ("disable", BlueprintState.ENABLED, BlueprintState.DISABLED),
        ("set_testing", BlueprintState.ENABLED, BlueprintState.TESTING),
    ],
)
def test_state_actions_call_the_service(console, action, start, expected):
    blueprints = [BlueprintFactory(state=start), BlueprintFactory(state=start)]
    response = console.post(
        CHANGELIST, {"action": action, "_selected_action": [b.pk for b in blueprints]}
    )
    assert response.status_code == 302
    for blueprint in blueprints:
        blueprint.refresh_from_db()
        assert blueprint.state == expected
    events = AuditEvent.objects.filter(action="blueprint.set_state")
    assert [e.details for e in events] == [{"from": start, "to": expected}] * 2
    (message,) = messages_of(response)
    assert "2 blueprint(s)" in message


def test_settings_no_runtime_applies_yet_say_so(console):
    page = console.get(change_url(BlueprintFactory())).content.decode()
    assert page.count("Not applied yet:") == len(BlueprintAdmin.not_applied)
    assert "only a Kubernetes runtime uses it" in page
    assert "enforces no memory limit" not in page  # the local runtime enforces resources
