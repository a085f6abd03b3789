"""Following the service logs of the local runtime while their processes write them.

The start command (and provisioning before it) writes the environment's
``logs/service.log`` itself, through the file descriptor it was started with — and keeps
doing so after an agent restart adopted it — so the agent learns of new output from the
kernel, not from its own code. Guarantees:

* A follower reads the file by offset: the bytes after the last ones it read, never the
  whole file again. Copy-truncate rotation goes through `rotate_log`, which the
  followers of the log are told of under a lock they read under too: what was written
  before a rotation and not read yet is read from ``service.log.1`` first, then the log
  from its start. Lines are lost only by a follower more than a whole rotation (1 MiB)
  behind, and by the rotation itself (what is written between the copy and the
  truncation); a log truncated by anything else is read again from its start.
* Wakeups come from inotify (one instance per runtime, one watch per followed log
  directory, however many followers), where the kernel has it; otherwise each follower
  looks every `POLL_INTERVAL` seconds. A burst of writes is gathered for `COALESCE`
  seconds into one batch.
* Memory per follower is bounded: one read of at most `READ_LIMIT` bytes and one
  unfinished line of at most MAX_LOG_LINE bytes (longer lines are clipped). A line still
  unfinished `PARTIAL_AFTER` seconds after its last byte (a prompt) is delivered as it is.
* `LogFollowers.end` ends every follower of an environment (deleted) at once, and
  `LogFollowers.close` every follower of the runtime (shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from agent import protocol as p
from agent.runtimes import process as proc_util
from agent.runtimes.base import FOLLOWER_CLOSED, LogFollower, LogsEnded

logger = logging.getLogger(__name__)

POLL_INTERVAL: Final = 0.5
"""Seconds between looks at a log that inotify cannot watch."""
COALESCE: Final = 0.05
"""Seconds a follower waits after a change before reading, to take a burst at once."""
PARTIAL_AFTER: Final = 0.5
"""Seconds after which an unfinished line is delivered as it is."""
READ_LIMIT: Final = 256 * 1024
"""Bytes a follower reads from the log at once."""
TAIL_SCAN: Final = 4 * 1024 * 1024
"""Bytes read from the end of the logs, at most, to find the tail."""

_ROTATED = f"{proc_util.LOG_NAME}.1"


@dataclass(eq=False)
class LogState:
    """What the followers of one service log share with its rotation."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held by a rotation and by every read, so a reader never sees half a rotation."""
    generation: int = 0
    """Rotations of the log since its first follower came."""


def rotate_log(log_dir: Path, state: LogState | None, limit: int = proc_util.LOG_LIMIT) -> bool:
    """`proc_util.rotate_log`, told to the followers of the log (blocking)."""
    if state is None:
        return proc_util.rotate_log(log_dir, limit)
    with state.lock:
        rotated = proc_util.rotate_log(log_dir, limit)
        if rotated:
            state.generation += 1
    return rotated


