"""Shapes of the security centre: firewall, connections, audit log."""

from __future__ import annotations

from rest_framework import serializers

from audit.models import AuditEvent
from security_center.models import ConnectionSession, FirewallEvent, FirewallRule, normalize_cidr


class FirewallRuleSerializer(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = FirewallRule
        fields = [
            "id",
            "action",
            "cidr",
            "description",
            "priority",
            "enabled",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]

    def validate_cidr(self, value: str) -> str:
        # The model's own parser, so the field error carries the model's message.
        return normalize_cidr(value)


# `kind` as plain text: an enum named "kind" would collide in the schema with blueprints'.
KIND_HELP = "`shell` (terminal) or `preview`."


class ConnectionSessionSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    kind = serializers.CharField(read_only=True, help_text=KIND_HELP)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ConnectionSession
        fields = [
            "id",
            "email",
            "ip",
            "kind",
            "environment_id",
            "cluster",
            "port",
            "started_at",
            "ended_at",
            "last_activity_at",
            "bytes_in",
            "bytes_out",
            "requests",
            "close_reason",
            "is_active",
        ]
        read_only_fields = fields


class FirewallEventSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text=KIND_HELP)

    class Meta:
        model = FirewallEvent
        fields = [
            "id",
            "ip",
            "rule",
            "rule_summary",
            "kind",
            "user_email",
            "environment_id",
            "created_at",
        ]
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "actor_email",
            "action",
            "target_type",
            "target_id",
            "ip",
            "outcome",
            "details",
            "created_at",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields
