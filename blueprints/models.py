"""Blueprints: the workspace templates platform engineers publish to builders."""

from __future__ import annotations

import re
import string

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator, validate_email
from django.db import models

from blueprints.choices import (
    AccessRuleKind,
    AIProviderKind,
    AnthropicAuthMode,
    BlueprintState,
    DataSourceKind,
    Network,
    TabKind,
)
from core.crypto import EncryptedTextField
from core.validators import DNS_LABEL, env_name_problem

CPU_QUANTITY = RegexValidator(
    r"^(?:\d+(?:\.\d+)?|\d+m)$", "Use cores (e.g. 2, 0.5) or millicores (e.g. 500m).", "invalid_cpu"
)
BYTES_QUANTITY = RegexValidator(
    r"^\d+(?:Ki|Mi|Gi|Ti)$", "Use a size such as 512Mi, 4Gi or 1Ti.", "invalid_quantity"
)
NAMING_PLACEHOLDERS = {"user", "blueprint", "random", "name"}
GIT_URL = re.compile(r"^(?:https://|http://|ssh://|git@[\w.-]+:)[\w./~:@%+-]+$")
MAX_PORTS = 10
MAX_TABS = 12
ASSISTANT_PORT = 4096
"""Where the chat tab's assistant (OpenCode) listens inside a workspace: an internal port
the portal adds to the spec (named `assistant`), never one a blueprint may declare."""
ASSISTANT_PORT_NAME = "assistant"
MAX_DATA_SOURCES = 20
OPENCODE_MODEL = re.compile(r"^(anthropic|openai|custom-llm)/[\w.:@-]{1,100}$")


def validate_env(value: object) -> None:
    """An object of environment variable names to string values."""
    if not isinstance(value, dict):
        raise ValidationError("Environment variables must be an object of NAME: value.")
    for name, val in value.items():
        problem = env_name_problem(name)
        if problem:
            raise ValidationError(problem)
        if not isinstance(val, str):
            raise ValidationError(f"The value of {name} must be a string.")


def validate_ports(value: object) -> None:
    """A list of `{port, name}` with distinct ports 1-65535 and DNS-label names."""
    if not isinstance(value, list):
        raise ValidationError("Ports must be a list of {port, name}.")
    if len(value) > MAX_PORTS:
        raise ValidationError(f"At most {MAX_PORTS} preview ports.")
    seen: set[int] = set()
    for item in value:
        if not isinstance(item, dict) or set(item) != {"port", "name"}:
            raise ValidationError("Each port is an object with exactly 'port' and 'name'.")
        port, name = item["port"], item["name"]
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ValidationError(f"{port!r} is not a port number (1-65535).")
        if port in seen:
            raise ValidationError(f"Port {port} is declared twice.")
        if port == ASSISTANT_PORT or name == ASSISTANT_PORT_NAME:
            raise ValidationError(
                f"Port {ASSISTANT_PORT} and the name '{ASSISTANT_PORT_NAME}' are the chat "
                "tab's assistant; choose another."
            )
        if not isinstance(name, str) or not DNS_LABEL.match(name):
            raise ValidationError(f"Port name {name!r} must be a lowercase DNS label.")
        seen.add(port)


def validate_tabs(value: object) -> None:
    """Editor tabs: `{kind, title[, command]}`; custom-command tabs need their command."""
    if not isinstance(value, list):
        raise ValidationError("Tabs must be a list.")
    if len(value) > MAX_TABS:
        raise ValidationError(f"At most {MAX_TABS} tabs.")
    for tab in value:
        if not isinstance(tab, dict) or tab.get("kind") not in TabKind.values:
            raise ValidationError(f"Each tab needs a kind among {', '.join(TabKind.values)}.")
        if not isinstance(tab.get("title", ""), str) or len(tab.get("title", "")) > 40:
            raise ValidationError("A tab title is text of at most 40 characters.")
        if set(tab) - {"kind", "title", "command"}:
            raise ValidationError("A tab has only 'kind', 'title' and 'command'.")
        command = tab.get("command", "")
        if tab["kind"] == TabKind.COMMAND and not (isinstance(command, str) and command.strip()):
            raise ValidationError("A custom command tab needs its command.")
        if not isinstance(command, str):
            raise ValidationError("A tab command is text.")
        if command and tab["kind"] != TabKind.COMMAND:
            raise ValidationError("Only a custom command tab has a command.")
    if sum(1 for tab in value if tab["kind"] == TabKind.CHAT) > 1:
        raise ValidationError("A layout has at most one chat tab.")


