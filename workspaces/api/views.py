"""Workspace endpoints: thin views over `workspaces.selectors`, `workspaces.services` and
`workspaces.files` (the Files tab)."""

from __future__ import annotations

import json

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.selectors import orphaned_emails, user_tags_for
from agent.protocol import FILE_TOO_LARGE, TOO_LARGE
from core.api.permissions import IsAdmin
from core.client_ip import request_client_ip
from core.models import OrganizationSettings
from workspaces import files as workspace_files
from workspaces import links, services
from workspaces.api.serializers import (
    AdminWorkspaceListSerializer,
    AdminWorkspaceSerializer,
    DirectoryListingSerializer,
    FileContentSerializer,
    FileDeleteQuerySerializer,
    FileEntrySerializer,
    FileListQuerySerializer,
    FileQuerySerializer,
    FileRenameSerializer,
    FileVersionSerializer,
    FileWriteSerializer,
    LaunchSerializer,
    LogsSerializer,
    MeSerializer,
    PreviewTicketRequestSerializer,
    RenameSerializer,
    TagsSerializer,
    TicketSerializer,
    WorkspaceListSerializer,
    WorkspaceSerializer,
)
from workspaces.controlplane import ClusterUnavailable, FileRefused
from workspaces.selectors import (
    discover,
    running_workspace_count,
    workspace_any,
    workspaces_for,
)

WORKSPACE_ID = r"[A-Za-z0-9_.-]{1,100}"


def _listing(discovery) -> dict:
    return {
        "results": WorkspaceSerializer(discovery.workspaces, many=True).data,
        "unreachable_clusters": discovery.unreachable,
    }


def _admin_listing(discovery, request: Request) -> dict:
    """Every workspace, filtered by exact ``status``, ``cluster``, ``owner`` and by
    ``orphaned`` (true: only those whose owner is no longer an active member)."""
    workspaces = discovery.workspaces
    for param, attr in (("status", "status"), ("cluster", "cluster"), ("owner", "owner_email")):
        wanted = request.query_params.get(param)
        if wanted:
            workspaces = [w for w in workspaces if getattr(w, attr).lower() == wanted.lower()]
    orphaned = orphaned_emails({w.owner_email for w in workspaces})
    only = request.query_params.get("orphaned", "").lower()
    if only in ("true", "1"):
        workspaces = [w for w in workspaces if w.owner_email.lower() in orphaned]
    elif only in ("false", "0"):
        workspaces = [w for w in workspaces if w.owner_email.lower() not in orphaned]
    serializer = AdminWorkspaceSerializer(workspaces, many=True, context={"orphaned": orphaned})
    return {"results": serializer.data, "unreachable_clusters": discovery.unreachable}


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class FileSaveParser(BaseParser):
    """The JSON body of a save: up to `workspaces.files.MAX_WRITE_REQUEST` bytes, refused
    past them with 413 `file_too_large` before it is parsed (let alone sent on).

    DRF's own JSON parser stops at `DATA_UPLOAD_MAX_MEMORY_SIZE` (2.5 MB), which every
    other endpoint keeps; a 5 MiB file needs more, here only.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = workspace_files.MAX_WRITE_REQUEST
        request = (parser_context or {}).get("request")
        announced = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
        if announced.isdigit() and int(announced) > limit:
            raise FileRefused(FILE_TOO_LARGE, f"The content is {TOO_LARGE}.")
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise FileRefused(FILE_TOO_LARGE, f"The content is {TOO_LARGE}.")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


def _running_workspace_count(user) -> int | None:
    """The member's running workspaces, or None when the data plane cannot tell."""
    try:
        return running_workspace_count(user.email)
    except ClusterUnavailable:
        return None


class MeViewSet(viewsets.ViewSet):
    """The signed-in member: who they are, their tags, how many workspaces run."""

    @extend_schema(responses=MeSerializer)
    def retrieve(self, request):
        user = request.user
        data = {
            "email": user.email,
            "full_name": user.full_name,
            "role": user.role,
            "status": user.status,
            "tags": list(user_tags_for(user).values_list("name", flat=True)),
            "running_workspaces": _running_workspace_count(user),
            "workspace_limit": OrganizationSettings.load().max_running_workspaces_per_user,
        }
        return Response(MeSerializer(data).data)


