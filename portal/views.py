"""Portal-wide pages: health check and the landing page."""

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect

from workspaces.dashboard import dashboard


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers (no secrets, no auth)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok"})


def home(request: HttpRequest):
    """Signed-in members get their dashboard; everyone else the sign-in page."""
    if not request.user.is_authenticated:
        return redirect("login")
    return dashboard(request)
