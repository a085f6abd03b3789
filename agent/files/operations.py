"""The file operations on a workspace's home (blocking: `agent.files.FileService` runs
them in a thread). Their guarantees are the package's (`agent.files`)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from agent.files.home import READ_FLAGS, Home, os_errors, refuse
from agent.protocol import files as f
from agent.runtimes.base import INVALID_PARAMS, RuntimeFailure, WorkspaceHome

MAX_FILE_BYTES: Final = f.MAX_FILE_BYTES
MAX_LIST_ENTRIES: Final = f.MAX_LIST_ENTRIES
FILE_MODE: Final = 0o644
"""Mode of a file a write creates."""

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE: Final = 1


def _modified(st: os.stat_result) -> str:
    return datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="milliseconds")


def _version(data: bytes) -> str:
    return f"sha256-{hashlib.sha256(data).hexdigest()}"


def _entry_type(mode: int) -> str:
    if stat.S_ISREG(mode):
        return f.ENTRY_FILE
    if stat.S_ISDIR(mode):
        return f.ENTRY_DIR
    if stat.S_ISLNK(mode):
        return f.ENTRY_SYMLINK
    return f.ENTRY_OTHER


def _read_bounded(fd: int, path: str) -> bytes:
    if os.fstat(fd).st_size > MAX_FILE_BYTES:
        raise refuse(f.FILE_TOO_LARGE, path)
    chunks, size = [], 0
    while chunk := os.read(fd, min(1024 * 1024, MAX_FILE_BYTES + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_FILE_BYTES:  # it grew since
            raise refuse(f.FILE_TOO_LARGE, path)
    return b"".join(chunks)


def _entry(home: Home, dir_fd: int, parts: list[str], name: str, st: os.stat_result) -> dict:
    kind = _entry_type(st.st_mode)
    target = None
    if kind == f.ENTRY_SYMLINK:
        with contextlib.suppress(OSError):
            target = home.shown_target(parts, os.readlink(name, dir_fd=dir_fd))
    return {
        "name": name,
        "path": f.join_path([*parts, name]),
        "type": kind,
        "size": st.st_size if kind == f.ENTRY_FILE else None,
        "modified": _modified(st),
        "target": target,
    }


def _printable(name: str) -> bool:
    """A name the API can carry (names that are not UTF-8 decode to surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- the operations (blocking: run them in a thread) ----------------------------------------


def list_dir(home: WorkspaceHome, path: str) -> dict[str, Any]:
    """The entries of a directory: folders first, then by name (at most MAX_LIST_ENTRIES,
    in directory order, then sorted; ``truncated`` says whether there were more)."""
    parts = f.split_path(path)
    shown = f.join_path(parts)
    entries: list[dict] = []
    truncated = False
    with Home(home) as h, os_errors(shown):
        fd = h.open_dir(parts, shown)
        try:
            with os.scandir(fd) as found:
                for item in found:
                    if len(entries) >= MAX_LIST_ENTRIES:
                        truncated = True
                        break
                    if not _printable(item.name):
                        continue
                    try:
                        st = item.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # removed while we listed
                    entries.append(_entry(h, fd, parts, item.name, st))
        finally:
            os.close(fd)
    entries.sort(key=lambda e: (e["type"] != f.ENTRY_DIR, e["name"].casefold(), e["name"]))
    return {"path": shown, "entries": entries, "truncated": truncated}


def read_file(home: WorkspaceHome, path: str) -> dict[str, Any]:
    """A text file's content, or ``binary: true`` (NUL bytes, not UTF-8) without it."""
    parts = f.split_path(path)
    shown = f.join_path(parts)
    if not parts:
        raise refuse(f.IS_A_DIRECTORY, shown, "The home is a folder.")
    with Home(home) as h, os_errors(shown):
        fd = h.open_file(parts, shown)
        try:
            st = os.fstat(fd)
            data = _read_bounded(fd, shown)
        finally:
            os.close(fd)
    text: str | None = None
    if b"\0" not in data:
        with contextlib.suppress(UnicodeDecodeError):
            text = data.decode("utf-8")
    return {
        "path": shown,
        "size": len(data),
        "modified": _modified(st),
        "version": _version(data),
        "binary": text is None,
        "content": text,
    }


def write_file(
    home: WorkspaceHome, path: str, content: bytes, base_version: str | None = None
) -> dict[str, Any]:
    """Replace (or create) a file with UTF-8 ``content``, atomically; missing folders on
    the way are created. With ``base_version``, only if the file still has that version;
    with `ABSENT` (the empty version), only if there is no file yet (``file_exists``)."""
    parts = f.split_path(path)
    shown = f.join_path(parts)
    if not parts:
        raise refuse(f.IS_A_DIRECTORY, shown, "The home is a folder.")
    if len(content) > MAX_FILE_BYTES:
        raise refuse(f.FILE_TOO_LARGE, shown, f"The content is {f.TOO_LARGE}.")
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        raise RuntimeFailure(INVALID_PARAMS, "the content must be UTF-8 text") from None
    with Home(home) as h, home.lock, os_errors(shown):
        fd, name = h.locate(parts, shown, follow_last=True, make_dirs=True)
        try:
            if name is None:
                raise refuse(f.IS_A_DIRECTORY, shown)
            current = _existing(fd, name, shown)
            if base_version == f.ABSENT:
                if current is not None:
                    raise refuse(f.FILE_EXISTS, shown)
            elif base_version is not None and _version_at(fd, name, current) != base_version:
                raise refuse(f.FILE_CONFLICT, shown)
            _replace(h, fd, name, content, current)
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)
    return {
        "path": shown,
        "size": st.st_size,
        "modified": _modified(st),
        "version": _version(content),
    }


