"""Writes of blueprints. Each service validates, owns its transaction and audits."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from audit.services import audit_record
from blueprints.choices import BlueprintState
from blueprints.models import AIProvider, Blueprint, BlueprintAccessRule
from core.errors import ApplicationError


def blueprint_set_state(*, blueprint: Blueprint, state: str, actor: User | None) -> Blueprint:
    """Move a blueprint to `testing`, `enabled` or `disabled` (audited).

    Disabling hides it from the catalog and stops new launches; running workspaces
    keep running.
    """
    if state not in BlueprintState.values:
        raise ValueError(f"unknown blueprint state {state!r}")
    with transaction.atomic():
        previous = (
            Blueprint.objects.select_for_update()
            .values_list("state", flat=True)
            .get(pk=blueprint.pk)
        )
        Blueprint.objects.filter(pk=blueprint.pk).update(state=state)
        blueprint.state = state
        audit_record(
            action="blueprint.set_state",
            actor=actor,
            target_type="blueprint",
            target_id=blueprint.key,
            details={"from": previous, "to": state},
        )
    return blueprint


def _blueprint_row_save(*, blueprint: Blueprint, actor: User | None, changed: list[str]) -> None:
    """Save the blueprint row itself after full validation (audited; no secrets logged)."""
    creating = blueprint.pk is None
    blueprint.full_clean()
    with transaction.atomic():
        blueprint.save()
        audit_record(
            action="blueprint.create" if creating else "blueprint.update",
            actor=actor,
            target_type="blueprint",
            target_id=blueprint.key,
            details={"changed": changed},
        )


def blueprint_delete(*, blueprint: Blueprint, actor: User | None) -> None:
    """Delete a blueprint and its rules and providers (audited)."""
    with transaction.atomic():
        audit_record(
            action="blueprint.delete", actor=actor, target_type="blueprint", target_id=blueprint.key
        )
        blueprint.delete()


def access_rules_replace(
    *, blueprint: Blueprint, rules: list[dict[str, str]], actor: User | None
) -> list[BlueprintAccessRule]:
    """Replace a blueprint's access rules with `rules` ({kind, value}) atomically (audited)."""
    built = []
    for item in rules:
        rule = BlueprintAccessRule(blueprint=blueprint, kind=item["kind"], value=item["value"])
        rule.full_clean(exclude=["blueprint"], validate_unique=False)
        built.append(rule)
    unique = {(r.kind, r.value): r for r in built}
    with transaction.atomic():
        blueprint.access_rules.all().delete()
        BlueprintAccessRule.objects.bulk_create(unique.values())
        audit_record(
            action="blueprint.access_rules",
            actor=actor,
            target_type="blueprint",
            target_id=blueprint.key,
            details={"rules": [f"{k}:{v}" for k, v in unique]},
        )
    return list(unique.values())


def ai_provider_save(
    *,
    provider: AIProvider,
    actor: User | None,
    api_key: str | None = None,
    changed: list[str] | None = None,
) -> AIProvider:
    """Create or update an AI provider; `api_key` replaces the stored key when given.

    The key is encrypted at rest; the audit entry says only whether it was replaced.
    """
    creating = provider.pk is None
    if api_key is not None:
        provider.api_key = api_key
    provider.full_clean()
    with transaction.atomic():
        provider.save()
        audit_record(
            action="ai_provider.create" if creating else "ai_provider.update",
            actor=actor,
            target_type="blueprint",
            target_id=provider.blueprint.key,
            details={
                "provider": provider.provider,
                "enabled": provider.enabled,
                "api_key_replaced": api_key is not None,
                "changed": changed or [],
            },
        )
    return provider


def ai_provider_delete(*, provider: AIProvider, actor: User | None) -> None:
    """Remove an AI provider (and its stored key) from a blueprint (audited)."""
    with transaction.atomic():
        audit_record(
            action="ai_provider.delete",
            actor=actor,
            target_type="blueprint",
            target_id=provider.blueprint.key,
            details={"provider": provider.provider},
        )
        provider.delete()


def blueprint_save(
    *,
    blueprint: Blueprint,
    actor: User | None,
    fields: dict | None = None,
    changed: list[str] | None = None,
    access_rules: list[dict[str, str]] | None = None,
    ai_providers: list[dict] | None = None,
) -> Blueprint:
    """Create or update a blueprint with its access rules and AI providers, all or nothing.

    `fields` are model attributes to set (the API); the console passes an instance its
    form already edited and names the `changed` fields. The key of an existing blueprint
    never changes (400 `invalid`, `errors.key`): workspaces carry it. `access_rules`
    (when given) replace the rules as a whole; `ai_providers` (when given) are the
    complete list: listed providers are created or updated (one without `api_key`
    keeps its stored key), the others are removed. Every part is validated and audited
    by its own service inside one transaction, so an invalid provider leaves nothing
    written. Raises Django `ValidationError` for the blueprint's own fields and
    `ApplicationError` (400 `invalid`, per-item `errors`) for a bad rule or provider.
    """

    def item_errors(name: str, index: int, count: int, exc: ValidationError) -> ApplicationError:
        per_item: list[dict] = [{} for _ in range(count)]
        per_item[index] = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return ApplicationError(
            "Invalid input.", code="invalid", status=400, extra={"errors": {name: per_item}}
        )

    for name, value in (fields or {}).items():
        setattr(blueprint, name, value)
    with transaction.atomic():
        _blueprint_row_save(
            blueprint=blueprint, actor=actor, changed=sorted(fields or changed or [])
        )
        if access_rules is not None:
            for index, rule in enumerate(access_rules):
                probe = BlueprintAccessRule(blueprint=blueprint, **rule)
                try:
                    probe.full_clean(exclude=["blueprint"], validate_unique=False)
                except ValidationError as exc:
                    raise item_errors("access_rules", index, len(access_rules), exc) from exc
            access_rules_replace(blueprint=blueprint, rules=access_rules, actor=actor)
        if ai_providers is not None:
            existing = {p.provider: p for p in blueprint.ai_providers.all()}
            listed = {item.get("provider") for item in ai_providers}
            for provider in existing.values():
                if provider.provider not in listed:
                    ai_provider_delete(provider=provider, actor=actor)
            for index, item in enumerate(ai_providers):
                values = dict(item)
                api_key = values.pop("api_key", None)
                provider = existing.get(values["provider"]) or AIProvider(blueprint=blueprint)
                for name, value in values.items():
                    setattr(provider, name, value)
                try:
                    ai_provider_save(
                        provider=provider, actor=actor, api_key=api_key, changed=sorted(values)
                    )
                except ValidationError as exc:
                    raise item_errors("ai_providers", index, len(ai_providers), exc) from exc
    return blueprint
