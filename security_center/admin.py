"""Console pages of the security centre: firewall rules, and the read-only trails.

Firewall rules are written through the firewall services (validated, audited). The audit
log, connection records and firewall events are evidence: the console shows them and
nothing in it can add, change or delete a row.
"""

from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent
from core.admin import ReadOnlyAdmin, ServiceAdmin
from core.client_ip import request_client_ip
from core.errors import ApplicationError
from security_center.models import ConnectionSession, FirewallEvent, FirewallRule
from security_center.services import (
    connection_terminate,
    firewall_rule_delete,
    firewall_rule_save,
    firewall_rule_set_enabled,
)


@admin.register(FirewallRule)
class FirewallRuleAdmin(ServiceAdmin):
    """Allow/deny rules on client IPs, evaluated by ascending priority."""

    list_display = ["priority", "action", "cidr", "description", "enabled", "updated_at"]
    list_display_links = ["priority", "cidr"]
    list_filter = ["action", "enabled"]
    search_fields = ["cidr", "description"]
    ordering = ["priority"]
    fields = [
        "priority",
        "action",
        "cidr",
        "description",
        "enabled",
        "created_by",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    actions = ["enable", "disable"]

    def save_model(self, request, obj, form, change) -> None:
        firewall_rule_save(rule=obj, actor=request.user, changed=form.changed_data)

    def delete_model(self, request, obj) -> None:
        firewall_rule_delete(rule=obj, actor=request.user)

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request, queryset) -> None:
        self.run_service(
            request,
            queryset,
            lambda rule: firewall_rule_set_enabled(rule=rule, enabled=True, actor=request.user),
            done="Enabled {count} firewall rule(s).",
        )

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset) -> None:
        self.run_service(
            request,
            queryset,
            lambda rule: firewall_rule_set_enabled(rule=rule, enabled=False, actor=request.user),
            done="Disabled {count} firewall rule(s).",
        )


@admin.register(FirewallEvent)
class FirewallEventAdmin(ReadOnlyAdmin):
    """Connection attempts the firewall blocked."""

    list_display = ["created_at", "ip", "kind", "rule_summary", "user_email", "environment_id"]
    list_filter = ["kind", "created_at"]
    search_fields = ["ip", "user_email", "environment_id", "rule_summary"]
    ordering = ["-created_at"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ["created_at", "ip", "kind", "rule", "rule_summary", "user_email", "environment_id"]


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("ended", "Ended")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(ended_at__isnull=True)
        if self.value() == "ended":
            return queryset.filter(ended_at__isnull=False)
        return queryset


@admin.register(ConnectionSession)
class ConnectionSessionAdmin(ReadOnlyAdmin, ServiceAdmin):
    """Terminal and preview sessions: who, from where, to which workspace, how much.

    The records stay read-only; "End session" closes live ones through
    `connection_terminate` (audited, the browser is told).
    """

    actions = ["end_session"]

    list_display = [
        "email",
        "kind",
        "ip",
        "environment_id",
        "started_at",
        "ended_at",
        "bytes_in",
        "bytes_out",
        "close_reason",
    ]
    list_filter = [SessionStateFilter, "kind", "started_at"]
    search_fields = ["email", "ip", "environment_id", "close_reason"]
    ordering = ["-started_at"]
    date_hierarchy = "started_at"
    show_full_result_count = False
    fields = [
        "user",
        "email",
        "ip",
        "kind",
        "environment_id",
        "cluster",
        "port",
        "started_at",
        "last_activity_at",
        "ended_at",
        "close_reason",
        "bytes_in",
        "bytes_out",
        "requests",
    ]

    def has_end_permission(self, request) -> bool:
        return bool(getattr(request.user, "is_admin", False) or request.user.is_superuser)

    @admin.action(description="End session", permissions=["end"])
    def end_session(self, request, queryset) -> None:
        ip = request_client_ip(request)

        def end(session: ConnectionSession) -> bool:
            if not connection_terminate(session=session, actor=request.user, ip=ip):
                raise ApplicationError("already ended", code="connection_ended", status=409)
            return True

        self.run_service(request, queryset, end, done="Ended {count} session(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The append-only, hash-chained audit log."""

    list_display = ["created_at", "actor_email", "action", "target", "outcome", "ip"]
    list_filter = ["action", "outcome", "created_at"]
    search_fields = ["actor_email", "action", "target_type", "target_id"]
    ordering = ["-id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = [
        "created_at",
        "actor",
        "actor_email",
        "action",
        "target_type",
        "target_id",
        "ip",
        "outcome",
        "details",
        "prev_hash",
        "hash",
    ]

    @admin.display(description="target", ordering="target_type")
    def target(self, obj: AuditEvent) -> str:
        return f"{obj.target_type}:{obj.target_id}" if obj.target_type else obj.target_id
