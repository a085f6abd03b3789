"""Members' own profile, tags and tokens; the admins' member and tag directory."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.api.serializers import (
    AdminTagSerializer,
    ApiTokenIssuedSerializer,
    ApiTokenIssueSerializer,
    ApiTokenSerializer,
    BuilderSecretSerializer,
    BuilderSecretWriteSerializer,
    InvitationRequestSerializer,
    InvitationSerializer,
    MemberInvitedSerializer,
    MemberInviteSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    ProfileSerializer,
    UserTagSerializer,
)
from accounts.models import ApiToken, UserTag
from core.api.permissions import IsAdmin
from core.client_ip import request_client_ip
from core.errors import ApplicationError


class MyTagViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The member's own tags; anybody else's tag is not found."""

    serializer_class = UserTagSerializer
    queryset = UserTag.objects.none()

    def get_queryset(self):
        return selectors.user_tags_for(self.request.user)

    def perform_create(self, serializer):
        serializer.instance = services.user_tag_create(
            user=self.request.user,
            name=serializer.validated_data["name"],
            color=serializer.validated_data.get("color", ""),
        )

    def perform_destroy(self, instance):
        services.user_tag_delete(tag=instance)


class MyTokenViewSet(
    mixins.ListModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The member's personal API tokens: issue (value shown once), list, revoke."""

    serializer_class = ApiTokenSerializer
    queryset = ApiToken.objects.none()

    def get_queryset(self):
        return selectors.api_tokens_for(self.request.user)

    @extend_schema(request=ApiTokenIssueSerializer, responses={201: ApiTokenIssuedSerializer})
    def create(self, request):
        params = ApiTokenIssueSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        token, raw = services.api_token_issue(
            user=request.user,
            name=params.validated_data["name"],
            days=params.validated_data.get("days"),
            actor=request.user,
        )
        token.token = raw
        return Response(ApiTokenIssuedSerializer(token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.api_token_revoke(token=instance, actor=self.request.user)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("role", str, enum=["admin", "user"]),
            OpenApiParameter("status", str, enum=["active", "pending"]),
            OpenApiParameter("q", str, description="Text in the e-mail or name."),
        ]
    )
)
class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Admins: the member directory; invite, change role, suspend. Never delete."""

    permission_classes = [IsAdmin]
    serializer_class = MemberSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        params = self.request.query_params
        return selectors.member_search(
            role=params.get("role"), status=params.get("status"), q=params.get("q")
        )

    @extend_schema(request=MemberInviteSerializer, responses={201: MemberInvitedSerializer})
    def create(self, request):
        """Invite: the member is created pending and e-mailed a one-time link."""
        params = MemberInviteSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        member = services.member_invite(**params.validated_data, actor=request.user)
        return Response(MemberInvitedSerializer(member).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=InvitationRequestSerializer, responses={201: InvitationSerializer})
    @action(detail=True, methods=["post"])
    def invitation(self, request, pk=None):
        """A new one-time link for a pending member (earlier links stop working): e-mailed,
        or returned once as ``url`` with ``send: false``. 409 ``member_not_pending``."""
        member = self.get_object()
        params = InvitationRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        send = params.validated_data["send"]
        invitation, url, emailed = services.invitation_issue(
            user=member, actor=request.user, send=send
        )
        body = {"expires_at": invitation.expires_at, "emailed": emailed}
        if not send:
            body["url"] = url
        return Response(InvitationSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberUpdateSerializer, responses=MemberSerializer)
    def partial_update(self, request, pk=None):
        member = self.get_object()
        params = MemberUpdateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        member = services.member_update(user=member, actor=request.user, **params.validated_data)
        return Response(MemberSerializer(member).data)


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("user", str, description="Owner's e-mail.")])
)
class AdminTagViewSet(viewsets.ReadOnlyModelViewSet):
    """Admins: every member's tags (read-only)."""

    permission_classes = [IsAdmin]
    serializer_class = AdminTagSerializer

    def get_queryset(self):
        return selectors.user_tag_search(owner_email=self.request.query_params.get("user"))


class MyProfileView(APIView):
    """The member's builder profile (experience, language, role, time zone)."""

    @extend_schema(responses=ProfileSerializer)
    def get(self, request):
        return Response(ProfileSerializer(request.user).data)

    @extend_schema(request=ProfileSerializer, responses=ProfileSerializer)
    def patch(self, request):
        params = ProfileSerializer(data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        try:
            user = services.profile_update(
                user=request.user,
                changes=dict(params.validated_data),
                ip=request_client_ip(request),
            )
        except DjangoValidationError as exc:
            raise ApplicationError(
                "Invalid input.", code="invalid", extra={"errors": exc.message_dict}
            ) from exc
        return Response(ProfileSerializer(user).data)


SECRET_NAME = OpenApiParameter("name", str, OpenApiParameter.PATH, description="e.g. GIT_TOKEN")


class MySecretListView(APIView):
    """The member's personal secrets: names and dates only (values are write-only)."""

    @extend_schema(responses=BuilderSecretSerializer(many=True))
    def get(self, request):
        secrets = selectors.builder_secrets_for(request.user)
        return Response(BuilderSecretSerializer(secrets, many=True).data)


class MySecretView(APIView):
    """Set (PUT, create or replace) or clear (DELETE) one personal secret."""

    @extend_schema(
        parameters=[SECRET_NAME],
        request=BuilderSecretWriteSerializer,
        responses=BuilderSecretSerializer,
    )
    def put(self, request, name: str):
        params = BuilderSecretWriteSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        secret = services.builder_secret_set(
            user=request.user,
            name=name,
            value=params.validated_data["value"],
            ip=request_client_ip(request),
        )
        return Response(BuilderSecretSerializer(secret).data)

    @extend_schema(parameters=[SECRET_NAME], responses={204: None})
    def delete(self, request, name: str):
        if not services.builder_secret_clear(
            user=request.user, name=name, ip=request_client_ip(request)
        ):
            raise ApplicationError("You have no secret of that name.", code="not_found", status=404)
        return Response(status=status.HTTP_204_NO_CONTENT)
