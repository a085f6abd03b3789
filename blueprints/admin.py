"""Console pages for blueprints, with their access rules and AI providers inline.

Every write goes through the blueprint services (validated, audited). A provider's API
key is write-only: the page says whether one is stored and offers an empty box that
replaces it; the stored key is never rendered.
"""

from __future__ import annotations

from django.contrib import admin

from blueprints.choices import BlueprintState
from blueprints.forms import AIProviderForm
from blueprints.models import AIProvider, Blueprint, BlueprintAccessRule
from blueprints.services import (
    access_rules_replace,
    ai_provider_delete,
    ai_provider_save,
    blueprint_delete,
    blueprint_save,
    blueprint_set_state,
)
from core.admin import URL_FIELDS_HTTPS, ServiceAdmin


class AccessRuleInline(admin.TabularInline):
    """Who may see and launch the blueprint; no rule at all means every member."""

    model = BlueprintAccessRule
    fields = ["kind", "value"]
    extra = 0


class AIProviderInline(admin.StackedInline):
    """LLM providers whose variables workspaces receive; the key is write-only."""

    model = AIProvider
    form = AIProviderForm
    fields = [
        "provider",
        "enabled",
        "auth_mode",
        "model",
        "endpoint_url",
        "api_key_status",
        "api_key",
    ]
    readonly_fields = ["api_key_status"]
    extra = 0
    formfield_overrides = URL_FIELDS_HTTPS

    @admin.display(description="Stored API key")
    def api_key_status(self, obj: AIProvider | None) -> str:
        return "set" if obj is not None and obj.pk and obj.has_api_key else "not set"


@admin.register(Blueprint)
class BlueprintAdmin(ServiceAdmin):
    """Blueprints: catalog entry, runtime, editor layout; state changes via actions."""

    list_display = ["name", "key", "state", "category", "cluster", "updated_at"]
    list_filter = ["state", "category", "cluster"]
    search_fields = ["key", "name", "description", "category"]
    ordering = ["name"]
    list_select_related = ["cluster"]
    autocomplete_fields = ["cluster"]
    readonly_fields = ["created_at", "updated_at"]
    not_applied = {
        "image": "only a Kubernetes runtime uses it; the local runtime runs the start "
        "command on the agent's host.",
        "layout_locked": "no page lets builders rearrange tabs yet.",
        "preview_enabled": "the preview page does not read it.",
        "path_bar_enabled": "the preview page does not read it.",
    }
    fieldsets = [
        ("Catalog", {"fields": ["key", "name", "description", "icon", "category", "state"]}),
        (
            "Runtime",
            {
                "fields": [
                    "cluster",
                    "image",
                    "start_command",
                    "setup_script",
                    "git_repository",
                    "env",
                    "ports",
                    ("cpu", "memory", "storage"),
                    "network",
                    "naming_template",
                ]
            },
        ),
        (
            "Editor layout",
            {
                "fields": [
                    "layout_tabs",
                    "layout_locked",
                    "preview_enabled",
                    "path_bar_enabled",
                ]
            },
        ),
        (
            "AI & data",
            {
                "description": "The AI tools of the workspace (Chat and Claude Code tabs) use "
                "the AI providers below: enable at least one and give its key (or, for "
                "Anthropic, let each builder sign in). Changes reach running workspaces at "
                "their next restart.",
                "fields": ["chat_system_prompt", "data_sources", "opencode_default_model"],
            },
        ),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [AccessRuleInline, AIProviderInline]
    actions = ["enable", "disable", "set_testing"]

    def get_readonly_fields(self, request, obj=None):
        # Workspaces carry the key (BLUEPRINT_KEY): it is fixed once the blueprint exists.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "key"] if obj is not None else fields

    def save_model(self, request, obj, form, change) -> None:
        blueprint_save(blueprint=obj, actor=request.user, changed=form.changed_data)

    def delete_model(self, request, obj) -> None:
        blueprint_delete(blueprint=obj, actor=request.user)

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is AIProvider:
            self._save_providers(request, formset)
        elif formset.model is BlueprintAccessRule:
            self._save_access_rules(request, form.instance, formset)
        else:
            super().save_formset(request, form, formset, change)

    @staticmethod
    def _save_access_rules(request, blueprint: Blueprint, formset) -> None:
        # save(commit=False) only sorts forms into new/changed/deleted (for the admin's
        # change message); the rules are written, as a whole, by the audited service.
        formset.save(commit=False)
        if not (formset.new_objects or formset.changed_objects or formset.deleted_objects):
            return
        deleted = formset.deleted_forms
        kept = [f for f in formset.initial_forms if f not in deleted]
        kept += [f for f in formset.extra_forms if f.has_changed() and f not in deleted]
        access_rules_replace(
            blueprint=blueprint,
            rules=[{"kind": f.instance.kind, "value": f.instance.value} for f in kept],
            actor=request.user,
        )

    @staticmethod
    def _save_providers(request, formset) -> None:
        formset.save(commit=False)
        form_of = {id(f.instance): f for f in formset.forms}
        for provider in formset.deleted_objects:
            ai_provider_delete(provider=provider, actor=request.user)
        changed = [obj for obj, _fields in formset.changed_objects]
        for provider in [*formset.new_objects, *changed]:
            provider_form = form_of[id(provider)]
            ai_provider_save(
                provider=provider,
                actor=request.user,
                api_key=provider_form.replacement("api_key"),
                changed=provider_form.changed_data,
            )

    def _set_state(self, request, queryset, state: str, label: str) -> None:
        self.run_service(
            request,
            queryset,
            lambda blueprint: blueprint_set_state(
                blueprint=blueprint, state=state, actor=request.user
            ),
            done=f"{label} {{count}} blueprint(s).",
        )

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request, queryset) -> None:
        self._set_state(request, queryset, BlueprintState.ENABLED, "Enabled")

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset) -> None:
        self._set_state(request, queryset, BlueprintState.DISABLED, "Disabled")

    @admin.action(description="Set testing (admins only)", permissions=["change"])
    def set_testing(self, request, queryset) -> None:
        self._set_state(request, queryset, BlueprintState.TESTING, "Set to testing")
