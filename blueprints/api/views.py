"""The builders' blueprint catalog and the admins' blueprint management."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from blueprints import selectors, services
from blueprints.api.serializers import AdminBlueprintSerializer, CatalogBlueprintSerializer
from blueprints.choices import BlueprintState
from blueprints.models import AIProvider, Blueprint
from core.api.permissions import IsAdmin


class CatalogViewSet(viewsets.ReadOnlyModelViewSet):
    """The blueprints this member may see and launch; any other key is not found."""

    serializer_class = CatalogBlueprintSerializer
    lookup_field = "key"

    def get_queryset(self):
        return selectors.catalog_for(self.request.user).prefetch_related(
            Prefetch("ai_providers", queryset=AIProvider.objects.order_by("provider"))
        )


class AdminBlueprintViewSet(viewsets.ModelViewSet):
    """Admins: every blueprint with its access rules and AI providers (keys write-only).

    A write is all or nothing: the blueprint, its rules and its providers are saved in
    one transaction by the services, which validate and audit each part.
    """

    permission_classes = [IsAdmin]
    serializer_class = AdminBlueprintSerializer
    lookup_field = "key"
    queryset = Blueprint.objects.select_related("cluster").prefetch_related(
        "access_rules", "ai_providers"
    )

    def perform_create(self, serializer):
        serializer.instance = self._write(serializer, Blueprint())

    def perform_update(self, serializer):
        serializer.instance = self._write(serializer, serializer.instance)

    def _write(self, serializer, blueprint: Blueprint) -> Blueprint:
        data = serializer.validated_data
        blueprint = services.blueprint_save(
            blueprint=blueprint,
            fields=serializer.model_fields(),
            access_rules=[dict(r) for r in data["access_rules"]]
            if "access_rules" in data
            else ([] if blueprint.pk is None else None),
            ai_providers=[dict(p) for p in data["ai_providers"]]
            if "ai_providers" in data
            else ([] if blueprint.pk is None else None),
            actor=self.request.user,
        )
        return self.get_queryset().get(pk=blueprint.pk)

    def perform_destroy(self, instance):
        services.blueprint_delete(blueprint=instance, actor=self.request.user)

    def _set_state(self, request, state: str) -> Response:
        blueprint = services.blueprint_set_state(
            blueprint=self.get_object(), state=state, actor=request.user
        )
        return Response(self.get_serializer(blueprint).data)

    @extend_schema(request=None, responses=AdminBlueprintSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request, key=None):
        return self._set_state(request, BlueprintState.ENABLED)

    @extend_schema(request=None, responses=AdminBlueprintSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, key=None):
        return self._set_state(request, BlueprintState.DISABLED)

    @extend_schema(request=None, responses=AdminBlueprintSerializer)
    @action(detail=True, methods=["post"], url_path="set-testing")
    def set_testing(self, request, key=None):
        return self._set_state(request, BlueprintState.TESTING)
