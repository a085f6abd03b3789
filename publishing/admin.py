"""Console pages for publish requests (view only for now) and trust rules.

Trust is granted and revoked through the publishing services, so both are audited. The
review of publish requests (approve/reject) belongs to its own workflow; until it exists
here, requests are shown but not edited, since a hand edit would skip the audit log.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin

from core.admin import GrantRevokeAdmin, ReadOnlyAdmin, adopt
from publishing.models import PublishRequest, TrustRule
from publishing.services import trust_grant, trust_revoke


@admin.register(PublishRequest)
class PublishRequestAdmin(ReadOnlyAdmin):
    """Requests to put a workspace's app online, filterable by status."""

    list_display = [
        "subdomain",
        "status",
        "requester",
        "blueprint",
        "environment_id",
        "cluster",
        "created_at",
        "reviewer",
        "reviewed_at",
    ]
    list_filter = ["status", "cluster", "blueprint", "created_at"]
    search_fields = ["subdomain", "requester__email", "environment_id", "blueprint__key"]
    ordering = ["-created_at"]
    list_select_related = ["requester", "blueprint", "cluster", "reviewer"]
    date_hierarchy = "created_at"
    fieldsets = [
        (
            "Request",
            {
                "fields": [
                    "requester",
                    "environment_id",
                    "cluster",
                    "blueprint",
                    "subdomain",
                    "message",
                    "commit_sha",
                    "created_at",
                ]
            },
        ),
        ("Review", {"fields": ["status", "reviewer", "reviewed_at", "feedback", "updated_at"]}),
    ]


class TrustGrantForm(forms.ModelForm):
    class Meta:
        model = TrustRule
        fields = ["user", "blueprint"]


class TrustActiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(TrustRule)
class TrustRuleAdmin(GrantRevokeAdmin):
    """Members trusted to publish from a blueprint without review: grant, revoke."""

    list_display = [
        "user",
        "blueprint",
        "is_active_display",
        "granted_by",
        "granted_at",
        "revoked_by",
        "revoked_at",
    ]
    list_filter = [TrustActiveFilter, "blueprint"]
    add_form = TrustGrantForm
    add_fields = ["user", "blueprint"]
    search_fields = ["user__email", "blueprint__key", "blueprint__name"]
    ordering = ["-granted_at"]
    list_select_related = ["user", "blueprint", "granted_by", "revoked_by"]
    autocomplete_fields = ["user", "blueprint"]
    fields = ["user", "blueprint", "granted_by", "granted_at", "revoked_by", "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="active", boolean=True)
    def is_active_display(self, obj: TrustRule) -> bool:
        return obj.is_active

    def save_model(self, request, obj, form, change) -> None:
        rule = trust_grant(
            user=form.cleaned_data["user"],
            blueprint=form.cleaned_data["blueprint"],
            actor=request.user,
        )
        adopt(obj, rule)

    @admin.action(description="Revoke", permissions=["revoke"])
    def revoke(self, request, queryset) -> None:
        self.run_service(
            request,
            queryset.filter(revoked_at__isnull=True),
            lambda rule: trust_revoke(rule=rule, actor=request.user),
            done="Revoked {count} trust rule(s).",
        )
