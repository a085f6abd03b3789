"""Console page for the workspace tags members placed on their workspaces."""

from __future__ import annotations

from django.contrib import admin

from workspaces.models import WorkspaceTagAssignment


@admin.register(WorkspaceTagAssignment)
class WorkspaceTagAssignmentAdmin(admin.ModelAdmin):
    """Tag assignments: which member's tag sits on which workspace."""

    list_display = ["environment_id", "tag", "owner", "cluster", "created_at"]
    list_filter = ["cluster", "created_at"]
    search_fields = ["environment_id", "tag__name", "tag__user__email"]
    ordering = ["cluster", "environment_id"]
    list_select_related = ["tag__user", "cluster"]
    raw_id_fields = ["tag"]
    autocomplete_fields = ["cluster"]
    readonly_fields = ["created_at"]

    @admin.display(description="owner", ordering="tag__user__email")
    def owner(self, obj: WorkspaceTagAssignment) -> str:
        return obj.tag.user.email