def validate_data_sources(value: object) -> None:
    """Data sources the AI is told about: `{kind, name, setup}`; credentials stay in env."""
    if not isinstance(value, list):
        raise ValidationError("Data sources must be a list of {kind, name, setup}.")
    if len(value) > MAX_DATA_SOURCES:
        raise ValidationError(f"At most {MAX_DATA_SOURCES} data sources.")
    names: set[str] = set()
    for item in value:
        if not isinstance(item, dict) or set(item) - {"kind", "name", "setup"}:
            raise ValidationError("Each data source has only 'kind', 'name' and 'setup'.")
        if item.get("kind") not in DataSourceKind.values:
            raise ValidationError(
                f"A data source kind is one of {', '.join(DataSourceKind.values)}."
            )
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 60:
            raise ValidationError("A data source needs a name of at most 60 characters.")
        if name.strip().lower() in names:
            raise ValidationError(f"The data source {name!r} is listed twice.")
        names.add(name.strip().lower())
        setup = item.get("setup", "")
        if not isinstance(setup, str) or len(setup) > 4000:
            raise ValidationError("A data source's setup text has at most 4000 characters.")


def validate_naming_template(value: str) -> None:
    """Only the placeholders {user} {blueprint} {random} {name}, bare (no format spec such
    as ``{random:>30000000}``, no conversion such as ``{name!r}``), and at least one."""
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(value)]
    except ValueError as exc:
        raise ValidationError(f"Naming template is malformed: {exc}.") from exc
    fields = [f for f, _, _ in parsed if f is not None]
    if any(spec or conv for f, spec, conv in parsed if f is not None):
        raise ValidationError(
            "Placeholders take no format spec or conversion: write {random}, not "
            "{random:>8} or {random!r}."
        )
    unknown = set(fields) - NAMING_PLACEHOLDERS
    if unknown:
        raise ValidationError(
            f"Unknown placeholder(s) {', '.join(sorted(unknown))}; "
            "use {user}, {blueprint}, {random} or {name}."
        )
    if not fields:
        raise ValidationError("The naming template needs at least one placeholder.")


def validate_git_repository(value: str) -> None:
    if value and not GIT_URL.match(value):
        raise ValidationError("Use an https://, ssh:// or git@host:path repository address.")


def default_tabs() -> list[dict[str, str]]:
    return [{"kind": TabKind.TERMINAL, "title": "Terminal"}]


