"""What a workspace receives from the portal: its spec, and the variables injected into it.

The injection contract (the reference product's names) is built here, from the blueprint
(AI providers, chat system prompt, data sources) and the workspace's owner (profile,
personal secrets):

* ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL`` / ``ANTHROPIC_MODEL``, ``OPENAI_API_KEY``
  / ``OPENAI_MODEL``, ``CUSTOM_LLM_API_KEY`` / ``CUSTOM_LLM_BASE_URL`` /
  ``CUSTOM_LLM_MODEL``, for each enabled provider;
* ``BLUEPRINT_AI_PROVIDERS`` (JSON ``[{provider, enabled, model}]``, in the order
  Anthropic → OpenAI → Custom) and ``OPENCODE_DEFAULT_MODEL`` (the blueprint's chat
  model, else the first enabled provider that can serve the chat);
* ``BLUEPRINT_CHAT_SYSTEM_PROMPT``, ``BLUEPRINT_DATA_SOURCES_PROMPT``, ``RDE_USER_PROFILE``;
* the owner's builder secrets under their own names.

All of it travels as the agent's *secret env* — never in the spec, which the agent
writes down as it is — and is refreshed at every start and restart, so that every process
of a workspace has the same variables until its next restart. `injection_digest` is a
keyed digest of it, stored as a workspace tag, which tells the editor when the workspace
runs with other variables than today's ("restart to apply").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings

from accounts.models import BuilderSecret, User, normalize_email
from blueprints.choices import AIProviderKind, AnthropicAuthMode, DataSourceKind
from blueprints.models import ASSISTANT_PORT, ASSISTANT_PORT_NAME, AIProvider, Blueprint

PROVIDER_ORDER = (AIProviderKind.ANTHROPIC, AIProviderKind.OPENAI, AIProviderKind.CUSTOM)
OPENCODE_PROVIDER_ID = {
    AIProviderKind.ANTHROPIC: "anthropic",
    AIProviderKind.OPENAI: "openai",
    AIProviderKind.CUSTOM: "custom-llm",
}
DEFAULT_MODEL = {
    AIProviderKind.ANTHROPIC: "claude-sonnet-4-6",
    AIProviderKind.OPENAI: "gpt-4o",
}


def enabled_providers(blueprint: Blueprint) -> list[AIProvider]:
    """The blueprint's enabled providers in the contract's order: Anthropic, OpenAI, Custom."""
    providers = [p for p in blueprint.ai_providers.all() if p.enabled]
    return sorted(providers, key=lambda p: PROVIDER_ORDER.index(p.provider))


def serves_chat(provider: AIProvider) -> bool:
    """Whether the chat (OpenCode) can use the provider with what the blueprint gives."""
    if provider.provider == AIProviderKind.ANTHROPIC:
        return provider.auth_mode == AnthropicAuthMode.API_KEY and bool(provider.api_key)
    if provider.provider == AIProviderKind.OPENAI:
        return bool(provider.api_key)
    return bool(provider.endpoint_url and provider.model)


def chat_model(blueprint: Blueprint, providers: list[AIProvider]) -> str:
    """``OPENCODE_DEFAULT_MODEL``: the blueprint's choice, else the first usable provider."""
    if blueprint.opencode_default_model:
        return blueprint.opencode_default_model
    for provider in providers:
        if serves_chat(provider):
            model = provider.model or DEFAULT_MODEL.get(provider.provider, "")
            return f"{OPENCODE_PROVIDER_ID[provider.provider]}/{model}"
    return ""


def chat_available(blueprint: Blueprint) -> bool:
    """Whether a chat tab of this blueprint has a provider to talk to."""
    return bool(chat_model(blueprint, enabled_providers(blueprint)))


