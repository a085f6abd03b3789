"""Request middleware of the portal's own."""

from __future__ import annotations

from django.conf import settings

from audit.context import request_ip
from core.client_ip import request_client_ip


class AuditContextMiddleware:
    """Binds the client IP (as `core.client_ip` resolves it, trusted proxies included) for
    the audit entries the request writes without naming one."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        with request_ip(request_client_ip(request)):
            return self.get_response(request)


class PermissionsPolicyMiddleware:
    """`Permissions-Policy` on every portal answer: no camera, microphone, location …"""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.policy = settings.PERMISSIONS_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", self.policy)
        return response
