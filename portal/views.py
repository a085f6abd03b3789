"""Portal-wide pages: health check and the landing page."""

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers (no secrets, no auth)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok"})


def home(request: HttpRequest):
    """Members land on the console (admins) or the API docs until the builder UI ships."""
    if request.user.is_authenticated and request.user.is_admin:
        return redirect("admin:index")
    return redirect("api-docs")
