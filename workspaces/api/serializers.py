"""Workspace shapes of the API (DESIGN §8: never rename these fields)."""

from django.core.validators import ProhibitNullCharactersValidator
from rest_framework import serializers

from agent.protocol import ENTRY_TYPES, ENV_DIGEST_TAG


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
    env_digest = serializers.CharField(
        allow_null=True,
        help_text="Keyed digest of the variables injected at the last (re)start (reveals "
        "none); differs from the editor's when a restart would apply changed settings.",
    )

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
            "env_digest": environment.metadata.get(ENV_DIGEST_TAG),
        }


class AdminWorkspaceSerializer(WorkspaceSerializer):
    """An admin's view of a workspace: also whether its owner is no longer an active
    member (suspended or gone) — the workspace keeps running, orphaned."""

    orphaned = serializers.BooleanField()

    def to_representation(self, instance) -> dict:
        data = super().to_representation(instance)
        data["orphaned"] = instance.owner_email.lower() in self.context.get("orphaned", ())
        return data


class AdminWorkspaceListSerializer(serializers.Serializer):
    results = AdminWorkspaceSerializer(many=True)
    unreachable_clusters = serializers.ListField(child=serializers.CharField())


class WorkspaceListSerializer(serializers.Serializer):
    results = WorkspaceSerializer(many=True)
    unreachable_clusters = serializers.ListField(child=serializers.CharField())


class LaunchSerializer(serializers.Serializer):
    blueprint = serializers.CharField(max_length=50)
    name = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")
    exact_name = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Use `name` as it is instead of applying the blueprint's naming template.",
    )


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
    path = serializers.RegexField(
        r"^/(?!/)[^\s\\]*$",
        max_length=2000,
        required=False,
        default="/",
        help_text="Where the preview opens once the ticket is redeemed (a path on the app).",
        error_messages={"invalid": "A path on the app, starting with a single '/'."},
    )


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


# --- the Files tab ---------------------------------------------------------------------------


class FilePathField(serializers.CharField):
    """A path relative to the workspace's home. Its rules (no ``..``, no NUL, not absolute,
    4096 bytes at most) are the service's, which answers ``path_invalid``."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("help_text", "Relative to the workspace's home ('' is the home).")
        super().__init__(**kwargs)
        self.validators = [
            v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)
        ]


class FileListQuerySerializer(serializers.Serializer):
    path = FilePathField(required=False, allow_blank=True, default="")


class FileQuerySerializer(serializers.Serializer):
    path = FilePathField()


class FileDeleteQuerySerializer(serializers.Serializer):
    path = FilePathField()
    recursive = serializers.BooleanField(
        required=False, default=False, help_text="Also delete a folder that is not empty."
    )


class FileEntrySerializer(serializers.Serializer):
    """One entry of a folder (`workspaces.controlplane.FileEntry`)."""

    name = serializers.CharField()
    path = serializers.CharField()
    type = serializers.ChoiceField(choices=ENTRY_TYPES)
    size = serializers.IntegerField(allow_null=True, help_text="Bytes; files only.")
    modified = serializers.CharField(allow_null=True)
    target = serializers.CharField(
        allow_null=True,
        help_text="A link's target as a path in the home; null when it leads out of it.",
    )


class DirectoryListingSerializer(serializers.Serializer):
    path = serializers.CharField()
    entries = FileEntrySerializer(many=True)
    truncated = serializers.BooleanField(help_text="The folder has more entries than listed.")


class FileVersionSerializer(serializers.Serializer):
    """A file as saved (`workspaces.controlplane.FileVersion`)."""

    path = serializers.CharField()
    size = serializers.IntegerField()
    modified = serializers.CharField(allow_null=True)
    version = serializers.CharField(help_text="Send it back as `base_version` to save again.")


class FileContentSerializer(FileVersionSerializer):
    """A file as read (`workspaces.controlplane.FileContent`)."""

    binary = serializers.BooleanField(help_text="Not text: no content is sent.")
    content = serializers.CharField(allow_null=True, trim_whitespace=False)


class FileWriteSerializer(serializers.Serializer):
    path = FilePathField()
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)
    base_version = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        trim_whitespace=False,
        default=None,
        max_length=100,
        help_text="The version the edit started from: the save fails with 409 "
        "`file_conflict` if the file changed since. Empty: create a new file, 409 "
        "`file_exists` if there is one. Omit it to overwrite.",
    )


class FileRenameSerializer(serializers.Serializer):
    """Move `from` to `to`, both in the workspace's home."""

    to = FilePathField()
    overwrite = serializers.BooleanField(
        required=False, default=False, help_text="Replace an existing `to`."
    )

    def get_fields(self) -> dict:
        # `from` is a Python keyword: it cannot be declared as a class attribute.
        return {"from": FilePathField(), **super().get_fields()}
