"""Workspace shapes of the API (DESIGN §8: never rename these fields)."""

from rest_framework import serializers


class WorkspaceSerializer(serializers.Serializer):
    """Read shape of a workspace, built from a `workspaces.selectors.Workspace`."""

    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    phase = serializers.CharField(source="environment.phase", allow_null=True)
    blueprint = serializers.CharField()
    owner_email = serializers.EmailField()
    cluster = serializers.CharField()
    created_at = serializers.CharField(source="environment.created_at", allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())
    ports = serializers.ListField(child=serializers.DictField())
    error = serializers.CharField(source="environment.error", allow_null=True)


class WorkspaceListSerializer(serializers.Serializer):
    results = WorkspaceSerializer(many=True)
    unreachable_clusters = serializers.ListField(child=serializers.CharField())


class LaunchSerializer(serializers.Serializer):
    blueprint = serializers.CharField(max_length=50)
    name = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")


class RenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=60)


class TagsSerializer(serializers.Serializer):
    tags = serializers.ListField(child=serializers.CharField(max_length=40), max_length=20)


class LogsSerializer(serializers.Serializer):
    lines = serializers.ListField(child=serializers.CharField())
