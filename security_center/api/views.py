"""Admins: firewall rules, and the read-only records: connections, firewall events and
the audit log."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from audit.models import AuditEvent
from core.api.pagination import NewestFirstPagination
from core.api.permissions import IsAdmin
from core.client_ip import request_client_ip
from core.errors import ApplicationError
from security_center import selectors, services
from security_center.api.serializers import (
    AuditEventSerializer,
    ConnectionSessionSerializer,
    FirewallEventSerializer,
    FirewallRuleSerializer,
)
from security_center.models import FirewallEvent, FirewallRule


class FirewallRuleViewSet(viewsets.ModelViewSet):
    """Allow/deny rules on client IPs; every change is validated and audited."""

    permission_classes = [IsAdmin]
    serializer_class = FirewallRuleSerializer
    queryset = FirewallRule.objects.select_related("created_by").order_by("priority")

    def perform_create(self, serializer):
        rule = FirewallRule(**serializer.validated_data)
        serializer.instance = services.firewall_rule_save(rule=rule, actor=self.request.user)

    def perform_update(self, serializer):
        rule = serializer.instance
        for name, value in serializer.validated_data.items():
            setattr(rule, name, value)
        services.firewall_rule_save(
            rule=rule, actor=self.request.user, changed=sorted(serializer.validated_data)
        )

    def perform_destroy(self, instance):
        services.firewall_rule_delete(rule=instance, actor=self.request.user)

    def _set_enabled(self, request, enabled: bool) -> Response:
        rule = services.firewall_rule_set_enabled(
            rule=self.get_object(), enabled=enabled, actor=request.user
        )
        return Response(self.get_serializer(rule).data)

    @extend_schema(request=None, responses=FirewallRuleSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        return self._set_enabled(request, True)

    @extend_schema(request=None, responses=FirewallRuleSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        return self._set_enabled(request, False)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("active", bool, description="Only sessions still open.")]
    )
)
class ConnectionViewSet(viewsets.ReadOnlyModelViewSet):
    """Terminal and preview sessions, newest first; admins can end an active one."""

    permission_classes = [IsAdmin]
    serializer_class = ConnectionSessionSerializer
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        return selectors.connection_search(active=self.request.query_params.get("active"))

    @extend_schema(request=None, responses=ConnectionSessionSerializer)
    @action(detail=True, methods=["post"])
    def terminate(self, request, pk=None):
        """End an active session: the browser gets a message and its socket closes.

        409 `connection_ended` when the session had already ended (nothing changes).
        """
        session = self.get_object()
        ended = services.connection_terminate(
            session=session, actor=request.user, ip=request_client_ip(request)
        )
        if not ended:
            raise ApplicationError(
                "This session has already ended.", code="connection_ended", status=409
            )
        return Response(self.get_serializer(session).data)


class FirewallEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Connection attempts the firewall blocked, newest first."""

    permission_classes = [IsAdmin]
    serializer_class = FirewallEventSerializer
    pagination_class = NewestFirstPagination
    queryset = FirewallEvent.objects.all()


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The append-only audit log, newest first."""

    permission_classes = [IsAdmin]
    serializer_class = AuditEventSerializer
    pagination_class = NewestFirstPagination
    queryset = AuditEvent.objects.all()
