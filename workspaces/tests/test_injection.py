"""The injection contract: what a workspace receives from its blueprint and its owner."""

import json

import pytest

from accounts.models import BuilderSecret
from accounts.tests.factories import UserFactory
from blueprints.choices import AIProviderKind, AnthropicAuthMode
from blueprints.tests.factories import AIProviderFactory, BlueprintFactory
from workspaces.injection import (
    chat_available,
    data_sources_prompt,
    injected_env,
    injection_digest,
    spec_of,
)

pytestmark = pytest.mark.django_db

ANTHROPIC_KEY = "sk-ant-secret-000001"
OPENAI_KEY = "sk-openai-secret-000002"
CUSTOM_KEY = "custom-secret-000003"


@pytest.fixture
def shop(cluster):
    return BlueprintFactory(key="shop", cluster=cluster)


def test_every_enabled_provider_gives_its_variables_in_the_contract_order(shop):
    AIProviderFactory(
        blueprint=shop,
        provider=AIProviderKind.CUSTOM,
        endpoint_url="https://llm.internal.example/v1",
        model="qwen-coder",
        api_key=CUSTOM_KEY,
    )
    AIProviderFactory(
        blueprint=shop, provider=AIProviderKind.OPENAI, model="gpt-x", api_key=OPENAI_KEY
    )
    AIProviderFactory(
        blueprint=shop,
        provider=AIProviderKind.ANTHROPIC,
        model="claude-x",
        api_key=ANTHROPIC_KEY,
        endpoint_url="https://gateway.internal.example",
    )

    env = injected_env(shop, None)

    assert env["ANTHROPIC_API_KEY"] == ANTHROPIC_KEY
    assert env["ANTHROPIC_BASE_URL"] == "https://gateway.internal.example"
    assert env["ANTHROPIC_MODEL"] == "claude-x"
    assert env["OPENAI_API_KEY"] == OPENAI_KEY
    assert env["CUSTOM_LLM_API_KEY"] == CUSTOM_KEY
    assert env["CUSTOM_LLM_BASE_URL"] == "https://llm.internal.example/v1"
    assert json.loads(env["BLUEPRINT_AI_PROVIDERS"]) == [
        {"provider": "anthropic", "enabled": True, "model": "claude-x"},
        {"provider": "openai", "enabled": True, "model": "gpt-x"},
        {"provider": "custom", "enabled": True, "model": "qwen-coder"},
    ]
    assert env["OPENCODE_DEFAULT_MODEL"] == "anthropic/claude-x"


def test_the_chat_model_is_the_first_provider_that_can_serve_it(shop):
    AIProviderFactory(
        blueprint=shop, provider=AIProviderKind.ANTHROPIC, auth_mode=AnthropicAuthMode.USER_OAUTH
    )
    AIProviderFactory(
        blueprint=shop,
        provider=AIProviderKind.CUSTOM,
        endpoint_url="http://127.0.0.1:9/v1",
        model="llama",
        api_key="",
    )

    env = injected_env(shop, None)

    assert "ANTHROPIC_API_KEY" not in env  # each builder signs in to Claude Code
    assert "CUSTOM_LLM_API_KEY" not in env
    assert env["OPENCODE_DEFAULT_MODEL"] == "custom-llm/llama"
    assert chat_available(shop)


def test_the_blueprint_chooses_the_chat_model(shop):
    AIProviderFactory(blueprint=shop, provider=AIProviderKind.ANTHROPIC, api_key=ANTHROPIC_KEY)
    shop.opencode_default_model = "anthropic/claude-opus-4-1"

    assert injected_env(shop, None)["OPENCODE_DEFAULT_MODEL"] == "anthropic/claude-opus-4-1"


def test_disabled_providers_give_nothing_and_no_chat(shop):
    AIProviderFactory(blueprint=shop, enabled=False, api_key=ANTHROPIC_KEY)

    assert injected_env(shop, None) == {}
    assert not chat_available(shop)


def test_prompts_profile_and_builder_secrets(shop):
    shop.chat_system_prompt = "  Answer in short sentences.  "
    shop.data_sources = [
        {"kind": "postgresql", "name": "Orders", "setup": "Use $ORDERS_URL.\nRead-only."}
    ]
    owner = UserFactory(
        experience_level="non_technical",
        preferred_language="Français",
        role_title="Analyst",
        timezone="Europe/Paris",
    )
    BuilderSecret.objects.create(user=owner, name="GIT_TOKEN", value="ghp_owner_secret")
    BuilderSecret.objects.create(user=UserFactory(), name="GIT_TOKEN", value="ghp_someone_else")

    env = injected_env(shop, owner)

    assert env["BLUEPRINT_CHAT_SYSTEM_PROMPT"] == "Answer in short sentences."
    assert env["BLUEPRINT_DATA_SOURCES_PROMPT"] == (
        "Data sources available in this workspace (credentials are in the environment):\n"
        "- Orders (PostgreSQL)\n  Use $ORDERS_URL.\n  Read-only."
    )
    assert json.loads(env["RDE_USER_PROFILE"]) == {
        "experience_level": "non_technical",
        "preferred_language": "Français",
        "role_title": "Analyst",
        "timezone": "Europe/Paris",
    }
    assert env["GIT_TOKEN"] == "ghp_owner_secret"


def test_data_sources_prompt_is_empty_without_sources():
    assert data_sources_prompt([]) == ""


def test_the_spec_carries_no_injected_variable_and_a_chat_tab_adds_the_assistant_port(shop):
    shop.env = {"NODE_ENV": "development"}
    shop.layout_tabs = [{"kind": "chat", "title": "Chat"}, {"kind": "terminal"}]
    AIProviderFactory(blueprint=shop, api_key=ANTHROPIC_KEY)

    spec = spec_of(shop)

    assert spec["env"] == {"NODE_ENV": "development"}
    assert spec["ports"] == [{"port": 3000, "name": "app"}, {"port": 4096, "name": "assistant"}]
    assert ANTHROPIC_KEY not in json.dumps(spec)


def test_the_digest_changes_with_any_value_and_reveals_none():
    first = injection_digest({"ANTHROPIC_API_KEY": "sk-1"})

    assert first == injection_digest({"ANTHROPIC_API_KEY": "sk-1"})
    assert first != injection_digest({"ANTHROPIC_API_KEY": "sk-2"})
    assert "sk-1" not in first and len(first) == 32
