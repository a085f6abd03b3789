"""The Files capability's vocabulary: its limits, its error codes, what a valid path is.

A path names something inside a workspace's home (``/home/builder`` in its sandbox):
components separated by ``/``, relative to the home; ``""`` (or ``.``) is the home
itself. The agent enforces every rule here (`agent.files`); the portal checks paths
with the same `split_path` before asking, and maps each code of `FILE_ERRORS` to an
HTTP status.
"""

from __future__ import annotations

from typing import Final

from agent.protocol.core import RpcError

MAX_FILE_BYTES: Final = 5 * 1024 * 1024
"""Largest file the Files capability reads or writes, in bytes."""
MAX_LIST_ENTRIES: Final = 5000
"""Most entries a directory listing returns (it says ``truncated`` beyond)."""
MAX_PATH_BYTES: Final = 4096
"""Longest path, UTF-8 encoded (Linux's PATH_MAX)."""
MAX_NAME_BYTES: Final = 255
"""Longest component of a path, UTF-8 encoded (Linux's NAME_MAX)."""
TOO_LARGE: Final = f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, the limit of the Files tab"
"""How a `FILE_TOO_LARGE` message names the limit."""

ENTRY_FILE: Final = "file"
ENTRY_DIR: Final = "dir"
ENTRY_SYMLINK: Final = "symlink"
ENTRY_OTHER: Final = "other"
"""A FIFO, socket or device: listed, never opened."""
ENTRY_TYPES: Final = (ENTRY_FILE, ENTRY_DIR, ENTRY_SYMLINK, ENTRY_OTHER)

PATH_INVALID: Final = "path_invalid"
"""Absolute, with a ``..`` or NUL, too long, not UTF-8, or names the home where it may not."""
PATH_OUTSIDE_HOME: Final = "path_outside_home"
"""A symbolic link on the way leads out of the home."""
FILE_NOT_FOUND: Final = "file_not_found"
FILE_TOO_LARGE: Final = "file_too_large"
FILE_CONFLICT: Final = "file_conflict"
"""A write's ``base_version`` is no longer the file's version."""
ABSENT: Final = ""
"""The ``base_version`` of a file that must not exist yet: a write creating a new file."""
FILE_EXISTS: Final = "file_exists"
IS_A_DIRECTORY: Final = "is_a_directory"
NOT_A_DIRECTORY: Final = "not_a_directory"
NOT_A_FILE: Final = "not_a_file"
"""A FIFO, socket or device."""
DIRECTORY_NOT_EMPTY: Final = "directory_not_empty"
ACCESS_DENIED: Final = "access_denied"
"""The host refused (permissions, a read-only or busy file)."""
DISK_FULL: Final = "disk_full"

FILE_ERRORS: Final = frozenset(
    {
        PATH_INVALID,
        PATH_OUTSIDE_HOME,
        FILE_NOT_FOUND,
        FILE_TOO_LARGE,
        FILE_CONFLICT,
        FILE_EXISTS,
        IS_A_DIRECTORY,
        NOT_A_DIRECTORY,
        NOT_A_FILE,
        DIRECTORY_NOT_EMPTY,
        ACCESS_DENIED,
        DISK_FULL,
    }
)
"""Every code a ``files.*`` RPC may fail with besides the runtime's own (``not_found`` for
an unknown environment, ``conflict`` while it is being deleted, ``invalid_params``)."""


def split_path(path: object) -> list[str]:
    """The components of a valid path (``[]`` for the home); RpcError `PATH_INVALID` else.

    Empty and ``.`` components are dropped; absolute paths, ``..``, NUL bytes, text that
    is not UTF-8 and paths or names past Linux's limits are refused.
    """
    if not isinstance(path, str):
        raise RpcError(PATH_INVALID, "A path is a string.")
    if "\0" in path:
        raise RpcError(PATH_INVALID, "A path cannot contain a NUL byte.")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise RpcError(PATH_INVALID, "A path must be valid UTF-8.") from None
    if size > MAX_PATH_BYTES:
        raise RpcError(PATH_INVALID, f"A path is at most {MAX_PATH_BYTES} bytes long.")
    if path.startswith("/"):
        raise RpcError(PATH_INVALID, "A path is relative to the workspace's home, not absolute.")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise RpcError(PATH_INVALID, "A path cannot contain '..'.")
    if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in parts):
        raise RpcError(PATH_INVALID, f"A file name is at most {MAX_NAME_BYTES} bytes long.")
    return parts


def join_path(parts: list[str]) -> str:
    """The path of ``parts`` as the API shows it (``""`` for the home)."""
    return "/".join(parts)


__all__ = [
    "ACCESS_DENIED",
    "DIRECTORY_NOT_EMPTY",
    "DISK_FULL",
    "ENTRY_DIR",
    "ENTRY_FILE",
    "ENTRY_OTHER",
    "ENTRY_SYMLINK",
    "ENTRY_TYPES",
    "FILE_CONFLICT",
    "FILE_ERRORS",
    "FILE_EXISTS",
    "FILE_NOT_FOUND",
    "FILE_TOO_LARGE",
    "IS_A_DIRECTORY",
    "MAX_FILE_BYTES",
    "MAX_LIST_ENTRIES",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "NOT_A_DIRECTORY",
    "NOT_A_FILE",
    "PATH_INVALID",
    "PATH_OUTSIDE_HOME",
    "TOO_LARGE",
    "join_path",
    "split_path",
]
