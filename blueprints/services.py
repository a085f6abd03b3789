"""Writes of blueprints. Each service validates, owns its transaction and audits."""

from __future__ import annotations

from django.db import transaction

from blueprints.choices import BlueprintState
from blueprints.models import AIProvider, Blueprint, BlueprintAccessRule
from security_center.services import audit_record


def blueprint_set_state(*, blueprint: Blueprint, state: str, actor) -> Blueprint:
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


def blueprint_save(*, blueprint: Blueprint, actor, changed: list[str] | None = None) -> Blueprint:
    """Create or update a blueprint after full validation (audited; no secrets logged)."""
    creating = blueprint.pk is None
    blueprint.full_clean()
    with transaction.atomic():
        blueprint.save()
        audit_record(
            action="blueprint.create" if creating else "blueprint.update",
            actor=actor,
            target_type="blueprint",
            target_id=blueprint.key,
            details={"changed": changed or []},
        )
    return blueprint


def blueprint_delete(*, blueprint: Blueprint, actor) -> None:
    """Delete a blueprint and its rules and providers (audited)."""
    with transaction.atomic():
        audit_record(
            action="blueprint.delete", actor=actor, target_type="blueprint", target_id=blueprint.key
        )
        blueprint.delete()


def access_rules_replace(
    *, blueprint: Blueprint, rules: list[dict[str, str]], actor
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
    *, provider: AIProvider, actor, api_key: str | None = None, changed: list[str] | None = None
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
