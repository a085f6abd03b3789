"""Clusters (one agent each) and the one-time tickets that open shells and previews."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from relay.choices import Runtime, TicketKind

# A tunnel silent for this long is dead (DESIGN §3: heartbeat 15 s, dead after 45 s).
TUNNEL_DEAD_AFTER = timedelta(seconds=45)
AGENT_TOKEN_PREFIX = "enca_"

cluster_name = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    message="Cluster names are 1-50 lowercase letters, digits or hyphens.",
    code="invalid_cluster_name",
)


def hash_secret(raw: str) -> str:
    """SHA-256 hex of a high-entropy secret (agent token, ticket): what the database keeps."""
    return hashlib.sha256(raw.encode()).hexdigest()


class Cluster(models.Model):
    """A place where workspaces run, reached through the one agent that dials in for it.

    The agent token is shown once when the cluster is created and only its hash is kept.
    `tunnel_channel` names the portal consumer holding the agent's tunnel (empty when
    none); the cluster counts as connected while that is set and the agent was heard
    from within 45 seconds, so a portal process that died without cleaning up is noticed.
    """

    name = models.CharField(max_length=50, unique=True, validators=[cluster_name])
    description = models.CharField(max_length=200, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(max_length=16, editable=False)
    runtime = models.CharField(max_length=20, choices=Runtime.choices, blank=True, editable=False)
    agent_version = models.CharField(max_length=40, blank=True, editable=False)
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    connected_at = models.DateTimeField(null=True, blank=True, editable=False)
    tunnel_channel = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def generate_token() -> tuple[str, str, str]:
        """A new agent token with its display prefix and hash."""
        raw = AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
        return raw, raw[:12], hash_secret(raw)

    @property
    def is_connected(self) -> bool:
        return bool(
            self.tunnel_channel
            and self.last_seen_at
            and timezone.now() - self.last_seen_at < TUNNEL_DEAD_AFTER
        )

    @property
    def status(self) -> str:
        return "connected" if self.is_connected else "disconnected"


class Ticket(models.Model):
    """A single-use, 30-second credential that opens one shell or one preview.

    Bound to (user, workspace, kind, port); stored hashed. Redemption is one atomic
    conditional UPDATE, so exactly one caller wins however many race for it.
    """

    kind = models.CharField(max_length=10, choices=TicketKind.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    environment_id = models.CharField(max_length=100)
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE)
    port = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="ticket_expires_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=TicketKind.values), name="ticket_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(kind=TicketKind.SHELL) | models.Q(port__isnull=False),
                name="ticket_preview_has_port",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} ticket for {self.environment_id}"
