"""Server-rendered workspace pages: the browser terminal (the later UI issue embeds it).

Both views are for the signed-in owner only: someone else's workspace, or an unknown
id, answers 404 exactly like the API does.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from blueprints.models import Blueprint
from clusters.models import Cluster
from core.client_ip import request_client_ip
from core.errors import ApplicationError
from security_center.services import firewall_evaluate
from workspaces.selectors import Workspace, workspace_for


def _own_workspace(request: HttpRequest, workspace_id: str) -> tuple[Workspace, Cluster]:
    try:
        return workspace_for(request.user, workspace_id)
    except ApplicationError as exc:
        if exc.status == 404:
            raise Http404("No such workspace.") from exc
        raise


def _tabs(workspace: Workspace) -> list[dict[str, str]]:
    """The blueprint's layout tabs (titles and kinds only: commands stay server-side)."""
    blueprint = Blueprint.objects.filter(key=workspace.blueprint).first()
    tabs = blueprint.layout_tabs if blueprint is not None and blueprint.layout_tabs else []
    return [{"kind": t.get("kind", "terminal"), "title": t.get("title", "")} for t in tabs] or [
        {"kind": "terminal", "title": "Terminal"}
    ]


@require_GET
@login_required
@ensure_csrf_cookie
def terminal(request: HttpRequest, workspace_id: str) -> HttpResponse:
    """The terminal page of one workspace; `?tab=<index>` picks a layout tab. A workspace
    whose cluster runs it without a sandbox says so in the bar."""
    try:
        workspace, cluster = _own_workspace(request, workspace_id)
    except ApplicationError as exc:  # the cluster is unreachable: the page explains it
        return render(request, "terminal.html", {"error": exc.detail}, status=exc.status)
    tabs = _tabs(workspace)
    try:
        tab = int(request.GET.get("tab", 0))
    except ValueError:
        tab = 0
    if not 0 <= tab < len(tabs):
        raise Http404("No such tab.")
    context = {
        "workspace": workspace,
        "tabs": tabs,
        "tab": tab,
        "tab_title": tabs[tab]["title"],
        "not_isolated": cluster.not_isolated,
    }
    return render(request, "terminal.html", context)


@require_GET
@login_required
def terminal_status(request: HttpRequest, workspace_id: str) -> JsonResponse:
    """Why a terminal cannot connect: the workspace status and the firewall's verdict.

    The terminal WebSocket refuses bad handshakes before accepting them, and browsers do
    not expose why; the page asks here. Nothing is recorded (the refused handshake was).
    """
    try:
        workspace, _ = _own_workspace(request, workspace_id)
    except ApplicationError as exc:
        return JsonResponse({"code": exc.code, "detail": exc.detail}, status=exc.status)
    allowed = firewall_evaluate(request_client_ip(request)).allowed
    return JsonResponse(
        {"status": workspace.status, "firewall": "allowed" if allowed else "blocked"}
    )
