"""In-memory records of the local runtime and their atomic persistence.

``EnvRecord.data`` is exactly what ``environment.json`` holds; nested values are
replaced, never mutated in place, so ``snapshot`` (the public view returned by
the runtime) can share them safely.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.protocol import OWNER_TAG
from agent.runtimes import process as proc_util

_PUBLIC = ("id", "metadata", "spec", "status", "phase", "error", "ports", "created_at")


def now() -> str:
    """Current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: readers see the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass(eq=False)
class ProcRecord:
    """A workspace process group: our child, or adopted after an agent restart."""

    pid: int
    start_time: str | None
    child: asyncio.subprocess.Process | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    returncode: int | None = None
    stop_requested: bool = False

    def alive(self) -> bool:
        """True while the process runs (zombies and recycled pids count as gone)."""
        if self.child is not None:
            return self.child.returncode is None
        return proc_util.is_alive(self.pid, self.start_time)


@dataclass(eq=False)
class EnvRecord:
    """One environment: persisted ``data``, its locks, public snapshot and live process."""

    data: dict[str, Any]
    path: Path
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    snapshot: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    owner: str = ""
    proc: ProcRecord | None = None
    job: asyncio.Task[None] | None = None
    deleted: bool = False
    files_lock: threading.Lock = field(default_factory=threading.Lock)
    """Serialises the agent's changes to the files of ``home`` (`agent.files`)."""
    file_users: int = 0
    """File operations in progress on ``home``; ``delete`` waits for them (``files_idle``)."""
    files_idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.files_idle.set()

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def home(self) -> Path:
        return self.path / "home"

    @property
    def log_dir(self) -> Path:
        return self.path / "logs"

    def refresh(self) -> None:
        """Rebuild the read-only public snapshot (nested values are never mutated)."""
        self.snapshot = {key: self.data.get(key) for key in _PUBLIC}
        self.snapshot["updated_at"] = self.data["updated_at"]
        self.snapshot["runtime"] = "local"
        # Listings carry everything but the spec: a tenth of the bytes at 10 000 environments.
        self.summary = {key: value for key, value in self.snapshot.items() if key != "spec"}
        self.owner = str(self.data["metadata"].get(OWNER_TAG, "")).lower()

    async def persist(self) -> None:
        """Write ``data`` to ``environment.json``; writes never overlap or reorder.

        The latest state is what ends up on disk, even if the caller is
        cancelled mid-write; nothing is written once the record is ``deleted``.
        """
        async with self.write_lock:
            if self.deleted:
                return
            text = json.dumps(self.data, indent=1, sort_keys=True)
            write = asyncio.ensure_future(
                asyncio.to_thread(write_atomic, self.path / "environment.json", text)
            )
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await write  # let the write finish before the lock is released
                raise
