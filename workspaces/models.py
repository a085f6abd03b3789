"""What the portal keeps about workspaces: only tag assignments (DESIGN §2).

Workspace state, files and logs live in the data plane and are discovered every time.
"""

from __future__ import annotations

from django.db import models


class WorkspaceTagAssignment(models.Model):
    """A member's tag placed on one of their workspaces (environment id on a cluster)."""

    environment_id = models.CharField(max_length=100)
    cluster = models.ForeignKey("relay.Cluster", on_delete=models.CASCADE)
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
