"""Routes of /api/v1/blueprints and /api/v1/admin/blueprints."""

from rest_framework.routers import SimpleRouter

from blueprints.api import views

router = SimpleRouter(trailing_slash=False)
router.register("blueprints", views.CatalogViewSet, basename="blueprint")
router.register("admin/blueprints", views.AdminBlueprintViewSet, basename="admin-blueprint")

urlpatterns = router.urls
