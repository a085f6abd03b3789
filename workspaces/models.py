"""What the portal keeps about workspaces: tag assignments and one-time tickets (DESIGN §2).

Workspace state, files and logs live in the data plane and are discovered every time.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from workspaces.choices import TicketKind


class WorkspaceTagAssignment(models.Model):
    """A member's tag placed on one of their workspaces (environment id on a cluster)."""

    environment_id = models.CharField(max_length=100)
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE)
    tag = models.ForeignKey(
        "accounts.UserTag", on_delete=models.CASCADE, related_name="assignments"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cluster", "environment_id", "tag"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "environment_id", "tag"], name="workspacetag_unique"
            )
        ]
        indexes = [models.Index(fields=["cluster", "environment_id"], name="workspacetag_env_idx")]

    def __str__(self) -> str:
        return f"{self.tag} on {self.environment_id}"


class Ticket(models.Model):
    """A single-use, 30-second credential that opens one shell or one preview.

    Bound to (user, workspace, kind, port); stored hashed. Redemption is one atomic
    conditional UPDATE, so exactly one caller wins however many race for it.
    """

    kind = models.CharField(max_length=10, choices=TicketKind.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    environment_id = models.CharField(max_length=100)
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE)
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
