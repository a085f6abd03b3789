"""Routes of /api/v1/admin/trust-rules."""

from rest_framework.routers import SimpleRouter

from publishing.api import views

router = SimpleRouter(trailing_slash=False)
router.register("admin/trust-rules", views.TrustRuleViewSet, basename="admin-trust-rule")

urlpatterns = router.urls
