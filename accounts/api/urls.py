"""Routes of /api/v1/me… and /api/v1/admin/{members,tags}."""

from rest_framework.routers import SimpleRouter

from accounts.api import views

router = SimpleRouter(trailing_slash=False)
router.register("me/tags", views.MyTagViewSet, basename="me-tag")
router.register("me/tokens", views.MyTokenViewSet, basename="me-token")
router.register("admin/members", views.MemberViewSet, basename="admin-member")
router.register("admin/tags", views.AdminTagViewSet, basename="admin-tag")

urlpatterns = [
    *router.urls,
]