class _ObjectListSchema(AutoSchema):
    """The listing answers one object (``{"results", "unreachable_clusters"}``), not the
    array drf-spectacular assumes for a ``list`` action."""

    def _is_list_view(self, serializer=None) -> bool:
        return False

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        if getattr(self.view, "action", None) == "list":
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id


class _LifecycleViewSet(viewsets.ViewSet):
    """Detail, delete and lifecycle verbs shared by the builder and admin viewsets.

    Subclasses say how an id resolves to a workspace (`_resolve`): the owner's own
    workspaces only, or any workspace for admins. Everything else is the same services.
    """

    lookup_value_regex = WORKSPACE_ID
    schema = _ObjectListSchema()

    def _operate(self, request: Request, pk: str, operation) -> Response:
        workspace, cluster = self._resolve(request, pk)
        workspace = operation(
            actor=request.user, workspace=workspace, cluster=cluster, ip=request_client_ip(request)
        )
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(responses=WorkspaceSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        workspace, _ = self._resolve(request, pk)
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        workspace, cluster = self._resolve(request, pk)
        services.workspace_delete(
            actor=request.user, workspace=workspace, cluster=cluster, ip=request_client_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=WorkspaceSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        return self._operate(request, pk, services.workspace_start)

    @extend_schema(request=None, responses=WorkspaceSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str) -> Response:
        return self._operate(request, pk, services.workspace_stop)

    @extend_schema(request=None, responses=WorkspaceSerializer)
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str) -> Response:
        return self._operate(request, pk, services.workspace_restart)


class WorkspaceViewSet(_LifecycleViewSet):
    """The member's own workspaces. Someone else's workspace answers 404, and nothing happens."""

    def _resolve(self, request: Request, pk: str):
        return services.own_workspace(request.user, pk, ip=request_client_ip(request))

    @extend_schema(responses=WorkspaceListSerializer)
    def list(self, request: Request) -> Response:
        return Response(_listing(workspaces_for(request.user)))

    @extend_schema(request=LaunchSerializer, responses={201: WorkspaceSerializer})
    def create(self, request: Request) -> Response:
        data = LaunchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = services.workspace_launch(
            actor=request.user,
            blueprint_key=data.validated_data["blueprint"],
            name=data.validated_data["name"],
            exact_name=data.validated_data["exact_name"],
            ip=request_client_ip(request),
        )
        return Response(WorkspaceSerializer(workspace).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RenameSerializer, responses=WorkspaceSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        data = RenameSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace, cluster = self._resolve(request, pk)
        workspace = services.workspace_rename(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            name=data.validated_data["name"],
            ip=request_client_ip(request),
        )
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(
        parameters=[OpenApiParameter("tail", int, description="Lines (1-2000, default 200)")],
        responses=LogsSerializer,
    )
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk: str) -> Response:
        try:
            tail = int(request.query_params.get("tail", 200))
        except ValueError:
            tail = 200
        workspace, cluster = self._resolve(request, pk)
        lines = services.workspace_logs(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            tail=tail,
            ip=request_client_ip(request),
        )
        return Response({"lines": lines})

    @extend_schema(request=TagsSerializer, responses=WorkspaceSerializer)
    @action(detail=True, methods=["put"])
    def tags(self, request: Request, pk: str) -> Response:
        data = TagsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace, cluster = self._resolve(request, pk)
        workspace = services.workspace_set_tags(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            tag_names=data.validated_data["tags"],
            ip=request_client_ip(request),
        )
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(request=None, responses={201: TicketSerializer})
    @action(detail=True, methods=["post"], url_path="shell-ticket")
    def shell_ticket(self, request: Request, pk: str) -> Response:
        workspace, cluster = self._resolve(request, pk)
        ticket, raw = services.workspace_shell_ticket(
            actor=request.user, workspace=workspace, cluster=cluster, ip=request_client_ip(request)
        )
        body = {"ticket": raw, "expires_at": ticket.expires_at, "url": links.terminal_url(raw)}
        return Response(TicketSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PreviewTicketRequestSerializer, responses={201: TicketSerializer})
    @action(detail=True, methods=["post"], url_path="preview-ticket")
    def preview_ticket(self, request: Request, pk: str) -> Response:
        data = PreviewTicketRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        port = data.validated_data["port"]
        workspace, cluster = self._resolve(request, pk)
        ticket, raw = services.workspace_preview_ticket(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            port=port,
            ip=request_client_ip(request),
        )
        url = links.preview_auth_url(workspace.id, port, raw, data.validated_data["path"])
        body = {"ticket": raw, "expires_at": ticket.expires_at, "url": url}
        return Response(TicketSerializer(body).data, status=status.HTTP_201_CREATED)

    # --- the Files tab: the workspace's home, bounded and confined to it -----------------

    @extend_schema(
        summary="List a folder of the workspace's home",
        parameters=[FileListQuerySerializer],
        responses=DirectoryListingSerializer,
    )
    @action(detail=True, methods=["get"], url_path="files")
    def files(self, request: Request, pk: str) -> Response:
        query = _valid(FileListQuerySerializer, request.query_params)
        workspace, cluster = self._resolve(request, pk)
        listing = workspace_files.workspace_files_list(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            path=query["path"],
            ip=request_client_ip(request),
        )
        return Response(DirectoryListingSerializer(listing).data)

    @extend_schema(
        summary="Delete a file or folder",
        parameters=[FileDeleteQuerySerializer],
        responses={204: None},
    )
    @files.mapping.delete
    def file_delete(self, request: Request, pk: str) -> Response:
        query = _valid(FileDeleteQuerySerializer, request.query_params)
        workspace, cluster = self._resolve(request, pk)
        workspace_files.workspace_file_delete(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            path=query["path"],
            recursive=query["recursive"],
            ip=request_client_ip(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Read a file (5 MiB at most)",
        parameters=[FileQuerySerializer],
        responses=FileContentSerializer,
    )
    @action(detail=True, methods=["get"], url_path="files/content", parser_classes=[FileSaveParser])
    def file_content(self, request: Request, pk: str) -> Response:
        query = _valid(FileQuerySerializer, request.query_params)
        workspace, cluster = self._resolve(request, pk)
        content = workspace_files.workspace_file_read(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            path=query["path"],
            ip=request_client_ip(request),
        )
        return Response(FileContentSerializer(content).data)

    @extend_schema(
        summary="Save a file, atomically (5 MiB at most)",
        request=FileWriteSerializer,
        responses=FileVersionSerializer,
    )
    @file_content.mapping.put
    def file_write(self, request: Request, pk: str) -> Response:
        data = _valid(FileWriteSerializer, request.data)
        workspace, cluster = self._resolve(request, pk)
        saved = workspace_files.workspace_file_write(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            path=data["path"],
            content=data["content"],
            base_version=data["base_version"],
            ip=request_client_ip(request),
        )
        return Response(FileVersionSerializer(saved).data)

    @extend_schema(
        summary="Rename or move a file or folder",
        request=FileRenameSerializer,
        responses=FileEntrySerializer,
    )
    @action(detail=True, methods=["post"], url_path="files/rename")
    def file_rename(self, request: Request, pk: str) -> Response:
        data = _valid(FileRenameSerializer, request.data)
        workspace, cluster = self._resolve(request, pk)
        entry = workspace_files.workspace_file_rename(
            actor=request.user,
            workspace=workspace,
            cluster=cluster,
            source=data["from"],
            target=data["to"],
            overwrite=data["overwrite"],
            ip=request_client_ip(request),
        )
        return Response(FileEntrySerializer(entry).data)


class AdminWorkspaceViewSet(_LifecycleViewSet):
    """Every workspace of every cluster, for admins; lifecycle and upgrade actions."""

    permission_classes = [IsAdmin]

    def _resolve(self, request: Request, pk: str):
        return workspace_any(pk)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str),
            OpenApiParameter("cluster", str),
            OpenApiParameter("owner", str),
            OpenApiParameter(
                "orphaned", bool, description="Only (true) or no (false) orphaned workspaces."
            ),
        ],
        responses=AdminWorkspaceListSerializer,
    )
    def list(self, request: Request) -> Response:
        return Response(_admin_listing(discover(), request))

    @extend_schema(request=None, responses=WorkspaceSerializer)
    @action(detail=True, methods=["post"])
    def upgrade(self, request: Request, pk: str) -> Response:
        workspace, cluster = self._resolve(request, pk)
        workspace = services.workspace_upgrade(
            actor=request.user, workspace=workspace, cluster=cluster, ip=request_client_ip(request)
        )
        return Response(WorkspaceSerializer(workspace).data)
