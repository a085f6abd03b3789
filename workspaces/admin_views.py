"""The console's live workspaces page: every workspace of every cluster, with actions.

Workspaces are not rows in the portal database, so this is an admin view, not a
ModelAdmin. It reads through `workspaces.selectors.discover` (unreachable clusters are
named on the page) and acts only through `workspaces.services`, so every action is
audited exactly like its API counterpart.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from accounts.selectors import orphaned_emails
from agent.protocol import STATUSES
from clusters.models import Cluster
from clusters.selectors import clusters_not_isolated
from core.client_ip import request_client_ip
from core.errors import ApplicationError
from workspaces import services
from workspaces.selectors import workspace_any, workspace_search

ACTIONS = {
    "start": ("started", services.workspace_start),
    "stop": ("stopped", services.workspace_stop),
    "restart": ("restarted", services.workspace_restart),
    "delete": ("deleted", services.workspace_delete),
    "upgrade": ("upgraded", services.workspace_upgrade),
}


@require_http_methods(["GET", "POST"])
def workspaces_console(request: HttpRequest, site) -> HttpResponse:
    """List (filters: status, cluster, owner, orphaned) and act on any workspace. A
    workspace whose owner is no longer an active member (suspended or gone) keeps running
    and is flagged "Orphaned"."""
    if request.method == "POST":
        return _act(request)
    status = request.GET.get("status", "")
    cluster = request.GET.get("cluster", "")
    owner = request.GET.get("owner", "").strip().lower()
    only_orphaned = request.GET.get("orphaned") == "1"
    try:
        listing = workspace_search(status=status, cluster=cluster, owner=owner)
    except ApplicationError as exc:
        messages.error(request, exc.detail)
        workspaces, unreachable = [], []
    else:
        workspaces, unreachable = listing.workspaces, listing.unreachable
    orphaned = orphaned_emails({w.owner_email for w in workspaces})
    if only_orphaned:
        workspaces = [w for w in workspaces if w.owner_email.lower() in orphaned]
    context = {
        **site.each_context(request),
        "title": "Workspaces",
        "workspaces": workspaces,
        "unreachable": unreachable,
        "statuses": STATUSES,
        "clusters": list(Cluster.objects.values_list("name", flat=True)),
        "not_isolated": clusters_not_isolated(),
        "filters": {
            "status": status,
            "cluster": cluster,
            "owner": owner,
            "orphaned": only_orphaned,
        },
        "orphaned": orphaned,
        "actions": list(ACTIONS),
    }
    return TemplateResponse(request, "admin/workspaces/console.html", context)


def _act(request: HttpRequest) -> HttpResponseRedirect:
    action = request.POST.get("action", "")
    workspace_id = request.POST.get("workspace", "")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("admin:workspaces_console")
    if action not in ACTIONS:
        messages.error(request, "Unknown action.")
        return HttpResponseRedirect(back)
    past, operation = ACTIONS[action]
    try:
        workspace, cluster = workspace_any(workspace_id)
        operation(
            actor=request.user, workspace=workspace, cluster=cluster, ip=request_client_ip(request)
        )
    except ApplicationError as exc:
        messages.error(request, f"Workspace {workspace_id}: {exc.detail}")
    else:
        messages.success(request, f"Workspace {workspace.name} ({workspace.id}) {past}.")
    return HttpResponseRedirect(back)
