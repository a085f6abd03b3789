"""Validators shared by several apps."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

hex_colour = RegexValidator(
    r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$",
    message="Enter a hex colour such as #4f46e5 or #fff.",
    code="invalid_colour",
)

DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def dns_label(value: str) -> None:
    """A single lowercase DNS label (a subdomain or host prefix)."""
    if not DNS_LABEL.match(value or ""):
        raise ValidationError(
            "Use 1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen.",
            code="invalid_subdomain",
        )


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RUNTIME_ENV = frozenset({"PORT", "DEV_PORT", "HOME", "PATH", "USER", "LOGNAME", "SHELL"})
"""Set by the runtime for every workspace process."""
INJECTED_ENV = frozenset(
    {
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "OPENAI_API_KEY",
        "OPENAI_MODEL",
        "CUSTOM_LLM_API_KEY",
        "CUSTOM_LLM_BASE_URL",
        "CUSTOM_LLM_MODEL",
        "BLUEPRINT_AI_PROVIDERS",
        "OPENCODE_DEFAULT_MODEL",
        "BLUEPRINT_CHAT_SYSTEM_PROMPT",
        "BLUEPRINT_DATA_SOURCES_PROMPT",
        "RDE_USER_PROFILE",
    }
)
"""The injection contract: the portal sets these from the blueprint and the builder."""
RESERVED_ENV_PREFIXES = ("PORT_", "ENCLAVE_", "BLUEPRINT_")


def env_name_problem(name: object) -> str | None:
    """Why `name` cannot be a blueprint or builder variable, or None when it can."""
    if not isinstance(name, str) or not ENV_NAME.match(name):
        return f"{name!r} is not a valid environment variable name (letters, digits, _)."
    upper = name.upper()
    if upper in RUNTIME_ENV or upper.startswith("PORT_"):
        return f"{name} is set by the runtime and cannot be overridden."
    if upper in INJECTED_ENV or upper.startswith(RESERVED_ENV_PREFIXES):
        return f"{name} is set by the portal (AI providers, prompts, profile) and is reserved."
    return None
