"""Reads of blueprints scoped by state and access rules: the only place the catalog is filtered."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import normalize_email
from blueprints.choices import AccessRuleKind, BlueprintState
from blueprints.models import Blueprint, BlueprintAccessRule


def catalog_for(user) -> QuerySet[Blueprint]:
    """The blueprints `user` may see and launch.

    `enabled` blueprints whose access rules admit the member — an exact e-mail rule or
    an exact domain rule (never a subdomain), OR-combined, case-insensitive — or that
    have no rules at all. Admins also see `testing` blueprints (under the same rules).
    Nobody sees `disabled` ones. Inactive or anonymous users see nothing.
    """
    if not (user and user.is_authenticated and user.is_active):
        return Blueprint.objects.none()
    states = [BlueprintState.ENABLED]
    if user.is_admin:
        states.append(BlueprintState.TESTING)
    return _admitted(user, states)


def _admitted(user, states: list[str]) -> QuerySet[Blueprint]:
    email = normalize_email(user.email)
    domain = email.rsplit("@", 1)[-1] if "@" in email else ""
    rules = BlueprintAccessRule.objects.filter(blueprint=OuterRef("pk"))
    admitted = rules.filter(
        Q(kind=AccessRuleKind.EMAIL, value=email) | Q(kind=AccessRuleKind.DOMAIN, value=domain)
    )
    return (
        Blueprint.objects.filter(state__in=states)
        .filter(~Exists(rules) | Exists(admitted))
        .select_related("cluster")
        .order_by("category", "name")
    )


def coming_soon_for(user) -> QuerySet[Blueprint]:
    """`testing` blueprints the access rules admit `user` to: shown to builders as
    "Coming soon", never launchable by them (admins find them in `catalog_for`)."""
    if not (user and user.is_authenticated and user.is_active):
        return Blueprint.objects.none()
    return _admitted(user, [BlueprintState.TESTING])


def blueprint_for_launch(user, key: str) -> Blueprint | None:
    """The blueprint `key` if `user` may launch it, else None."""
    return catalog_for(user).filter(key=key).first()
