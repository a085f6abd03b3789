"""Clusters: the places where workspaces run, each reached through the one agent that dials in.

The agent token is shown once and only its hash is kept (`core.crypto.hash_secret`).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from agent.protocol import SANDBOX_NONE
from clusters.choices import Runtime
from core.crypto import hash_secret

# A tunnel silent for this long is dead (DESIGN §3: heartbeat 15 s, dead after 45 s).
TUNNEL_DEAD_AFTER = timedelta(seconds=45)
# A public marker at the start of every agent token, no secret.
AGENT_TOKEN_PREFIX = "enca_"  # nosec B105

cluster_name = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    message="Cluster names are 1-50 lowercase letters, digits or hyphens.",
    code="invalid_cluster_name",
)


class Cluster(models.Model):
    """A place where workspaces run, reached through the one agent that dials in for it.

    The agent token is shown once when the cluster is created and only its hash is kept.
    `tunnel_channel` names the portal consumer holding the agent's tunnel (empty when
    none); the cluster counts as connected while that is set and the agent was heard
    from within 45 seconds, so a portal process that died without cleaning up is noticed.
    `isolation` is what the agent's last `hello` said of how its runtime keeps workspaces
    apart, known mechanisms and values only (`agent.protocol.known_isolation`).
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
    isolation = models.JSONField(default=dict, blank=True, editable=False)
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

    @property
    def isolated(self) -> bool:
        """Whether the connected agent reported a sandbox around each workspace."""
        sandbox = self.isolation.get("sandbox")
        return self.is_connected and sandbox is not None and sandbox != SANDBOX_NONE

    @property
    def not_isolated(self) -> bool:
        """Whether the agent said its workspaces run without a sandbox: each can reach the
        others' files and ports. Kept while the agent is away (its workspaces still run)."""
        return self.isolation.get("sandbox") == SANDBOX_NONE
