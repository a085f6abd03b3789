from rest_framework.routers import SimpleRouter

from workspaces.api.views import AdminWorkspaceViewSet, WorkspaceViewSet

router = SimpleRouter(trailing_slash=False)
router.register("workspaces", WorkspaceViewSet, basename="workspace")
router.register("admin/workspaces", AdminWorkspaceViewSet, basename="admin-workspace")

urlpatterns = router.urls
