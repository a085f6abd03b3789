"""Portal-wide pages: health check, the landing page, and the error answers of the API
(every `/api/v1/` answer is `{detail, code}` JSON, unknown paths and crashes included)."""

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

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


API_PREFIX = "/api/"


@csrf_exempt  # answers 404 to every method; a POST to an unknown path is no CSRF target
def api_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any `/api/v1/` path no endpoint matches (a malformed id included)."""
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def server_error(request: HttpRequest):
    """A crash: `{detail, code}` JSON under `/api/`, Django's plain 500 page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(
            {"detail": "The server failed; the error is logged.", "code": "server_error"},
            status=500,
        )
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception):
    """A request Django refuses before any view (oversize body, too many fields …)."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
    return defaults.bad_request(request, exception)
