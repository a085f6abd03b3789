"""Walking a workspace's home: confined, descriptor by descriptor, links followed by hand.

`Home` holds a descriptor of the home and reaches every path from it, one component at
a time (``os.open`` with ``dir_fd`` and ``O_NOFOLLOW``), so the kernel never follows a
symbolic link for us and a link swapped in mid-walk is seen, not followed. A link is
followed only while it stays in the home (see `agent.files`). Refusals are a
`RuntimeFailure` with a code of `agent.protocol.files`.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import Final

from agent.protocol import files as f
from agent.runtimes.base import CONFLICT, RuntimeFailure, WorkspaceHome

MAX_LINKS: Final = 40
"""Symbolic links one path may pass through (Linux's own limit)."""
DIR_MODE: Final = 0o755
"""Mode of the directories a write creates."""
DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""Opening a file to read it: never through a link, and a FIFO never blocks."""

_ERRNO_CODES = {
    errno.ENOENT: f.FILE_NOT_FOUND,
    errno.ENOTDIR: f.NOT_A_DIRECTORY,
    errno.EISDIR: f.IS_A_DIRECTORY,
    errno.EEXIST: f.FILE_EXISTS,
    errno.ENOTEMPTY: f.DIRECTORY_NOT_EMPTY,
    errno.EACCES: f.ACCESS_DENIED,
    errno.EPERM: f.ACCESS_DENIED,
    errno.EROFS: f.ACCESS_DENIED,
    errno.EBUSY: f.ACCESS_DENIED,
    errno.ETXTBSY: f.ACCESS_DENIED,
    errno.ENAMETOOLONG: f.PATH_INVALID,
    errno.ELOOP: f.PATH_INVALID,
    errno.EINVAL: f.PATH_INVALID,
    errno.ENOSPC: f.DISK_FULL,
    errno.EDQUOT: f.DISK_FULL,
}
_MESSAGES = {
    f.FILE_NOT_FOUND: "No such file or folder: {path!r}.",
    f.NOT_A_DIRECTORY: "{path!r} is not a folder, or a part of it is not.",
    f.IS_A_DIRECTORY: "{path!r} is a folder.",
    f.FILE_EXISTS: "{path!r} already exists.",
    f.DIRECTORY_NOT_EMPTY: "The folder {path!r} is not empty.",
    f.ACCESS_DENIED: "The workspace does not allow this on {path!r}.",
    f.PATH_INVALID: "{path!r} cannot be used here (a folder into itself, or a name too long).",
    f.DISK_FULL: "The workspace's disk is full.",
    f.NOT_A_FILE: "{path!r} is not a regular file (a pipe, socket or device).",
    f.FILE_TOO_LARGE: "{path!r} is " + f.TOO_LARGE + ".",
    f.FILE_CONFLICT: "{path!r} changed since it was opened; reload it.",
    f.PATH_OUTSIDE_HOME: "{path!r} leads out of the workspace's home.",
}


def refuse(code: str, path: str, message: str | None = None) -> RuntimeFailure:
    """The refusal ``code`` about ``path`` (``{path!r}`` in ``message`` names it)."""
    text = message if message is not None else _MESSAGES[code]
    return RuntimeFailure(code, text.format(path=path[:300]))


@contextlib.contextmanager
def os_errors(path: str) -> Iterator[None]:
    """Turn an OS error into the refusal it means (never its text: it names host paths)."""
    try:
        yield
    except OSError as exc:
        code = _ERRNO_CODES.get(exc.errno or 0)
        if code is None:
            raise
        raise refuse(code, path) from None


def outside(path: str) -> RuntimeFailure:
    return refuse(f.PATH_OUTSIDE_HOME, path)


class Home:
    """An open home: a descriptor of its directory and the identity of that directory."""

    def __init__(self, home: WorkspaceHome) -> None:
        self.home = home
        try:
            self.fd = os.open(home.root, DIR_FLAGS)
        except FileNotFoundError:
            raise RuntimeFailure(CONFLICT, "the workspace's files are not ready yet") from None
        st = os.fstat(self.fd)
        self.identity = (st.st_dev, st.st_ino)

    def __enter__(self) -> Home:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def link_parts(self, target: str) -> tuple[bool, list[str]] | None:
        """A link's target as (absolute, components), or None when it leaves the home."""
        if target.startswith("/"):
            mount = self.home.mount.rstrip("/")
            if target != mount and not target.startswith(mount + "/"):
                return None
            return True, [p for p in target[len(mount) :].split("/") if p not in ("", ".")]
        return False, [p for p in target.split("/") if p not in ("", ".")]

    def parent(self, fd: int, path: str) -> int:
        """The directory above ``fd`` (``fd`` is closed); the home has none we may enter."""
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == self.identity:
            raise outside(path)
        above = os.open("..", DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        return above

    def prepare_dir(self, fd: int) -> None:
        """A directory we just created: the workspace's, 0755 whatever our umask."""
        if self.home.uid is not None:
            os.fchown(fd, self.home.uid, self.home.gid if self.home.gid is not None else -1)
        os.fchmod(fd, DIR_MODE)

    def locate(
        self, parts: list[str], path: str, *, follow_last: bool, make_dirs: bool = False
    ) -> tuple[int, str | None]:
        """Where ``parts`` leads: (descriptor of its directory, its name there).

        The name is None when the path ends at a directory itself (the home, or a link to
        a directory when ``follow_last``). Links on the way are followed while they stay
        in the home; the last one only when ``follow_last``. ``make_dirs`` creates missing
        directories on the way. The caller closes the descriptor.
        """
        pending = collections.deque(parts)
        fd = os.dup(self.fd)
        links = 0
        try:
            while pending:
                name = pending.popleft()
                if name == "..":  # only ever from a link's target
                    fd = self.parent(fd, path)
                    continue
                last = not pending
                if last and not follow_last:
                    return fd, name
                if not last:
                    below = self._enter(fd, name, make_dirs)
                    if below is not None:
                        os.close(fd)
                        fd = below
                        continue
                target = readlink(fd, name)
                if target is None and last:
                    return fd, name  # the last name: not a link, or not there (yet)
                links += 1
                if links > MAX_LINKS:
                    raise refuse(f.PATH_INVALID, path, "{path!r} passes too many links.")
                if target is None:
                    _require_dir(fd, name, path)
                    pending.appendleft(name)  # a directory again: enter it
                    continue
                resolved = self.link_parts(target)
                if resolved is None:
                    raise outside(path)
                absolute, components = resolved
                if absolute:
                    os.close(fd)
                    fd = os.dup(self.fd)
                pending.extendleft(reversed(components))
            return fd, None
        except BaseException:
            os.close(fd)
            raise

    def locate_entry(self, parts: list[str], path: str) -> tuple[int, str]:
        """(descriptor of its directory, its name there) of a path other than the home,
        its last component not followed: what a rename or delete acts on."""
        fd, name = self.locate(parts, path, follow_last=False)
        if name is None:  # cannot happen: the last component is returned as it is
            os.close(fd)
            raise refuse(f.PATH_INVALID, path, "The home itself cannot be changed so.")
        return fd, name

    def _enter(self, fd: int, name: str, make_dirs: bool) -> int | None:
        """A descriptor of directory ``name`` in ``fd``; None when it is no directory (a
        link, or a file: ``O_DIRECTORY | O_NOFOLLOW`` answers ENOTDIR for both)."""
        while True:
            try:
                return os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not make_dirs:
                    raise
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    return None
                raise
            try:
                os.mkdir(name, DIR_MODE, dir_fd=fd)
            except FileExistsError:
                continue  # made meanwhile: enter whatever it is
            created = self._enter(fd, name, make_dirs=False)
            if created is not None:
                self.prepare_dir(created)
            return created

    def open_dir(self, parts: list[str], path: str) -> int:
        """A descriptor of the directory ``parts`` leads to (links followed)."""
        for _ in range(MAX_LINKS):
            fd, name = self.locate(parts, path, follow_last=True)
            if name is None:
                return fd
            try:
                return os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP) or readlink(fd, name) is None:
                    raise
                # a link swapped in since we looked: resolve it again
            finally:
                os.close(fd)
        raise refuse(f.PATH_INVALID, path, "{path!r} keeps changing; try again.")

    def open_file(self, parts: list[str], path: str) -> int:
        """A descriptor of the regular file ``parts`` leads to (links followed)."""
        for _ in range(MAX_LINKS):
            fd, name = self.locate(parts, path, follow_last=True)
            if name is None:
                os.close(fd)
                raise refuse(f.IS_A_DIRECTORY, path)
            try:
                opened = os.open(name, READ_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                continue
            finally:
                os.close(fd)
            mode = os.fstat(opened).st_mode
            if stat.S_ISREG(mode):
                return opened
            os.close(opened)
            raise refuse(f.IS_A_DIRECTORY if stat.S_ISDIR(mode) else f.NOT_A_FILE, path)
        raise refuse(f.PATH_INVALID, path, "{path!r} keeps changing; try again.")

    def shown_target(self, parts: list[str], target: str) -> str | None:
        """Where a link in directory ``parts`` points, as a path in the home; None when
        it leads out (by its text: links further on are not followed)."""
        resolved = self.link_parts(target)
        if resolved is None:
            return None
        absolute, components = resolved
        where = [] if absolute else list(parts)
        for component in components:
            if component != "..":
                where.append(component)
            elif where:
                where.pop()
            else:
                return None
        return f.join_path(where)


def _require_dir(dir_fd: int, name: str, path: str) -> None:
    """Refuse unless ``name`` is (again) a directory: the walk tried it and it was not."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        raise refuse(f.NOT_A_DIRECTORY, path)


def readlink(dir_fd: int, name: str) -> str | None:
    """The target of link ``name``; None when it is not a link, or not there."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return None
