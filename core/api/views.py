"""Admins: the organisation settings (branding, welcome screen, limits)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from core.api.permissions import IsAdmin
from core.api.serializers import OrganizationSettingsSerializer
from core.models import OrganizationSettings
from core.services import organization_settings_update


class OrganizationSettingsViewSet(viewsets.GenericViewSet):
    """The organisation singleton; changes are validated, audited and apply at once."""

    permission_classes = [IsAdmin]
    serializer_class = OrganizationSettingsSerializer

    @extend_schema(responses=OrganizationSettingsSerializer)
    def retrieve(self, request):
        return Response(self.get_serializer(OrganizationSettings.load()).data)

    @extend_schema(request=OrganizationSettingsSerializer, responses=OrganizationSettingsSerializer)
    def partial_update(self, request):
        current = OrganizationSettings.load()
        params = self.get_serializer(current, data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        updated = organization_settings_update(actor=request.user, changes=params.validated_data)
        return Response(self.get_serializer(updated).data)
