"""Shape of the organisation settings singleton."""

from __future__ import annotations

from rest_framework import serializers

from core.models import OrganizationSettings


class OrganizationSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrganizationSettings
        exclude = ["id"]
        read_only_fields = ["updated_at"]
