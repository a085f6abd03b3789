"""Routes of /api/v1/me… and /api/v1/admin/{members,tags}."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api import views

router = SimpleRouter(trailing_slash=False)
router.register("me/tags", views.MyTagViewSet, basename="me-tag")
router.register("me/tokens", views.MyTokenViewSet, basename="me-token")
router.register("admin/members", views.MemberViewSet, basename="admin-member")
router.register("admin/tags", views.AdminTagViewSet, basename="admin-tag")

urlpatterns = [
    path("me/profile", views.MyProfileView.as_view(), name="me-profile"),
    path("me/secrets", views.MySecretListView.as_view(), name="me-secrets"),
    path("me/secrets/<str:name>", views.MySecretView.as_view(), name="me-secret"),
    *router.urls,
]
