"""Routes of /api/v1/me, /api/v1/workspaces… and /api/v1/admin/workspaces."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from workspaces.api.views import AdminWorkspaceViewSet, MeViewSet, WorkspaceViewSet

router = SimpleRouter(trailing_slash=False)
router.register("workspaces", WorkspaceViewSet, basename="workspace")
router.register("admin/workspaces", AdminWorkspaceViewSet, basename="admin-workspace")

urlpatterns = [
    # The member with their running-workspace quota: it reads accounts and workspaces.
    path("me", MeViewSet.as_view({"get": "retrieve"}), name="me"),
    *router.urls,
]