class Blueprint(models.Model):
    """A workspace template: what runs, where, with which resources, for whom.

    `state` gates the catalog: `enabled` blueprints are offered to members the access
    rules admit, `testing` ones only to admins, `disabled` ones to nobody (running
    workspaces are untouched). Secrets never live here: AI keys are on `AIProvider`.
    """

    key = models.SlugField(max_length=50, unique=True, help_text="Stable identifier.")
    name = models.CharField("display name", max_length=100)
    description = models.TextField(blank=True)
    icon = models.CharField(max_length=200, blank=True, help_text="An emoji or an image URL.")
    category = models.CharField(max_length=50, blank=True)
    state = models.CharField(
        max_length=10, choices=BlueprintState.choices, default=BlueprintState.TESTING
    )
    cluster = models.ForeignKey(
        "clusters.Cluster", on_delete=models.PROTECT, related_name="blueprints"
    )
    image = models.CharField(max_length=255, blank=True, help_text="Container image (Kubernetes).")
    start_command = models.TextField(
        help_text="Runs in the workspace home; $PORT is the first declared port."
    )
    setup_script = models.TextField(blank=True, help_text="Runs once when a workspace is created.")
    git_repository = models.CharField(
        max_length=500, blank=True, validators=[validate_git_repository]
    )
    env = models.JSONField(default=dict, blank=True, validators=[validate_env])
    ports = models.JSONField(default=list, blank=True, validators=[validate_ports])
    cpu = models.CharField(max_length=10, default="1", validators=[CPU_QUANTITY])
    memory = models.CharField(max_length=10, default="2Gi", validators=[BYTES_QUANTITY])
    storage = models.CharField(max_length=10, default="10Gi", validators=[BYTES_QUANTITY])
    network = models.CharField(
        max_length=10,
        choices=Network.choices,
        default=Network.OUTBOUND,
        help_text="What a workspace's processes may reach besides the workspace itself.",
    )
    naming_template = models.CharField(
        max_length=100, default="{user}-{blueprint}-{random}", validators=[validate_naming_template]
    )
    chat_system_prompt = models.TextField(
        blank=True,
        max_length=8000,
        help_text="Instructions the AI tools follow in every workspace of this blueprint "
        "(BLUEPRINT_CHAT_SYSTEM_PROMPT, and AGENTS.md / CLAUDE.md in the workspace).",
    )
    data_sources = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_data_sources],
        help_text="Databases and warehouses the AI may use, with how to reach them; put "
        "their credentials in the environment variables above.",
    )
    opencode_default_model = models.CharField(
        "chat model",
        max_length=120,
        blank=True,
        help_text="The chat's model as provider/model (e.g. anthropic/claude-sonnet-4-5, "
        "custom-llm/llama-3.1-70b); empty: the first enabled provider's.",
    )
    layout_tabs = models.JSONField(default=default_tabs, blank=True, validators=[validate_tabs])
    layout_locked = models.BooleanField(default=False, help_text="Builders cannot rearrange tabs.")
    preview_enabled = models.BooleanField("preview panel", default=True)
    path_bar_enabled = models.BooleanField("preview path bar", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=BlueprintState.values), name="blueprint_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(network__in=Network.values), name="blueprint_network_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.pk is not None:
            stored = Blueprint.objects.filter(pk=self.pk).values_list("key", flat=True).first()
            if stored is not None and stored != self.key:
                # Workspaces carry the key (BLUEPRINT_KEY): renaming it would orphan them.
                raise ValidationError(
                    {"key": "The key of an existing blueprint cannot change."}, code="key_fixed"
                )
        if self.opencode_default_model and not OPENCODE_MODEL.match(self.opencode_default_model):
            raise ValidationError(
                {
                    "opencode_default_model": "Use provider/model with provider anthropic, "
                    "openai or custom-llm, e.g. anthropic/claude-sonnet-4-5."
                },
                code="invalid_model",
            )

    @property
    def has_chat_tab(self) -> bool:
        tabs = self.layout_tabs if isinstance(self.layout_tabs, list) else []
        return any(isinstance(t, dict) and t.get("kind") == TabKind.CHAT for t in tabs)

    @property
    def layout(self) -> dict:
        return {
            "tabs": self.layout_tabs,
            "locked": self.layout_locked,
            "preview": self.preview_enabled,
            "path_bar": self.path_bar_enabled,
        }

    @property
    def resources(self) -> dict[str, str]:
        return {"cpu": self.cpu, "memory": self.memory, "storage": self.storage}