def _existing(dir_fd: int, name: str, path: str) -> os.stat_result | None:
    """What a write would replace: a regular file, nothing (None), or a refusal."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        raise refuse(f.IS_A_DIRECTORY, path)
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        raise refuse(f.NOT_A_FILE, path)
    return st if stat.S_ISREG(st.st_mode) else None  # a link swapped in is replaced


def _version_at(dir_fd: int, name: str, current: os.stat_result | None) -> str | None:
    if current is None or current.st_size > MAX_FILE_BYTES:
        return None  # no version anyone can have read
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return _version(_read_bounded(fd, name))
    except RuntimeFailure:
        return None
    finally:
        os.close(fd)


def _replace(
    home: Home, dir_fd: int, name: str, content: bytes, current: os.stat_result | None
) -> None:
    """Write a temporary file next to ``name``, sync it, rename it over ``name``."""
    if current is not None:
        mode, uid, gid = stat.S_IMODE(current.st_mode) & 0o777, current.st_uid, current.st_gid
    else:
        mode, uid, gid = FILE_MODE, home.home.uid, home.home.gid
    temporary = f".enclave-{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, _CREATE, 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            if home.home.uid is not None and uid is not None:
                os.fchown(fd, uid, gid if gid is not None else -1)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)  # the rename itself survives a crash


def rename(home: WorkspaceHome, source: str, target: str, overwrite: bool = False) -> dict:
    """Rename or move ``source`` to ``target`` (a link is moved, not its target); an
    existing ``target`` is replaced only with ``overwrite``. Answers the new entry."""
    src_parts, dst_parts = f.split_path(source), f.split_path(target)
    src, dst = f.join_path(src_parts), f.join_path(dst_parts)
    if not src_parts or not dst_parts:
        raise refuse(f.PATH_INVALID, "", "The home itself cannot be renamed or replaced.")
    with Home(home) as h, home.lock:
        with os_errors(src):
            src_fd, src_name = h.locate_entry(src_parts, src)
        try:
            with os_errors(dst):
                dst_fd, dst_name = h.locate_entry(dst_parts, dst)
            try:
                with os_errors(src):
                    os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
                with os_errors(dst):
                    if overwrite:
                        os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                    else:
                        _rename_noreplace(src_fd, src_name, dst_fd, dst_name)
                    st = os.stat(dst_name, dir_fd=dst_fd, follow_symlinks=False)
                    return _entry(h, dst_fd, dst_parts[:-1], dst_name, st)
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)


def _renameat2() -> Callable[..., int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    return function


_RENAMEAT2 = _renameat2()


def _rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """Rename unless ``dst`` exists — in one system call where the kernel can (so a file
    created meanwhile inside the workspace is never overwritten)."""
    if _RENAMEAT2 is not None:
        done = _RENAMEAT2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), _RENAME_NOREPLACE)
        if done == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: not on this filesystem
            raise OSError(code, os.strerror(code))
    try:
        os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    raise FileExistsError(errno.EEXIST, "exists")


def delete(home: WorkspaceHome, path: str, recursive: bool = False) -> dict[str, Any]:
    """Delete a file, a link (not its target) or an empty folder; a folder with content
    only with ``recursive`` (removed without following any link). Never the home."""
    parts = f.split_path(path)
    shown = f.join_path(parts)
    if not parts:
        raise refuse(f.PATH_INVALID, shown, "The home itself cannot be deleted.")
    with Home(home) as h, home.lock, os_errors(shown):
        fd, name = h.locate_entry(parts, shown)
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)
            elif not recursive:
                try:
                    os.rmdir(name, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    raise refuse(f.DIRECTORY_NOT_EMPTY, shown) from None
            else:
                shutil.rmtree(name, dir_fd=fd)  # descriptor-relative, never follows links
        finally:
            os.close(fd)
    return {"path": shown, "deleted": True}
