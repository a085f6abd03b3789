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
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from accounts.selectors import user_tags_for
from blueprints.models import Blueprint
from blueprints.selectors import catalog_for, coming_soon_for
from clusters.selectors import clusters_not_isolated
from core.client_ip import request_client_ip
from core.errors import ApplicationError
from core.models import OrganizationSettings
from workspaces import services
from workspaces.api.serializers import WorkspaceSerializer
from workspaces.selectors import clusters_with_workspaces_of, workspaces_for
from workspaces.services import display_name

OPERATIONS = {
    "start": (services.workspace_start, "started"),
    "stop": (services.workspace_stop, "stopped"),
    "restart": (services.workspace_restart, "restarted"),
    "delete": (services.workspace_delete, "deleted"),
}


@require_GET
@login_required
@ensure_csrf_cookie
def dashboard(request: HttpRequest) -> HttpResponse:
    """My workspaces and what I can launch; the page keeps itself current over
    `/ws/events/` (static/js/dashboard.js), so the data here is only its first state.

    Builders see `testing` blueprints as "Coming soon" (not launchable). An unreachable
    cluster is mentioned only to members who have workspaces there.
    """
    org = OrganizationSettings.load()
    user = request.user
    try:
        listing = workspaces_for(user)
        workspaces, unreachable = listing.workspaces, listing.unreachable
    except ApplicationError as exc:
        messages.error(request, exc.detail)
        workspaces, unreachable = [], []
    catalog = list(catalog_for(user))
    coming_soon = [] if user.is_admin else list(coming_soon_for(user))
    # Names of the blueprints this page mentions only: the catalog and my workspaces'.
    keys = {w.blueprint for w in workspaces} | {b.key for b in catalog}
    blueprints = {b.key: b.name for b in Blueprint.objects.filter(key__in=keys).only("key", "name")}
    data = {
        "me": {"email": user.email, "is_admin": user.is_admin},
        "workspaces": WorkspaceSerializer(workspaces, many=True).data,
        "unreachable": clusters_with_workspaces_of(user, unreachable),
        "not_isolated": sorted(clusters_not_isolated()),
        "blueprints": blueprints,
        # Blueprints whose launch clones a repository: the others skip that phase.
        "cloning": sorted(b.key for b in catalog if b.git_repository),
        "tags": list(user_tags_for(user).values_list("name", flat=True)),
        "limit": org.max_running_workspaces_per_user,
        "urls": {
            "api": "/api/v1/workspaces",
            "editor": reverse("workspace-editor", args=["__id__"]),
        },
    }
    context = {
        "org": org,
        "has_workspaces": bool(workspaces),
        "catalog": [
            {"blueprint": b, "default_name": display_name(b, user=user, name="")} for b in catalog
        ],
        "coming_soon": coming_soon,
        "dashboard": data,
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
            exact_name=request.POST.get("exact_name") == "1",
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
        workspace, cluster = services.own_workspace(
            request.user, workspace_id, ip=request_client_ip(request)
        )
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