def ai_variables(blueprint: Blueprint) -> dict[str, str]:
    """The provider variables of a blueprint (keys included)."""
    result: dict[str, str] = {}
    providers = enabled_providers(blueprint)
    for provider in providers:
        if provider.provider == AIProviderKind.ANTHROPIC:
            if provider.api_key and provider.auth_mode == AnthropicAuthMode.API_KEY:
                result["ANTHROPIC_API_KEY"] = provider.api_key
            if provider.endpoint_url:
                result["ANTHROPIC_BASE_URL"] = provider.endpoint_url
            if provider.model:
                result["ANTHROPIC_MODEL"] = provider.model
        elif provider.provider == AIProviderKind.OPENAI:
            if provider.api_key:
                result["OPENAI_API_KEY"] = provider.api_key
            if provider.model:
                result["OPENAI_MODEL"] = provider.model
        else:
            if provider.api_key:
                result["CUSTOM_LLM_API_KEY"] = provider.api_key
            result["CUSTOM_LLM_BASE_URL"] = provider.endpoint_url
            if provider.model:
                result["CUSTOM_LLM_MODEL"] = provider.model
    if providers:
        summary = [{"provider": p.provider, "enabled": True, "model": p.model} for p in providers]
        result["BLUEPRINT_AI_PROVIDERS"] = json.dumps(summary, separators=(",", ":"))
    model = chat_model(blueprint, providers)
    if model:
        result["OPENCODE_DEFAULT_MODEL"] = model
    return result


def data_sources_prompt(sources: list[dict[str, str]]) -> str:
    """``BLUEPRINT_DATA_SOURCES_PROMPT``: what the AI may use, and how to reach it."""
    if not sources:
        return ""
    labels = dict(DataSourceKind.choices)
    lines = ["Data sources available in this workspace (credentials are in the environment):"]
    for source in sources:
        lines.append(f"- {source['name']} ({labels.get(source['kind'], source['kind'])})")
        for line in (source.get("setup") or "").strip().splitlines():
            lines.append(f"  {line}")
    return "\n".join(lines)


def injected_env(blueprint: Blueprint | None, owner: User | None) -> dict[str, str]:
    """Every variable the portal injects into `owner`'s workspace of `blueprint`.

    Builder secrets come last but can never shadow a contract variable: their names are
    validated against the reserved ones when stored.
    """
    result: dict[str, str] = {}
    if blueprint is not None:
        result.update(ai_variables(blueprint))
        if blueprint.chat_system_prompt.strip():
            result["BLUEPRINT_CHAT_SYSTEM_PROMPT"] = blueprint.chat_system_prompt.strip()
        sources = data_sources_prompt(blueprint.data_sources or [])
        if sources:
            result["BLUEPRINT_DATA_SOURCES_PROMPT"] = sources
    if owner is not None:
        result["RDE_USER_PROFILE"] = json.dumps(owner.profile, separators=(",", ":"))
        for secret in BuilderSecret.objects.filter(user=owner).order_by("name"):
            result.setdefault(secret.name, secret.value)
    return result


def injection_digest(env: dict[str, str]) -> str:
    """A keyed digest of the injected variables (safe to store as a tag: it reveals none)."""
    key = hmac.new(settings.SECRET_KEY.encode(), b"enclave workspace env digest", "sha256")
    canonical = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key.digest(), canonical, hashlib.sha256).hexdigest()[:32]


def spec_of(blueprint: Blueprint) -> dict[str, Any]:
    """The environment spec of a blueprint; a chat tab adds the assistant's port."""
    ports = [dict(p) for p in blueprint.ports]
    if blueprint.has_chat_tab:
        ports.append({"port": ASSISTANT_PORT, "name": ASSISTANT_PORT_NAME})
    return {
        "image": blueprint.image,
        "start_command": blueprint.start_command,
        "setup_script": blueprint.setup_script,
        "git_repository": blueprint.git_repository,
        "env": dict(blueprint.env),
        "ports": ports,
        "resources": blueprint.resources,
        "network": blueprint.network,
    }


def owner_of(email: str) -> User | None:
    """The member owning a workspace (by its owner tag), if they still exist."""
    return User.objects.filter(email=normalize_email(email)).first()


def blueprint_with_providers(key: str) -> Blueprint | None:
    return Blueprint.objects.prefetch_related("ai_providers").filter(key=key).first()
