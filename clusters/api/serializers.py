"""Shapes of clusters. The agent token appears only in the create and rotate responses."""

from __future__ import annotations

from rest_framework import serializers

from clusters.models import Cluster


class ClusterSerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        read_only=True, help_text="`connected` while the agent's tunnel is up, else `disconnected`."
    )

    class Meta:
        model = Cluster
        fields = [
            "name",
            "description",
            "status",
            "runtime",
            "agent_version",
            "last_seen_at",
            "created_at",
        ]
        read_only_fields = ["status", "runtime", "agent_version", "last_seen_at", "created_at"]
        # Name uniqueness and format are the model's rules, checked by the service.
        extra_kwargs = {"name": {"validators": []}}


class ClusterWithTokenSerializer(ClusterSerializer):
    token = serializers.CharField(read_only=True, help_text="The agent token; shown once.")

    class Meta(ClusterSerializer.Meta):
        fields = [*ClusterSerializer.Meta.fields, "token"]


class AgentTokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text="The new agent token; shown once.")
