"""Routes of /api/v1/admin/clusters."""

from rest_framework.routers import SimpleRouter

from clusters.api import views

router = SimpleRouter(trailing_slash=False)
router.register("admin/clusters", views.ClusterViewSet, basename="admin-cluster")

urlpatterns = router.urls
