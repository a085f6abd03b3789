"""Blueprint, access rule and AI provider validation, constraints and display."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from blueprints.choices import AccessRuleKind, AIProviderKind, AnthropicAuthMode
from blueprints.models import AIProvider, Blueprint, BlueprintAccessRule
from blueprints.tests.factories import AccessRuleFactory, AIProviderFactory, BlueprintFactory

pytestmark = pytest.mark.django_db


def errors_of(obj, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        obj.full_clean(**kwargs)
    return excinfo.value.message_dict


def test_the_factory_builds_a_valid_blueprint():
    BlueprintFactory().full_clean()


def test_duplicate_blueprint_key_is_refused():
    existing = BlueprintFactory(key="python")
    duplicate = Blueprint(key="python", name="Other", cluster=existing.cluster, start_command="x")
    assert "key" in errors_of(duplicate)
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("env", {"1BAD": "x"}, "not a valid environment variable name"),
        ("env", {"BAD-NAME": "x"}, "not a valid environment variable name"),
        ("env", {"": "x"}, "not a valid environment variable name"),
        ("env", {"PORT": "8080"}, "set by the runtime"),
        ("env", {"port": "8080"}, "set by the runtime"),
        ("env", {"DEV_PORT": "1"}, "set by the runtime"),
        ("env", {"HOME": "/x"}, "set by the runtime"),
        ("env", {"PATH": "/bin"}, "set by the runtime"),
        ("env", {"DEBUG": 1}, "must be a string"),
        ("env", ["A=b"], "must be an object"),
        ("ports", {"port": 3000}, "must be a list"),
        ("ports", [{"port": 3000, "name": "a"}, {"port": 3000, "name": "b"}], "declared twice"),
        ("ports", [{"port": 0, "name": "app"}], "not a port number"),
        ("ports", [{"port": 65536, "name": "app"}], "not a port number"),
        ("ports", [{"port": "3000", "name": "app"}], "not a port number"),
        ("ports", [{"port": True, "name": "app"}], "not a port number"),
        ("ports", [{"port": 3000, "name": "App"}], "lowercase DNS label"),
        ("ports", [{"port": 3000, "name": "-app"}], "lowercase DNS label"),
        ("ports", [{"port": 3000, "name": "my_app"}], "lowercase DNS label"),
        ("ports", [{"port": 3000}], "exactly 'port' and 'name'"),
        ("ports", [{"port": 3000, "name": "a", "x": 1}], "exactly 'port' and 'name'"),
        ("ports", [{"port": 3000 + i, "name": f"p{i}"} for i in range(11)], "At most 10"),
        ("naming_template", "{user}-{project}", "Unknown placeholder(s) project"),
        ("naming_template", "{user}-{0}", "Unknown placeholder(s) 0"),
        ("naming_template", "{}", "Unknown placeholder(s)"),
        ("naming_template", "static-name", "at least one placeholder"),
        ("naming_template", "{user", "malformed"),
        ("naming_template", "{user}-{random:>30000000}", "no format spec or conversion"),
        ("naming_template", "{name!r}", "no format spec or conversion"),
        ("layout_tabs", [{"kind": "browser"}], "Each tab needs a kind"),
        ("layout_tabs", [{"kind": "command", "title": "Run"}], "needs its command"),
        ("layout_tabs", [{"kind": "terminal", "title": "x" * 41}], "at most 40"),
        ("layout_tabs", [{"kind": "terminal", "extra": 1}], "only 'kind', 'title'"),
        ("layout_tabs", [{"kind": "terminal"}] * 13, "At most 12"),
        ("cpu", "two", "cores"),
        ("memory", "4GB", "size such as"),
        ("storage", "10", "size such as"),
        ("git_repository", "ftp://example.com/repo.git", "repository address"),
        ("key", "Not A Slug", "slug"),
    ],
)
def test_invalid_blueprint_fields_are_refused_naming_the_field(field, value, message):
    blueprint = BlueprintFactory.build(cluster=BlueprintFactory().cluster, **{field: value})
    errors = errors_of(blueprint)
    assert field in errors
    assert any(message.lower() in text.lower() for text in errors[field]), errors[field]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("env", {"NODE_ENV": "development", "_X": "", "a1": "b"}),
        ("ports", []),
        ("ports", [{"port": 1, "name": "a"}, {"port": 65535, "name": "api-2"}]),
        ("naming_template", "{name}"),
        ("naming_template", "ws-{user}-{blueprint}-{random}"),
        ("layout_tabs", []),
        ("layout_tabs", [{"kind": "command", "title": "Logs", "command": "tail -f x"}]),
        ("cpu", "500m"),
        ("cpu", "0.5"),
        ("memory", "512Mi"),
        ("git_repository", "https://github.com/acme/app.git"),
        ("git_repository", "git@github.com:acme/app.git"),
        ("git_repository", "ssh://git@example.com/acme/app.git"),
    ],
)
def test_valid_blueprint_fields_are_accepted(field, value):
    BlueprintFactory.build(cluster=BlueprintFactory().cluster, **{field: value}).full_clean()


def test_only_a_command_tab_has_a_command_and_one_chat_tab_at_most():
    cluster = BlueprintFactory().cluster
    with_command = BlueprintFactory.build(
        cluster=cluster, layout_tabs=[{"kind": "claude", "command": "rm -rf ~"}]
    )
    assert "layout_tabs" in errors_of(with_command)
    two_chats = BlueprintFactory.build(
        cluster=cluster, layout_tabs=[{"kind": "chat"}, {"kind": "chat", "title": "Again"}]
    )
    assert "layout_tabs" in errors_of(two_chats)
    BlueprintFactory.build(
        cluster=cluster, layout_tabs=[{"kind": "chat"}, {"kind": "claude"}, {"kind": "files"}]
    ).full_clean()


def test_a_custom_provider_needs_its_endpoint_and_model_and_openai_takes_no_endpoint():
    blueprint = BlueprintFactory()
    custom = AIProvider(blueprint=blueprint, provider="custom", endpoint_url="https://x.example/v1")
    with pytest.raises(ValidationError) as raised:
        custom.full_clean()
    assert "model" in raised.value.message_dict
    openai = AIProvider(
        blueprint=blueprint, provider="openai", api_key="sk-1", endpoint_url="https://x.example"
    )
    with pytest.raises(ValidationError) as raised:
        openai.full_clean()
    assert "endpoint_url" in raised.value.message_dict


def test_unknown_state_is_refused_by_the_database():
    blueprint = BlueprintFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Blueprint.objects.filter(pk=blueprint.pk).update(state="archived")


def test_a_cluster_with_blueprints_cannot_be_deleted():
    from django.db.models import ProtectedError

    blueprint = BlueprintFactory()
    with pytest.raises(ProtectedError):
        blueprint.cluster.delete()


def test_blueprint_layout_and_resources():
    blueprint = BlueprintFactory(cpu="2", memory="4Gi", storage="20Gi", layout_locked=True)
    assert blueprint.resources == {"cpu": "2", "memory": "4Gi", "storage": "20Gi"}
    assert blueprint.layout == {
        "tabs": [{"kind": "terminal", "title": "Terminal"}],
        "locked": True,
        "preview": True,
        "path_bar": True,
    }


# --- access rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "normal"),
    [
        (AccessRuleKind.EMAIL, "  Alice@Example.COM ", "alice@example.com"),
        (AccessRuleKind.EMAIL, "bob@eu.example.com", "bob@eu.example.com"),
        (AccessRuleKind.DOMAIN, "@Example.com", "example.com"),
        (AccessRuleKind.DOMAIN, " EU.Example.com ", "eu.example.com"),
        (AccessRuleKind.DOMAIN, "example.co.uk", "example.co.uk"),
    ],
)
def test_access_rule_values_are_normalised(kind, value, normal):
    rule = BlueprintAccessRule(blueprint=BlueprintFactory(), kind=kind, value=value)
    rule.full_clean()
    assert rule.value == normal


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (AccessRuleKind.EMAIL, "not-an-email"),
        (AccessRuleKind.EMAIL, "example.com"),
        (AccessRuleKind.EMAIL, ""),
        (AccessRuleKind.DOMAIN, "localhost"),
        (AccessRuleKind.DOMAIN, "alice@example.com"),
        (AccessRuleKind.DOMAIN, "exa mple.com"),
        (AccessRuleKind.DOMAIN, "-bad.example.com"),
        (AccessRuleKind.DOMAIN, "example..com"),
        (AccessRuleKind.DOMAIN, "*.example.com"),
    ],
)
def test_invalid_access_rule_values_are_refused(kind, value):
    rule = BlueprintAccessRule(blueprint=BlueprintFactory(), kind=kind, value=value)
    assert "value" in errors_of(rule)


def test_unknown_access_rule_kind_is_refused():
    rule = BlueprintAccessRule(blueprint=BlueprintFactory(), kind="group", value="devs")
    assert "kind" in errors_of(rule)


def test_an_access_rule_is_unique_per_blueprint():
    rule = AccessRuleFactory(value="example.com")
    AccessRuleFactory(value="example.com")  # another blueprint
    with pytest.raises(IntegrityError), transaction.atomic():
        BlueprintAccessRule.objects.create(
            blueprint=rule.blueprint, kind=rule.kind, value="example.com"
        )


def test_access_rule_str():
    assert str(AccessRuleFactory(kind="email", value="a@example.com")) == "email: a@example.com"


# --- AI providers --------------------------------------------------------------------------


def test_a_custom_provider_needs_its_endpoint():
    provider = AIProviderFactory.build(
        blueprint=BlueprintFactory(), provider=AIProviderKind.CUSTOM, endpoint_url=""
    )
    assert "endpoint_url" in errors_of(provider)
    provider.endpoint_url = "https://llm.internal.example.com/v1"
    provider.api_key = ""
    provider.full_clean()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"provider": AIProviderKind.OPENAI, "auth_mode": AnthropicAuthMode.USER_OAUTH},
            "auth_mode",
        ),
        ({"api_key": ""}, "api_key"),
        ({"provider": "gemini"}, "provider"),
        ({"endpoint_url": "not a url"}, "endpoint_url"),
    ],
)
def test_invalid_ai_providers_are_refused(changes, field):
    provider = AIProviderFactory.build(blueprint=BlueprintFactory(), **changes)
    assert field in errors_of(provider)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"enabled": False, "api_key": ""},
        {"auth_mode": AnthropicAuthMode.USER_OAUTH, "api_key": ""},
    ],
)
def test_valid_ai_providers_are_accepted(changes):
    AIProviderFactory.build(blueprint=BlueprintFactory(), **changes).full_clean()


def test_one_provider_of_a_kind_per_blueprint():
    provider = AIProviderFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        AIProvider.objects.create(blueprint=provider.blueprint, provider=provider.provider)


def test_ai_provider_str_and_has_api_key():
    provider = AIProviderFactory(blueprint=BlueprintFactory(key="py"))
    assert str(provider) == "Anthropic for py"
    assert provider.api_key not in str(provider)
    assert provider.has_api_key
    assert not AIProviderFactory(api_key="", enabled=False).has_api_key


def test_blueprint_str_is_its_name():
    assert str(BlueprintFactory(name="Python sandbox")) == "Python sandbox"
