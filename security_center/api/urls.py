"""Routes of /api/v1/admin/{firewall-rules,connections,firewall-events,audit-events}."""

from rest_framework.routers import SimpleRouter

from security_center.api import views

router = SimpleRouter(trailing_slash=False)
router.register("admin/firewall-rules", views.FirewallRuleViewSet, basename="admin-firewall-rule")
router.register("admin/connections", views.ConnectionViewSet, basename="admin-connection")
router.register(
    "admin/firewall-events", views.FirewallEventViewSet, basename="admin-firewall-event"
)
router.register("admin/audit-events", views.AuditEventViewSet, basename="admin-audit-event")

urlpatterns = router.urls
