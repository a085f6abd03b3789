"""Shapes of clusters. The agent token appears only in the create and rotate responses."""

from __future__ import annotations

from rest_framework import serializers

from agent.protocol import ISOLATION
from clusters.models import Cluster


class IsolationSerializer(serializers.Serializer):
    """How the agent's runtime keeps workspaces apart, as its last `hello` said (a
    mechanism it did not report, or reported with a value the portal does not know, is
    absent)."""

    sandbox = serializers.ChoiceField(
        choices=sorted(ISOLATION["sandbox"]),
        required=False,
        help_text="`none`: workspaces run as plain processes and can reach each other.",
    )
    network = serializers.ChoiceField(
        choices=sorted(ISOLATION["network"]),
        required=False,
        help_text="`private`: a network namespace per workspace; `shared`: the host's.",
    )
    limits = serializers.ChoiceField(
        choices=sorted(ISOLATION["limits"]),
        required=False,
        help_text="How blueprint resources are enforced.",
    )


class ClusterSerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        read_only=True, help_text="`connected` while the agent's tunnel is up, else `disconnected`."
    )
    runtime = serializers.ChoiceField(
        choices=Cluster._meta.get_field("runtime").choices,
        allow_blank=True,
        read_only=True,
        help_text="The agent's runtime; empty until its agent first connects.",
    )
    isolation = IsolationSerializer(read_only=True)
    isolated = serializers.BooleanField(
        read_only=True,
        help_text="True only while a connected agent reports a sandbox other than `none`.",
    )

    class Meta:
        model = Cluster
        fields = [
            "name",
            "description",
            "status",
            "runtime",
            "agent_version",
            "isolation",
            "isolated",
            "last_seen_at",
            "created_at",
        ]
        read_only_fields = [
            "status",
            "runtime",
            "agent_version",
            "isolation",
            "isolated",
            "last_seen_at",
            "created_at",
        ]
        # Name uniqueness and format are the model's rules, checked by the service.
        extra_kwargs = {"name": {"validators": []}}


class ClusterWithTokenSerializer(ClusterSerializer):
    token = serializers.CharField(read_only=True, help_text="The agent token; shown once.")

    class Meta(ClusterSerializer.Meta):
        fields = [*ClusterSerializer.Meta.fields, "token"]


class AgentTokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text="The new agent token; shown once.")
