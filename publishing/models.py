"""Publish requests (a builder asks to put an app online) and the trust that skips review."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from core.validators import dns_label
from publishing.choices import OPEN_STATUSES, PublishStatus

COMMIT_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


class PublishRequest(models.Model):
    """A request to publish one workspace's app at `<subdomain>.<APPS_DOMAIN>`.

    At most one request per workspace is open (pending, approved or publishing) at a
    time, and one live subdomain belongs to one workspace. Reviews record who decided,
    when, and their feedback.
    """

    environment_id = models.CharField(max_length=100)
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="publish_requests"
    )
    blueprint = models.ForeignKey(
        "blueprints.Blueprint", null=True, blank=True, on_delete=models.SET_NULL
    )
    subdomain = models.CharField(max_length=63, validators=[dns_label])
    message = models.TextField(blank=True)
    commit_sha = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=12, choices=PublishStatus.choices, default=PublishStatus.PENDING
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reviewed_publish_requests",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    feedback = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "environment_id"],
                condition=models.Q(status__in=OPEN_STATUSES),
                name="publish_one_open_request_per_workspace",
            ),
            models.UniqueConstraint(
                fields=["subdomain"],
                condition=models.Q(status=PublishStatus.PUBLISHED),
                name="publish_subdomain_live_once",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=PublishStatus.values), name="publish_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subdomain} ({self.get_status_display()})"

    def clean(self) -> None:
        super().clean()
        self.subdomain = (self.subdomain or "").strip().lower()
        if self.commit_sha and not COMMIT_SHA.match(self.commit_sha):
            raise ValidationError({"commit_sha": "Not a git commit id."})


class TrustRule(models.Model):
    """A member trusted to publish from one blueprint without review, until revoked."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trust_rules"
    )
    blueprint = models.ForeignKey(
        "blueprints.Blueprint", on_delete=models.CASCADE, related_name="trust_rules"
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "blueprint"],
                condition=models.Q(revoked_at__isnull=True),
                name="trust_one_active_rule",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} trusted on {self.blueprint}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
