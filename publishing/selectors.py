"""Reads of publishing records."""

from __future__ import annotations

from django.db.models import QuerySet

from publishing.models import TrustRule


def trust_rules() -> QuerySet[TrustRule]:
    """Every trust rule, active and revoked, newest grant first."""
    return TrustRule.objects.select_related(
        "user", "blueprint", "granted_by", "revoked_by"
    ).order_by("-granted_at", "-pk")
