"""Console pages for the workspace tags members placed on their workspaces and, view only,
the one-time tickets (their hashes are never displayed)."""

from __future__ import annotations

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from workspaces.models import Ticket, WorkspaceTagAssignment


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


@admin.register(Ticket)
class TicketAdmin(ReadOnlyAdmin):
    """One-time shell/preview tickets, view only; the hash is never displayed."""

    list_display = [
        "kind",
        "user",
        "environment_id",
        "cluster",
        "port",
        "created_at",
        "expires_at",
        "used_at",
        "client_ip",
    ]
    list_filter = ["kind", ("used_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["user__email", "environment_id", "client_ip"]
    ordering = ["-created_at"]
    list_select_related = ["user", "cluster"]
    fields = list_display
    show_full_result_count = False
