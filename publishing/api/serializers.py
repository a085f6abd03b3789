"""Shapes of trust rules."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import User, normalize_email
from blueprints.models import Blueprint
from publishing.models import TrustRule


class MemberEmailField(serializers.SlugRelatedField):
    """A member named by e-mail, matched case-insensitively."""

    def to_internal_value(self, data):
        return super().to_internal_value(normalize_email(str(data)))


class TrustRuleSerializer(serializers.ModelSerializer):
    user = MemberEmailField(slug_field="email", queryset=User.objects.all())
    blueprint = serializers.SlugRelatedField(slug_field="key", queryset=Blueprint.objects.all())
    granted_by = serializers.EmailField(source="granted_by.email", read_only=True, default=None)
    revoked_by = serializers.EmailField(source="revoked_by.email", read_only=True, default=None)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = TrustRule
        fields = [
            "id",
            "user",
            "blueprint",
            "is_active",
            "granted_by",
            "granted_at",
            "revoked_by",
            "revoked_at",
        ]
        read_only_fields = ["id", "granted_at", "revoked_at"]
        # One active rule per (member, blueprint): the service answers 409 `already_trusted`.
        validators: list = []
