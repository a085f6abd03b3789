"""Writes of organisation-wide configuration."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from audit.services import audit_record
from core.models import OrganizationSettings


def organization_settings_update(
    *,
    actor: AbstractBaseUser | None,
    changes: dict | None = None,
    instance: OrganizationSettings | None = None,
) -> OrganizationSettings:
    """Apply `changes` (or save an already-edited `instance`) after validation (audited).

    Limits take effect on the next request in every portal process.
    """
    settings_obj = instance or OrganizationSettings.load()
    for field, value in (changes or {}).items():
        setattr(settings_obj, field, value)
    settings_obj.full_clean()
    with transaction.atomic():
        settings_obj.save()
        audit_record(
            action="organization_settings.update",
            actor=actor,
            target_type="organization_settings",
            target_id=settings_obj.pk,
            details={"changed": sorted(changes) if changes else []},
        )
    return settings_obj
