"""Console pages for clusters (agents).

An agent token is shown once, to the admin who created or rotated it; only its hash is
stored and no page displays the hash.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from agent.protocol import ISOLATION
from clusters.models import TUNNEL_DEAD_AFTER, Cluster
from clusters.services import cluster_create, cluster_delete, cluster_rotate_token, cluster_update
from core.admin import ServiceAdmin, adopt

NOT_ISOLATED = "Workspaces are not isolated"
# The console's own error red (Django admin's --error-fg, light or dark theme), as a badge.
BADGE = (
    "display:inline-block;margin-top:.2em;padding:.1em .5em;border-radius:4px;"
    "background:var(--error-fg,#ba2121);color:#fff;font-weight:600;white-space:nowrap"
)


class ClusterStatusFilter(admin.SimpleListFilter):
    """Connected = a tunnel is held and the agent was heard from within 45 seconds."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("connected", "Connected"), ("disconnected", "Disconnected")]

    def queryset(self, request, queryset):
        live = ~Q(tunnel_channel="") & Q(last_seen_at__gte=timezone.now() - TUNNEL_DEAD_AFTER)
        if self.value() == "connected":
            return queryset.filter(live)
        if self.value() == "disconnected":
            return queryset.exclude(live)
        return queryset


class ClusterCreateForm(forms.ModelForm):
    class Meta:
        model = Cluster
        fields = ["name", "description"]


@admin.register(Cluster)
class ClusterAdmin(ServiceAdmin):
    """Clusters: register (token shown once), describe, rotate the token, delete unused."""

    list_display = [
        "name",
        "status_display",
        "runtime",
        "isolation_display",
        "agent_version",
        "last_seen_at",
        "token_prefix",
        "created_at",
    ]
    list_filter = [ClusterStatusFilter, "runtime"]
    search_fields = ["name", "description"]
    ordering = ["name"]
    readonly_fields = [
        "name",
        "status_display",
        "runtime",
        "isolation_display",
        "agent_version",
        "last_seen_at",
        "connected_at",
        "token_prefix",
        "created_at",
    ]
    fields = ["name", "description", *readonly_fields[1:]]
    actions = ["rotate_token"]

    @admin.display(description="status")
    def status_display(self, obj: Cluster) -> str:
        return obj.status

    @admin.display(description="isolation")
    def isolation_display(self, obj: Cluster) -> str:
        """The mechanisms the agent reported, and a red badge when there is no sandbox."""
        mechanisms = format_html_join(
            " · ",
            "{}: {}",
            ((key, obj.isolation.get(key, "unknown")) for key in ISOLATION),
        )
        if not obj.not_isolated:
            return mechanisms
        return format_html('{}<br><span style="{}">{}</span>', mechanisms, BADGE, NOT_ISOLATED)

    def get_fields(self, request, obj=None):
        return ["name", "description"] if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ClusterCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            if "description" in form.changed_data:
                cluster_update(
                    cluster=obj, description=form.cleaned_data["description"], actor=request.user
                )
            return
        cluster, raw = cluster_create(
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            actor=request.user,
        )
        adopt(obj, cluster)
        obj.issued_raw = raw

    def delete_model(self, request, obj) -> None:
        cluster_delete(cluster=obj, actor=request.user)

    def response_add(self, request, obj, post_url_continue=None) -> HttpResponse:
        self.message_user(
            request,
            format_html(
                "Cluster “{}” registered. Start its agent with this token; copy it now, "
                "it will not be shown again: <code>{}</code>",
                obj.name,
                obj.issued_raw,
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:clusters_cluster_change", args=[obj.pk]))

    @admin.action(description="Rotate agent token", permissions=["change"])
    def rotate_token(self, request, queryset) -> None:
        rotated = [
            (cluster.name, cluster_rotate_token(cluster=cluster, actor=request.user))
            for cluster in queryset
        ]
        tokens = format_html_join(", ", "{}: <code>{}</code>", rotated)
        self.message_user(
            request,
            format_html(
                "Rotated the agent token of {} cluster(s). Their agents' tunnels were closed "
                "and the old tokens are refused: restart each agent with its new token. Copy "
                "the new ones now, they will not be shown again: {}",
                len(rotated),
                tokens,
            ),
            messages.SUCCESS,
        )
