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

    def to_representation(self, instance) -> dict:
        """Plain dict building: listings of 10 000 workspaces stay fast (fields above are
        the documented schema and must match)."""
        environment = instance.environment
        return {
            "id": instance.id,
            "name": instance.name,
            "status": instance.status,
            "phase": environment.phase,
            "blueprint": instance.blueprint,
            "owner_email": instance.owner_email,
            "cluster": instance.cluster,
            "created_at": environment.created_at,
            "tags": list(instance.tags),
            "ports": instance.ports,
            "error": environment.error,
        }


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


class TicketSerializer(serializers.Serializer):
    """A one-time ticket (DESIGN §8: `ticket`, `expires_at`, `url`)."""

    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()
    url = serializers.CharField()


class PreviewTicketRequestSerializer(serializers.Serializer):
    port = serializers.IntegerField(min_value=1, max_value=65535)


class MeSerializer(serializers.Serializer):
    email = serializers.EmailField()
    full_name = serializers.CharField()
    role = serializers.CharField()
    status = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    running_workspaces = serializers.IntegerField(
        allow_null=True, help_text="Null while the cluster cannot be asked."
    )
    workspace_limit = serializers.IntegerField()
