"""The portal page that embeds a workspace preview (the later UI issue reuses it).

For the signed-in owner only: someone else's workspace, or an unknown id, answers 404
like the API. Each load issues a fresh single-use preview ticket; the iframe redeems
it on the preview's own origin, so the app inside never shares the portal's origin.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.client_ip import request_client_ip
from core.errors import ApplicationError
from workspaces import links
from workspaces.services import own_workspace, workspace_preview_ticket


@require_GET
@login_required
def workspace_preview(request: HttpRequest, workspace_id: str) -> HttpResponse:
    """The preview of one declared port (`?port=`, default the first) in an iframe, with
    a red notice when the workspace's cluster runs it without a sandbox."""
    try:
        workspace, cluster = own_workspace(
            request.user, workspace_id, ip=request_client_ip(request)
        )
        ports = [p["port"] for p in workspace.ports]
        try:
            port = int(request.GET.get("port", ports[0] if ports else 0))
        except ValueError:
            raise Http404("No such port.") from None
        _, raw = workspace_preview_ticket(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            port=port,
            ip=request_client_ip(request),
        )
    except ApplicationError as exc:
        if exc.status == 404:
            raise Http404("No such workspace.") from exc
        return render(request, "preview.html", {"error": exc.detail}, status=exc.status)
    context = {
        "workspace": workspace,
        "port": port,
        "ports": workspace.ports,
        "frame_url": links.preview_auth_url(workspace.id, port, raw),
        "origin": links.preview_origin(workspace.id, port),
        "not_isolated": cluster.not_isolated,
    }
    return render(request, "preview.html", context)