class BlueprintAccessRule(models.Model):
    """Who may see and launch a blueprint: an exact e-mail or an exact e-mail domain.

    Rules of one blueprint are OR-combined; a blueprint without rules is open to every
    member. Values are stored lowercase; a domain rule matches that domain only, never
    its subdomains.
    """

    blueprint = models.ForeignKey(Blueprint, on_delete=models.CASCADE, related_name="access_rules")
    kind = models.CharField(max_length=10, choices=AccessRuleKind.choices)
    value = models.CharField(max_length=254)

    class Meta:
        ordering = ["blueprint", "kind", "value"]
        constraints = [
            models.UniqueConstraint(
                fields=["blueprint", "kind", "value"], name="accessrule_unique_per_blueprint"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=AccessRuleKind.values), name="accessrule_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.value}"

    def clean(self) -> None:
        super().clean()
        self.value = (self.value or "").strip().lower().lstrip("@")
        if self.kind == AccessRuleKind.EMAIL:
            try:
                validate_email(self.value)
            except ValidationError as exc:
                raise ValidationError({"value": "Enter a valid e-mail address."}) from exc
        elif self.kind == AccessRuleKind.DOMAIN:
            labels = self.value.split(".")
            if len(labels) < 2 or not all(DNS_LABEL.match(label) for label in labels):
                raise ValidationError({"value": "Enter a domain such as example.com."})


class AIProvider(models.Model):
    """An LLM provider whose variables a blueprint's workspaces receive.

    The API key is encrypted at rest (AES-256-GCM) and is never rendered by a page or
    an API response once set; it reaches only the workspace environment.
    """

    blueprint = models.ForeignKey(Blueprint, on_delete=models.CASCADE, related_name="ai_providers")
    provider = models.CharField(max_length=20, choices=AIProviderKind.choices)
    enabled = models.BooleanField(default=True)
    auth_mode = models.CharField(
        max_length=20,
        choices=AnthropicAuthMode.choices,
        default=AnthropicAuthMode.API_KEY,
        help_text="Anthropic only.",
    )
    model = models.CharField(max_length=100, blank=True)
    endpoint_url = models.URLField(
        blank=True,
        help_text="Custom: the OpenAI-compatible endpoint (required), e.g. "
        "https://llm-gateway.internal/v1. Anthropic: an optional gateway "
        "(ANTHROPIC_BASE_URL). OpenAI: not used.",
    )
    api_key = EncryptedTextField(blank=True)

    class Meta:
        ordering = ["blueprint", "provider"]
        constraints = [
            models.UniqueConstraint(
                fields=["blueprint", "provider"], name="aiprovider_unique_per_blueprint"
            ),
            models.CheckConstraint(
                condition=models.Q(provider__in=AIProviderKind.values),
                name="aiprovider_provider_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} for {self.blueprint_id and self.blueprint.key}"

    def clean(self) -> None:
        super().clean()
        if self.provider == AIProviderKind.CUSTOM:
            if not self.endpoint_url:
                raise ValidationError({"endpoint_url": "A custom provider needs its endpoint URL."})
            if not self.model:
                raise ValidationError({"model": "A custom provider needs the model to ask for."})
        if self.provider == AIProviderKind.OPENAI and self.endpoint_url:
            raise ValidationError(
                {"endpoint_url": "OpenAI takes no endpoint; add a Custom provider for a gateway."}
            )
        if self.endpoint_url:
            try:
                URLValidator(schemes=["http", "https"])(self.endpoint_url)
            except ValidationError as exc:
                raise ValidationError({"endpoint_url": "Enter an http(s) URL."}) from exc
        if (
            self.provider != AIProviderKind.ANTHROPIC
            and self.auth_mode != AnthropicAuthMode.API_KEY
        ):
            raise ValidationError({"auth_mode": "Only Anthropic supports per-user OAuth."})
        needs_key = self.provider != AIProviderKind.CUSTOM and self.auth_mode == "api_key"
        if self.enabled and needs_key and not self.api_key:
            raise ValidationError({"api_key": "An enabled provider needs its API key."})

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)
