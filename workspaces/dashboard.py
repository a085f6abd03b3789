"""The builder's home page: their workspaces, the catalog, and the everyday actions.

Server-rendered forms that call the same services as the API, so every rule (ACL,
limits, rate limits, ownership) and every audit entry is identical. Failures come back
as one clear message on the page, never as a stack trace.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from blueprints.selectors import catalog_for
from clusters.selectors import clusters_not_isolated
from core.client_ip import request_client_ip
from core.errors import ApplicationError
from core.models import OrganizationSettings
from workspaces import services
from workspaces.selectors import workspace_for, workspaces_for

OPERATIONS = {
    "start": (services.workspace_start, "started"),
    "stop": (services.workspace_stop, "stopped"),
    "restart": (services.workspace_restart, "restarted"),
    "delete": (services.workspace_delete, "deleted"),
}


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """My workspaces (with terminal and preview links when running, and a red notice on
    those whose cluster runs them without a sandbox) and what I can launch."""
    org = OrganizationSettings.load()
    try:
        listing = workspaces_for(request.user)
        workspaces, unreachable = listing.workspaces, listing.unreachable
    except ApplicationError as exc:
        messages.error(request, exc.detail)
        workspaces, unreachable = [], []
    context = {
        "org": org,
        "workspaces": workspaces,
        "unreachable": unreachable,
        "not_isolated": clusters_not_isolated(),
        "catalog": list(catalog_for(request.user)),
    }
    return render(request, "dashboard.html", context)


@require_POST
@login_required
def launch(request: HttpRequest) -> HttpResponseRedirect:
    try:
        workspace = services.workspace_launch(
            actor=request.user,
            blueprint_key=request.POST.get("blueprint", ""),
            name=request.POST.get("name", ""),
            ip=request_client_ip(request),
        )
    except ApplicationError as exc:
        messages.error(request, _explain(exc))
    else:
        messages.success(request, f"Launching {workspace.name}…")
    return HttpResponseRedirect(reverse("home"))


@require_POST
@login_required
def operate(request: HttpRequest, workspace_id: str, operation: str) -> HttpResponseRedirect:
    if operation not in OPERATIONS:
        messages.error(request, "Unknown action.")
        return HttpResponseRedirect(reverse("home"))
    service, past = OPERATIONS[operation]
    try:
        workspace, cluster = workspace_for(request.user, workspace_id)
        service(
            actor=request.user, workspace=workspace, cluster=cluster, ip=request_client_ip(request)
        )
    except ApplicationError as exc:
        messages.error(request, _explain(exc))
    else:
        messages.success(request, f"{workspace.name} {past}.")
    return HttpResponseRedirect(reverse("home"))


def _explain(exc: ApplicationError) -> str:
    errors = exc.extra.get("errors") if exc.extra else None
    if errors:
        return " ".join(str(m) for messages_ in errors.values() for m in messages_)
    return exc.detail