def _read_end(path: Path, budget: int) -> tuple[bytes, int, bool]:
    """The last ``budget`` bytes of ``path``, its size, and whether that is all of it."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            start = max(0, size - budget)
            file.seek(start)
            return file.read(size - start), size, start == 0
    except FileNotFoundError:
        return b"", 0, True


class LogTail:
    """The read position of one follower in a service log (blocking: call in a thread)."""

    def __init__(self, log_dir: Path, state: LogState) -> None:
        self.path = log_dir / proc_util.LOG_NAME
        self.rotated = log_dir / _ROTATED
        self.offset = 0
        """Bytes of ``service.log`` read so far."""
        self.partial = b""
        """The unfinished last line."""
        self._state = state
        self._generation = state.generation
        self._skipping = False
        self._rotated_at: int | None = None
        """Where reading ``service.log.1`` goes on, while what it holds is not all read."""

    def read_tail(self, count: int) -> list[str]:
        """The last ``count`` complete lines (newest MAX_LOG_TAIL_BYTES); following
        continues after them."""
        with self._state.lock:
            self._generation = self._state.generation
            data, self.offset, whole = _read_end(self.path, TAIL_SCAN)
            if whole and len(data) < TAIL_SCAN and data.count(b"\n") <= count:
                older, _, whole = _read_end(self.rotated, TAIL_SCAN - len(data))
                data = older + data
        if not whole:  # the scan began inside a line
            data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
        self.partial, self._skipping, self._rotated_at = b"", False, None
        lines = self._take(data)[-count:]
        kept, size = 0, 0
        for line in reversed(lines):
            size += len(line.encode())
            if size > p.MAX_LOG_TAIL_BYTES:
                break
            kept += 1
        return lines[len(lines) - kept :]

    def read_new(self, limit: int = READ_LIMIT) -> list[str]:
        """The complete lines written since the last read (from at most ``limit`` bytes)."""
        with self._state.lock:
            if self._state.generation != self._generation:
                self._after_rotations(self._state.generation - self._generation)
            data = self._read_rotated(limit) if self._rotated_at is not None else b""
            if self._rotated_at is None:  # the rotated file is all read: on to the log
                data += self._read_log(limit - len(data))
        return self._take(data)

    def flush_partial(self) -> list[str]:
        """The unfinished line as it is (the rest of it, if any comes, is a line of its own)."""
        line, self.partial = self.partial, b""
        return [p.clip_log_line(line)] if line else []

    def _after_rotations(self, times: int) -> None:
        """The log was rotated ``times`` times since the last read: ``service.log.1`` holds
        the part after ``offset`` not read yet (or, after more than one rotation, the part
        after the lines lost), and the log starts again from 0."""
        start = self.offset if times == 1 else 0
        self._generation += times
        self.offset = 0
        try:
            size = self.rotated.stat().st_size
        except FileNotFoundError:
            size = 0
        self._rotated_at = start if size > start else None

    def _read_rotated(self, limit: int) -> bytes:
        assert self._rotated_at is not None
        try:
            with open(self.rotated, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                file.seek(self._rotated_at)
                data = file.read(max(0, limit))
        except FileNotFoundError:
            self._rotated_at = None
            return b""
        self._rotated_at += len(data)
        if self._rotated_at >= size:
            self._rotated_at = None
        return data

    def _read_log(self, limit: int) -> bytes:
        try:
            with open(self.path, "rb") as file:
                if os.fstat(file.fileno()).st_size < self.offset:
                    self.offset = 0  # truncated by something else than a rotation
                file.seek(self.offset)
                data = file.read(max(0, limit))
        except FileNotFoundError:
            return b""
        self.offset += len(data)
        return data

    def _take(self, data: bytes) -> list[str]:
        """Complete lines of the unfinished line plus ``data``; keeps the rest unfinished."""
        if self.partial:
            data = self.partial + data
        lines = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if self._skipping:  # the rest of a line already delivered clipped
                self._skipping = False
            else:
                lines.append(p.clip_log_line(data[start:end]))
            start = end + 1
        rest = data[start:]
        if self._skipping:
            rest = b""
        elif len(rest) > p.MAX_LOG_LINE:
            lines.append(p.clip_log_line(rest))
            self._skipping, rest = True, b""
        self.partial = rest
        return lines


# -- change notification --------------------------------------------------------------------

_IN_MODIFY: Final = 0x00000002
_IN_MOVED_TO: Final = 0x00000080
_IN_CREATE: Final = 0x00000100
_IN_DELETE_SELF: Final = 0x00000400
_IN_Q_OVERFLOW: Final = 0x00004000
_IN_IGNORED: Final = 0x00008000
_WATCH_MASK: Final = _IN_MODIFY | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE_SELF
_EVENT: Final = struct.Struct("iIII")


def _inotify() -> tuple[ctypes.CDLL, int] | None:
    """The C library and a new non-blocking inotify descriptor, or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        logger.warning("inotify unavailable (%s): logs are followed by polling", _errno())
        return None
    return libc, fd


def _errno() -> str:
    return os.strerror(ctypes.get_errno())


