"""The Files tab's operations on a workspace's home: list, read, write, rename, delete.

Callers resolve the workspace for the member first (their own; anyone else's is 404 and
nothing happens). Paths are relative to the home and checked here by the agent's own
rule (`agent.protocol.split_path`, code ``path_invalid``) before the cluster is asked;
contents pass through the portal and are never stored (DESIGN §2).

Writes, renames and deletes are audited with their paths, never their contents; a
refusal because a path leads out of the home (``path_outside_home``) is audited as
denied. Reads are not audited. Failures: `FileRefused` (the codes of
`agent.protocol.files` with their HTTP statuses), 409 ``workspace_conflict`` (the
workspace is being deleted, or its files are not cloned yet), 404 ``not_found``, 503
``cluster_unavailable``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from accounts.models import User
from agent.protocol import (
    FILE_TOO_LARGE,
    MAX_FILE_BYTES,
    PATH_OUTSIDE_HOME,
    TOO_LARGE,
    RpcError,
    join_path,
    split_path,
)
from audit.choices import AuditOutcome
from audit.services import audit_record
from clusters.models import Cluster
from core.errors import ApplicationError
from workspaces.controlplane import (
    DirectoryListing,
    FileContent,
    FileEntry,
    FileRefused,
    FileVersion,
    get_control_plane,
)
from workspaces.selectors import Workspace

MAX_WRITE_REQUEST = 2 * MAX_FILE_BYTES + 64 * 1024
"""Largest request body of a save, in bytes: a 5 MiB file's content JSON-escaped (quotes,
control characters, ``\\u`` escapes from clients that send ASCII only) and the rest."""


def _checked(path: str) -> str:
    """The path as the API shows it; `FileRefused` ``path_invalid`` when it is not one."""
    try:
        return join_path(split_path(path))
    except RpcError as exc:
        raise FileRefused(exc.code, exc.message) from None


@contextmanager
def _audited(
    action: str, *, actor: User, workspace: Workspace, ip: str | None, **details: object
) -> Iterator[None]:
    """Audit the change made in the block; a refusal for leaving the home as denied."""
    try:
        yield
    except FileRefused as exc:
        if exc.code == PATH_OUTSIDE_HOME:
            _record(action, actor, workspace, ip, AuditOutcome.DENIED, reason=exc.code, **details)
        raise
    _record(action, actor, workspace, ip, AuditOutcome.SUCCESS, **details)


def _record(action: str, actor, workspace: Workspace, ip, outcome, **details: object) -> None:
    audit_record(
        action=action,
        actor=actor,
        target_type="workspace",
        target_id=workspace.id,
        ip=ip,
        outcome=outcome,
        details=details,
    )


def workspace_files_list(
    *, actor: User, workspace: Workspace, cluster: Cluster, path: str = "", ip: str | None = None
) -> DirectoryListing:
    """A directory of the workspace's home (``""``: the home), folders first then by name,
    at most `agent.protocol.MAX_LIST_ENTRIES` entries (``truncated`` beyond). Not audited."""
    return get_control_plane().files_list(cluster, workspace.id, path=_checked(path))


def workspace_file_read(
    *, actor: User, workspace: Workspace, cluster: Cluster, path: str, ip: str | None = None
) -> FileContent:
    """A file's text and ``version``, or ``binary`` without content; 413 ``file_too_large``
    past 5 MiB. Not audited."""
    return get_control_plane().file_read(cluster, workspace.id, path=_checked(path))


def workspace_file_write(
    *,
    actor: User,
    workspace: Workspace,
    cluster: Cluster,
    path: str,
    content: str,
    base_version: str | None = None,
    ip: str | None = None,
) -> FileVersion:
    """Save a file (created with its missing folders if need be), atomically.

    With ``base_version`` (the version a read answered) the save is refused with 409
    ``file_conflict`` if the file changed since; without, it overwrites. Content over
    5 MiB (UTF-8) is refused with 413 ``file_too_large`` before the cluster is asked.
    Audited as ``workspace.file_write`` with the path.
    """
    path = _checked(path)
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError:
        raise ApplicationError(
            "Invalid input.",
            code="invalid",
            extra={"errors": {"content": ["The content is not valid Unicode text."]}},
        ) from None
    if size > MAX_FILE_BYTES:
        raise FileRefused(FILE_TOO_LARGE, f"The content is {TOO_LARGE}.")
    with _audited("workspace.file_write", actor=actor, workspace=workspace, ip=ip, path=path):
        return get_control_plane().file_write(
            cluster, workspace.id, path=path, content=content, base_version=base_version
        )


def workspace_file_rename(
    *,
    actor: User,
    workspace: Workspace,
    cluster: Cluster,
    source: str,
    target: str,
    overwrite: bool = False,
    ip: str | None = None,
) -> FileEntry:
    """Rename or move a file or folder within the home (a link itself, not its target).

    An existing ``target`` is refused with 409 ``file_exists`` unless ``overwrite``.
    Audited as ``workspace.file_rename`` with both paths.
    """
    source, target = _checked(source), _checked(target)
    details = {"from": source, "to": target, "overwrite": overwrite}
    with _audited("workspace.file_rename", actor=actor, workspace=workspace, ip=ip, **details):
        return get_control_plane().file_rename(
            cluster, workspace.id, source=source, target=target, overwrite=overwrite
        )


def workspace_file_delete(
    *,
    actor: User,
    workspace: Workspace,
    cluster: Cluster,
    path: str,
    recursive: bool = False,
    ip: str | None = None,
) -> None:
    """Delete a file, a link or an empty folder; a folder with content only ``recursive``
    (else 409 ``directory_not_empty``); never the home itself (400 ``path_invalid``).
    Audited as ``workspace.file_delete`` with the path."""
    path = _checked(path)
    details = {"path": path, "recursive": recursive}
    with _audited("workspace.file_delete", actor=actor, workspace=workspace, ip=ip, **details):
        get_control_plane().file_delete(cluster, workspace.id, path=path, recursive=recursive)
