"""Shapes of blueprints: the builders' catalog entry and the admins' write shape (DESIGN §8).

AI provider keys are write-only: no serializer here ever outputs one.
"""

from __future__ import annotations

from rest_framework import serializers

from blueprints.choices import AccessRuleKind, AIProviderKind, AnthropicAuthMode, TabKind
from blueprints.models import AIProvider, Blueprint, BlueprintAccessRule
from clusters.models import Cluster


class PortSerializer(serializers.Serializer):
    port = serializers.IntegerField(min_value=1, max_value=65535)
    name = serializers.CharField(max_length=63)


class ResourcesSerializer(serializers.Serializer):
    cpu = serializers.CharField(max_length=10)
    memory = serializers.CharField(max_length=10)
    storage = serializers.CharField(max_length=10)


class TabSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TabKind.choices)
    title = serializers.CharField(max_length=40, required=False, allow_blank=True)
    command = serializers.CharField(required=False, allow_blank=True)


class LayoutSerializer(serializers.Serializer):
    tabs = TabSerializer(many=True)
    locked = serializers.BooleanField()
    preview = serializers.BooleanField()
    path_bar = serializers.BooleanField()


class CatalogProviderSerializer(serializers.ModelSerializer):
    class Meta:
        model = AIProvider
        fields = ["provider", "model", "enabled"]
        read_only_fields = fields


class CatalogBlueprintSerializer(serializers.ModelSerializer):
    """What a builder sees of a blueprint."""

    ports = PortSerializer(many=True, read_only=True)
    resources = ResourcesSerializer(read_only=True)
    layout = LayoutSerializer(read_only=True)
    ai_providers = CatalogProviderSerializer(many=True, read_only=True)

    class Meta:
        model = Blueprint
        fields = [
            "key",
            "name",
            "description",
            "icon",
            "category",
            "state",
            "ports",
            "resources",
            "layout",
            "ai_providers",
        ]
        read_only_fields = fields


class AccessRuleSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=AccessRuleKind.choices)
    value = serializers.CharField(max_length=254)

    class Meta:
        model = BlueprintAccessRule
        fields = ["kind", "value"]


class AIProviderSerializer(serializers.ModelSerializer):
    provider = serializers.ChoiceField(choices=AIProviderKind.choices)
    auth_mode = serializers.ChoiceField(
        choices=AnthropicAuthMode.choices, default=AnthropicAuthMode.API_KEY
    )
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        help_text="Write-only. Omit on update to keep the stored key.",
    )
    has_api_key = serializers.BooleanField(read_only=True)

    class Meta:
        model = AIProvider
        fields = [
            "provider",
            "enabled",
            "auth_mode",
            "model",
            "endpoint_url",
            "api_key",
            "has_api_key",
        ]
        # The service validates the whole provider (including uniqueness) on save.
        validators: list = []


# Model attributes behind the nested `resources` and `layout` objects.
RESOURCE_FIELDS = {"cpu": "cpu", "memory": "memory", "storage": "storage"}
LAYOUT_FIELDS = {
    "tabs": "layout_tabs",
    "locked": "layout_locked",
    "preview": "preview_enabled",
    "path_bar": "path_bar_enabled",
}


class AdminBlueprintSerializer(serializers.ModelSerializer):
    """The admins' read and write shape. Domain rules are the model's (`full_clean`)."""

    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all())
    env = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    ports = PortSerializer(many=True, required=False)
    resources = ResourcesSerializer(required=False)
    layout = LayoutSerializer(required=False)
    access_rules = AccessRuleSerializer(many=True, required=False)
    ai_providers = AIProviderSerializer(many=True, required=False)

    class Meta:
        model = Blueprint
        fields = [
            "key",
            "name",
            "description",
            "icon",
            "category",
            "state",
            "cluster",
            "image",
            "start_command",
            "setup_script",
            "git_repository",
            "env",
            "ports",
            "resources",
            "network",
            "naming_template",
            "layout",
            "chat_system_prompt",
            "data_sources",
            "opencode_default_model",
            "access_rules",
            "ai_providers",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        # Uniqueness of `key` is checked by the model when the service validates.
        extra_kwargs = {"key": {"validators": []}}

    def validate_key(self, value: str) -> str:
        if self.instance is not None and value != self.instance.key:
            raise serializers.ValidationError("The key of a blueprint cannot be changed.")
        return value

    def validate_access_rules(self, value: list[dict]) -> list[dict]:
        # Under PATCH nested fields turn optional; a rule is still a whole {kind, value}.
        if any(set(item) != {"kind", "value"} for item in value):
            raise serializers.ValidationError("Each access rule needs its kind and value.")
        return value

    def validate_ai_providers(self, value: list[dict]) -> list[dict]:
        if any("provider" not in item for item in value):
            raise serializers.ValidationError("Each AI provider needs its provider.")
        kinds = [item["provider"] for item in value]
        if len(kinds) != len(set(kinds)):
            raise serializers.ValidationError("Each provider may be listed once.")
        return value

    def model_fields(self) -> dict:
        """The validated scalar fields as model attributes (nested lists excluded)."""
        data = dict(self.validated_data)
        data.pop("access_rules", None)
        data.pop("ai_providers", None)
        for name, attr in RESOURCE_FIELDS.items():
            if name in data.get("resources", {}):
                data[attr] = data["resources"][name]
        for name, attr in LAYOUT_FIELDS.items():
            if name in data.get("layout", {}):
                data[attr] = data["layout"][name]
        data.pop("resources", None)
        data.pop("layout", None)
        if "ports" in data:
            data["ports"] = [dict(p) for p in data["ports"]]
        if "layout_tabs" in data:
            data["layout_tabs"] = [dict(t) for t in data["layout_tabs"]]
        return data
