"""What the control plane answers about a workspace's files, and how their refusals map.

The shapes mirror the agent's ``files.*`` RPCs (`agent.files`); file contents pass
through the portal, never stay in it (DESIGN §2). A refusal keeps the agent's code
(`agent.protocol.files`) and message and gets the HTTP status of `FILE_ERROR_STATUS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.protocol import files as f
from core.errors import ApplicationError

FILE_ERROR_STATUS: dict[str, int] = {
    f.PATH_INVALID: 400,
    f.PATH_OUTSIDE_HOME: 403,
    f.FILE_NOT_FOUND: 404,
    f.FILE_TOO_LARGE: 413,
    f.FILE_CONFLICT: 409,
    f.FILE_EXISTS: 409,
    f.IS_A_DIRECTORY: 400,
    f.NOT_A_DIRECTORY: 400,
    f.NOT_A_FILE: 400,
    f.DIRECTORY_NOT_EMPTY: 409,
    f.ACCESS_DENIED: 403,
    f.DISK_FULL: 507,
}
"""The HTTP status of every code of `agent.protocol.FILE_ERRORS`."""


class FileRefused(ApplicationError):
    """A file operation was refused: a code of `agent.protocol.files` and its message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code, status=FILE_ERROR_STATUS[code])


@dataclass(frozen=True)
class FileEntry:
    """One entry of a directory: ``type`` is one of `agent.protocol.ENTRY_TYPES`; ``size``
    is set for files only; ``target`` for a link whose target is inside the home."""

    name: str
    path: str
    type: str
    size: int | None
    modified: str | None
    target: str | None = None

    @classmethod
    def from_agent(cls, data: dict[str, Any]) -> FileEntry:
        return cls(
            name=str(data["name"]),
            path=str(data["path"]),
            type=str(data["type"]),
            size=data.get("size"),
            modified=data.get("modified"),
            target=data.get("target"),
        )


@dataclass(frozen=True)
class DirectoryListing:
    """A directory's entries, folders first then by name; ``truncated`` past the bound."""

    path: str
    entries: list[FileEntry]
    truncated: bool

    @classmethod
    def from_agent(cls, data: dict[str, Any]) -> DirectoryListing:
        return cls(
            path=str(data["path"]),
            entries=[FileEntry.from_agent(e) for e in data.get("entries") or []],
            truncated=bool(data.get("truncated")),
        )


@dataclass(frozen=True)
class FileVersion:
    """A file as a write left it: ``version`` is what the next write's ``base_version``
    must be for it to succeed."""

    path: str
    size: int
    modified: str | None
    version: str

    @classmethod
    def from_agent(cls, data: dict[str, Any]) -> FileVersion:
        return cls(
            path=str(data["path"]),
            size=int(data["size"]),
            modified=data.get("modified"),
            version=str(data["version"]),
        )


@dataclass(frozen=True)
class FileContent:
    """A file as read: its text ``content``, or ``binary`` and no content."""

    path: str
    size: int
    modified: str | None
    version: str
    binary: bool
    content: str | None

    @classmethod
    def from_agent(cls, data: dict[str, Any]) -> FileContent:
        binary = bool(data.get("binary"))
        return cls(
            path=str(data["path"]),
            size=int(data["size"]),
            modified=data.get("modified"),
            version=str(data["version"]),
            binary=binary,
            content=None if binary else str(data.get("content") or ""),
        )
