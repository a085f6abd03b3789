"""Admins: clusters, their agents' status and tokens."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from clusters import services
from clusters.api.serializers import (
    AgentTokenSerializer,
    ClusterSerializer,
    ClusterWithTokenSerializer,
)
from clusters.models import Cluster
from core.api.permissions import IsAdmin


class ClusterViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Register, inspect and remove clusters; the agent token is shown only once."""

    permission_classes = [IsAdmin]
    serializer_class = ClusterSerializer
    queryset = Cluster.objects.all()
    lookup_field = "name"

    @extend_schema(request=ClusterSerializer, responses={201: ClusterWithTokenSerializer})
    def create(self, request):
        params = ClusterSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        cluster, raw = services.cluster_create(
            name=params.validated_data["name"],
            description=params.validated_data.get("description", ""),
            actor=request.user,
        )
        cluster.token = raw
        return Response(ClusterWithTokenSerializer(cluster).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.cluster_delete(cluster=instance, actor=self.request.user)

    @extend_schema(request=None, responses=AgentTokenSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request, name=None):
        raw = services.cluster_rotate_token(cluster=self.get_object(), actor=request.user)
        return Response(AgentTokenSerializer({"token": raw}).data)
