"""Admins: who may publish from a blueprint without review (trust rules)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.permissions import IsAdmin
from publishing import selectors, services
from publishing.api.serializers import TrustRuleSerializer
from publishing.models import TrustRule


class TrustRuleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Members trusted to publish from a blueprint without review; active and revoked."""

    permission_classes = [IsAdmin]
    serializer_class = TrustRuleSerializer
    queryset = TrustRule.objects.none()

    def get_queryset(self):
        return selectors.trust_rules()

    def perform_create(self, serializer):
        serializer.instance = services.trust_grant(
            user=serializer.validated_data["user"],
            blueprint=serializer.validated_data["blueprint"],
            actor=self.request.user,
        )

    @extend_schema(request=None, responses=TrustRuleSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        rule = services.trust_revoke(rule=self.get_object(), actor=request.user)
        return Response(self.get_serializer(rule).data)
