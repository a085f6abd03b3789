"""Shapes of members, tags and API tokens. Token values appear only in the issue response."""

from __future__ import annotations

from rest_framework import serializers

from accounts.choices import ExperienceLevel, Role
from accounts.models import MAX_SECRET_VALUE, ApiToken, BuilderSecret, User, UserTag
from core.validators import hex_colour


class UserTagSerializer(serializers.ModelSerializer):
    # Normalised (lowercased) and validated by the model when the service saves it.
    name = serializers.CharField(max_length=40)
    color = serializers.CharField(
        max_length=7, required=False, allow_blank=True, validators=[hex_colour]
    )

    class Meta:
        model = UserTag
        fields = ["id", "name", "color", "created_at"]
        read_only_fields = ["id", "created_at"]
        # Uniqueness per member is the model's rule, checked when the service validates.
        validators: list = []


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class ApiTokenIssueSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    days = serializers.IntegerField(
        min_value=1, required=False, help_text="At most the organisation's API_TOKEN_MAX_DAYS."
    )


class ApiTokenIssuedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class MemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "full_name",
            "role",
            "status",
            "is_active",
            "invited_at",
            "date_joined",
        ]
        read_only_fields = fields


class MemberInviteSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.USER)


class MemberInvitedSerializer(MemberSerializer):
    invitation_emailed = serializers.BooleanField(
        read_only=True, help_text="False: the e-mail could not be sent; get a link instead."
    )

    class Meta(MemberSerializer.Meta):
        fields = [*MemberSerializer.Meta.fields, "invitation_emailed"]
        read_only_fields = fields


class InvitationRequestSerializer(serializers.Serializer):
    send = serializers.BooleanField(
        default=True,
        help_text="true: e-mail a new link; false: return a new link (url) to pass on.",
    )


class InvitationSerializer(serializers.Serializer):
    expires_at = serializers.DateTimeField()
    emailed = serializers.BooleanField()
    url = serializers.CharField(
        required=False, help_text="Only with send=false: the one-time link, shown once."
    )


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)
    full_name = serializers.CharField(max_length=150, required=False, allow_blank=True)


class AdminTagSerializer(serializers.ModelSerializer):
    user = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = UserTag
        fields = ["id", "name", "color", "user", "created_at"]
        read_only_fields = fields


class ProfileSerializer(serializers.ModelSerializer):
    """The builder profile the AI tools of the member's workspaces receive."""

    experience_level = serializers.ChoiceField(choices=ExperienceLevel.choices, required=False)
    preferred_language = serializers.CharField(max_length=40, required=False, allow_blank=True)
    role_title = serializers.CharField(max_length=80, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)

    class Meta:
        model = User
        fields = ["experience_level", "preferred_language", "role_title", "timezone"]


class BuilderSecretSerializer(serializers.ModelSerializer):
    """A personal secret as it is ever shown: its name and dates, never its value."""

    class Meta:
        model = BuilderSecret
        fields = ["name", "created_at", "updated_at"]
        read_only_fields = fields


class BuilderSecretWriteSerializer(serializers.Serializer):
    value = serializers.CharField(
        write_only=True,
        trim_whitespace=False,
        max_length=MAX_SECRET_VALUE,
        help_text="Write-only: never returned.",
    )
