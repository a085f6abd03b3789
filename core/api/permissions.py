"""API permissions: every endpoint needs an active member; admin endpoints an admin."""

from rest_framework.permissions import BasePermission


class IsActiveMember(BasePermission):
    """Signed in (session or token) as an active member."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)


class IsAdmin(IsActiveMember):
    """An active member with the `admin` role."""

    message = "This endpoint is for administrators."

    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and request.user.is_admin
