"""Server-rendered workspace pages: the editor (the builder's whole working day) and the
standalone terminal.

Every view is for the signed-in owner only: someone else's workspace, or an unknown id,
answers 404 exactly like the API does.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from blueprints.models import ASSISTANT_PORT, Blueprint
from clusters.models import Cluster
from core.client_ip import request_client_ip
from core.errors import ApplicationError
from core.storage import monaco_url
from security_center.services import firewall_evaluate
from workspaces import injection, links, services
from workspaces.api.serializers import WorkspaceSerializer
from workspaces.selectors import (
    Workspace,
    clusters_with_workspaces_of,
    workspaces_for,
)


def _own_workspace(request: HttpRequest, workspace_id: str) -> tuple[Workspace, Cluster]:
    try:
        return services.own_workspace(request.user, workspace_id, ip=request_client_ip(request))
    except ApplicationError as exc:
        if exc.status == 404:
            raise Http404("No such workspace.") from exc
        raise


def _tabs(blueprint: Blueprint | None) -> list[dict[str, str]]:
    """The blueprint's layout tabs (titles and kinds only: commands stay server-side)."""
    tabs = blueprint.layout_tabs if blueprint is not None and blueprint.layout_tabs else []
    return [{"kind": t.get("kind", "terminal"), "title": t.get("title", "")} for t in tabs] or [
        {"kind": "terminal", "title": "Terminal"}
    ]


@require_GET
@login_required
@ensure_csrf_cookie
def editor(request: HttpRequest, workspace_id: str) -> HttpResponse:
    """The editor: top bar, the layout's tabs (terminals, AI and command tabs, files), the
    preview panel and the logs, in one page that follows the workspace over
    `/ws/events/` (static/js/editor.js). Commands of the layout never reach the page:
    it gets titles and kinds, the portal turns a tab index into its command."""
    try:
        workspace, cluster = _own_workspace(request, workspace_id)
    except ApplicationError as exc:  # the cluster is unreachable: the page explains it
        return render(request, "editor.html", {"error": exc.detail}, status=exc.status)
    except Http404:
        unreachable = clusters_with_workspaces_of(
            request.user, workspaces_for(request.user).unreachable
        )
        if not unreachable:
            raise
        detail = (
            f"{', '.join(unreachable)} is not answering right now, and this workspace may be "
            "there. Try again in a moment."
        )
        return render(request, "editor.html", {"error": detail}, status=503)
    blueprint = (
        Blueprint.objects.prefetch_related("ai_providers").filter(key=workspace.blueprint).first()
    )
    owner = request.user if workspace.owner_email == request.user.email else None
    injected = injection.injected_env(blueprint, owner or injection.owner_of(workspace.owner_email))
    data = {
        "workspace": WorkspaceSerializer(workspace).data,
        "me": {"email": request.user.email, "is_admin": request.user.is_admin},
        "blueprint": {
            "name": blueprint.name if blueprint else workspace.blueprint,
            "tabs": _tabs(blueprint),
            "locked": blueprint.layout_locked if blueprint else False,
            "preview": blueprint.preview_enabled if blueprint else True,
            "path_bar": blueprint.path_bar_enabled if blueprint else True,
        },
        "not_isolated": cluster.not_isolated,
        "chat": {
            "available": blueprint is not None and injection.chat_available(blueprint),
            "port": ASSISTANT_PORT,
        },
        "env_digest": injection.injection_digest(injected),
        "urls": {
            "api": f"/api/v1/workspaces/{workspace.id}",
            "dashboard": reverse("home"),
            "terminal_status": reverse("workspace-terminal-status", args=[workspace.id]),
        },
        "preview_origins": {
            str(p["port"]): links.preview_origin(workspace.id, p["port"]) for p in workspace.ports
        },
        "vendor": {
            "xterm": static("vendor/xterm/xterm.mjs"),
            "fit": static("vendor/xterm/addon-fit.mjs"),
            "monaco": monaco_url(),
        },
    }
    context = {"workspace": workspace, "blueprint": blueprint, "editor": data}
    return render(request, "editor.html", context)


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
    tabs = _tabs(Blueprint.objects.filter(key=workspace.blueprint).first())
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