class DirectoryWatcher:
    """Calls back the subscribers of a directory whenever a file in it changes.

    One inotify descriptor, read by the event loop; one watch per directory, removed with
    its last subscriber. `subscribe` answers None when it cannot watch (no inotify, or the
    kernel's watch limit): the subscriber then polls.
    """

    def __init__(self) -> None:
        self._inotify = _inotify()
        self._reading = False
        self._watches: dict[int, set[Callable[[], None]]] = {}
        self._dirs: dict[str, int] = {}

    def subscribe(self, directory: Path, wake: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``wake()`` on every change in ``directory``; returns the unsubscribe."""
        if self._inotify is None:
            return None
        libc, fd = self._inotify
        name = str(directory)
        wd = self._dirs.get(name)
        if wd is None:
            wd = libc.inotify_add_watch(fd, os.fsencode(name), _WATCH_MASK)
            if wd < 0:
                logger.warning("cannot watch %s (%s): polling it", directory, _errno())
                return None
            self._dirs[name] = wd
            self._watches[wd] = set()
        if not self._reading:
            asyncio.get_running_loop().add_reader(fd, self._on_readable)
            self._reading = True
        self._watches[wd].add(wake)
        return lambda: self._unsubscribe(name, wd, wake)

    def _unsubscribe(self, name: str, wd: int, wake: Callable[[], None]) -> None:
        subscribers = self._watches.get(wd)
        if subscribers is None or self._inotify is None:
            return
        subscribers.discard(wake)
        if subscribers:
            return
        del self._watches[wd]
        if self._dirs.get(name) == wd:
            del self._dirs[name]
        libc, fd = self._inotify
        libc.inotify_rm_watch(fd, wd)

    def _on_readable(self) -> None:
        assert self._inotify is not None
        fd = self._inotify[1]
        woken: set[int] = set()
        everyone = False
        while True:
            try:
                data = os.read(fd, 64 * 1024)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    everyone = True
                    continue
                woken.add(wd)
                if mask & _IN_IGNORED:  # the directory is gone, and so is the watch
                    self._forget(wd)
        targets = self._watches.keys() if everyone else woken
        for wd in list(targets):
            for wake in list(self._watches.get(wd, ())):
                wake()

    def _forget(self, wd: int) -> None:
        subscribers = self._watches.pop(wd, set())
        self._dirs = {name: w for name, w in self._dirs.items() if w != wd}
        for wake in subscribers:
            wake()

    def close(self) -> None:
        if self._inotify is None:
            return
        fd = self._inotify[1]
        if self._reading:
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        self._inotify = None
        self._watches.clear()
        self._dirs.clear()


# -- followers ------------------------------------------------------------------------------


class LocalLogFollower(LogFollower):
    """Follows one environment's service log (see the module docstring)."""

    def __init__(
        self,
        log_dir: Path,
        state: LogState,
        watcher: DirectoryWatcher,
        *,
        on_close: Callable[[LocalLogFollower], None],
        poll_interval: float = POLL_INTERVAL,
        coalesce: float = COALESCE,
        partial_after: float = PARTIAL_AFTER,
    ) -> None:
        self._reader = LogTail(log_dir, state)
        self._changed = asyncio.Event()
        self._ended: LogsEnded | None = None
        self._on_close = on_close
        self._poll_interval = poll_interval
        self._coalesce = coalesce
        self._partial_after = partial_after
        self._unsubscribe = watcher.subscribe(log_dir, self._changed.set)

    @property
    def polling(self) -> bool:
        """True when no inotify watch wakes this follower: it looks every poll interval."""
        return self._unsubscribe is None

    async def tail(self, count: int) -> list[str]:
        return await asyncio.to_thread(self._reader.read_tail, count)

    async def next(self) -> list[str]:
        loop = asyncio.get_running_loop()
        partial, partial_since = self._reader.partial, loop.time()
        while True:
            if self._ended is not None:
                raise self._ended
            self._changed.clear()  # before reading: a write during the read wakes us again
            lines = await asyncio.to_thread(self._reader.read_new)
            if lines:
                return lines
            if self._ended is not None:
                raise self._ended
            if self._reader.partial != partial:
                partial, partial_since = self._reader.partial, loop.time()
            timeout = self._poll_interval if self.polling else None
            if partial:
                flush_in = partial_since + self._partial_after - loop.time()
                if flush_in <= 0:
                    return self._reader.flush_partial()
                timeout = flush_in if timeout is None else min(timeout, flush_in)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
                if self._coalesce > 0 and self._ended is None:
                    await asyncio.sleep(self._coalesce)

    def end(self, code: str, detail: str) -> None:
        """No more output will come (``code`` among LOG_END_CODES): `next` raises."""
        if self._ended is None:
            self._ended = LogsEnded(code, detail)
        self._stop()

    def close(self) -> None:
        self.end(FOLLOWER_CLOSED, "the follower was closed")

    def _stop(self) -> None:
        self._changed.set()
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        callback, self._on_close = self._on_close, lambda follower: None
        callback(self)


class LogFollowers:
    """The open followers of one runtime's environments, the watcher they share and the
    rotation of the logs they follow."""

    def __init__(self, **options: float) -> None:
        self._options = options
        self._watcher: DirectoryWatcher | None = None
        self._open: dict[str, set[LocalLogFollower]] = {}
        self._states: dict[str, LogState] = {}

    def open(self, env_id: str, log_dir: Path) -> LocalLogFollower:
        """A follower of ``log_dir`` (which must exist), ended with its environment."""
        if self._watcher is None:
            self._watcher = DirectoryWatcher()
        state = self._states.setdefault(env_id, LogState())
        follower = LocalLogFollower(
            log_dir,
            state,
            self._watcher,
            on_close=lambda f: self._discard(env_id, f),
            **self._options,
        )
        self._open.setdefault(env_id, set()).add(follower)
        return follower

    def count(self, env_id: str) -> int:
        """Followers of ``env_id`` open right now."""
        return len(self._open.get(env_id, ()))

    async def rotate(self, logs: list[tuple[str, Path]], limit: int = proc_util.LOG_LIMIT) -> None:
        """Copy-truncate each ``(environment id, log directory)``'s log once it passes
        ``limit``, so that its followers know (one thread hop for every log)."""

        def rotate_all() -> None:
            for env_id, log_dir in logs:
                # Looked up here, in the thread (one atomic dict read), so that a follower
                # opened while the thread waited to run still hears of the rotation.
                rotate_log(log_dir, self._states.get(env_id), limit)

        await asyncio.to_thread(rotate_all)

    def end(self, env_id: str, code: str, detail: str) -> None:
        """End every follower of ``env_id``."""
        for follower in list(self._open.get(env_id, ())):
            follower.end(code, detail)

    def close(self) -> None:
        """End every follower (the runtime shuts down) and release the watcher."""
        for env_id in list(self._open):
            self.end(env_id, p.LOG_END_SHUTDOWN, "the agent is shutting down")
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    def _discard(self, env_id: str, follower: LocalLogFollower) -> None:
        followers = self._open.get(env_id)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._open[env_id]
                del self._states[env_id]
