"""Writes of trust rules (and, in later work, publish requests)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from blueprints.models import Blueprint
from core.errors import ApplicationError
from publishing.models import TrustRule


def trust_grant(*, user: User, blueprint: Blueprint, actor: User | None) -> TrustRule:
    """Trust `user` to publish from `blueprint` without review (audited; one active rule)."""
    try:
        with transaction.atomic():
            rule = TrustRule.objects.create(user=user, blueprint=blueprint, granted_by=actor)
            audit_record(
                action="trust.grant",
                actor=actor,
                target_type="trust_rule",
                target_id=rule.pk,
                details={"user": user.email, "blueprint": blueprint.key},
            )
    except IntegrityError as exc:
        raise ApplicationError(
            "This member is already trusted on this blueprint.", code="already_trusted", status=409
        ) from exc
    return rule


def trust_revoke(*, rule: TrustRule, actor: User | None) -> TrustRule:
    """Revoke an active trust rule (audited); revoking a revoked rule changes nothing."""
    with transaction.atomic():
        updated = TrustRule.objects.filter(pk=rule.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=actor
        )
        rule.refresh_from_db()
        if updated:
            audit_record(
                action="trust.revoke",
                actor=actor,
                target_type="trust_rule",
                target_id=rule.pk,
                details={"user": rule.user.email, "blueprint": rule.blueprint.key},
            )
    return rule
