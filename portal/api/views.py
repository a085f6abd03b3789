"""Admins: the organisation settings (branding, welcome screen, limits)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from portal.api.permissions import IsAdmin
from portal.api.serializers import OrganizationSettingsSerializer
from portal.models import OrganizationSettings
from portal.services import organization_settings_update


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Token <personal API token>` in the OpenAPI schema."""

    target_class = "portal.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <personal API token>` (see POST /api/v1/me/tokens).",
        }


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
