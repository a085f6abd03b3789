"""Resource limits of local workspaces: a blueprint's cpu, memory and storage made real.

`Limits.from_resources` parses a spec's ``resources``; `detect` picks the mechanism:

* ``cgroup`` (cgroup v2 delegated to the agent): environment ``<id>`` is the cgroup
  ``<base>/enclave-<id>`` (``cpu.max``, ``memory.max``, no swap, ``pids.max``), enforced by
  the kernel. The agent moves itself into the leaf ``<base>/agent`` (only leaves may hold
  processes); started in a cgroup named ``agent`` it takes the parent as ``<base>``.
* ``prlimit`` (anything else): cpu becomes a *count* of CPUs (affinity to the first
  ``ceil(cpu)``, not a share of time); memory is the PSS (else RSS) summed by `violation`.
  Never ``RLIMIT_AS``: runtimes reserving large virtual ranges (V8) cannot start under it.

Both give 65536 open files, no core dumps, ``RLIMIT_FSIZE`` = storage (per file), and
report a home whose disk usage passes storage: measured at most every ``storage_interval``
seconds per environment, a walk cut after ``storage_budget`` seconds giving a lower bound.
`detect` never raises; `Enforcer.release` is idempotent.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import resource
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CPU_PERIOD = 100_000
MAX_OPEN_FILES = 65536
AGENT_LEAF = "agent"
CONTROLLERS = ("cpu", "memory", "pids")
_CPU = re.compile(r"(\d+(?:\.\d+)?)(m?)")
_BYTES = re.compile(r"(\d+(?:\.\d+)?)([KMGTPE]i|[kKMGTPE])?")
_ENV_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_BYTES_HINT = "use e.g. 512Mi, 2Gi, 1G or 1000000"


def parse_cpu(value: Any) -> float:
    """Cores from ``1``, ``"0.5"`` or ``"500m"``; ValueError otherwise or when not > 0."""
    match = _CPU.fullmatch(value.strip()) if isinstance(value, str) else None
    if match:
        cores = float(match[1]) / (1000 if match[2] else 1)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        cores = float(value)
    else:
        raise ValueError(f"cpu: {value!r} is not a CPU quantity (use e.g. 1, 0.5 or 500m)")
    if not 0 < cores < math.inf:
        raise ValueError(f"cpu: {value!r} must be more than 0 cores")
    return cores


def parse_bytes(value: Any, name: str) -> int:
    """Bytes from ``"2Gi"``, ``"512Mi"``, ``"1G"``, ``"1000000"`` or a number."""
    match = _BYTES.fullmatch(value.strip()) if isinstance(value, str) else None
    if match:
        unit = match[2] or " "
        scale = 1024 if unit.endswith("i") else 1000
        size = float(match[1]) * scale ** " KMGTPE".index(unit[0].upper())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        size = float(value)
    else:
        raise ValueError(f"{name}: {value!r} is not a byte quantity ({_BYTES_HINT})")
    if not 1 <= size < math.inf:
        raise ValueError(f"{name}: {value!r} must be at least 1 byte")
    return int(size)


def format_bytes(size: float) -> str:
    """``2.3 GiB``, ``153 MiB``, ``100 bytes`` (three significant digits) for messages."""
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if size >= 1 << shift:
            value = size / (1 << shift)
            text = f"{value:.{max(0, 2 - int(math.log10(value)))}f}"
            return (text.rstrip("0").rstrip(".") if "." in text else text) + f" {unit}"
    return f"{int(size)} bytes"


@dataclass(frozen=True)
class Limits:
    """What one workspace may use: cores, bytes of memory, bytes of disk; None: unlimited."""

    cpu: float | None = None
    memory: int | None = None
    storage: int | None = None

    @classmethod
    def from_resources(cls, resources: Mapping[str, Any]) -> Limits:
        """The limits of a spec's ``resources``; missing or empty entries are unlimited.

        Raises ValueError naming the resource and the accepted syntax.
        """
        cpu, memory, storage = (resources.get(k) for k in ("cpu", "memory", "storage"))
        return cls(
            cpu=None if cpu in (None, "") else parse_cpu(cpu),
            memory=None if memory in (None, "") else parse_bytes(memory, "memory"),
            storage=None if storage in (None, "") else parse_bytes(storage, "storage"),
        )


def resident(pid: int) -> int:
    """PSS of ``pid`` in bytes (RSS where PSS is unreadable); 0 once the process is gone."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def disk_usage(root: Path, budget: float = 2.0) -> tuple[int, bool]:
    """Bytes allocated under ``root`` and whether the walk finished within ``budget`` s.

    Symlinks are not followed, other filesystems (mount points) not entered, and a
    file with several hard links is counted once.
    """
    deadline = time.monotonic() + budget
    try:
        top = os.lstat(root)
    except OSError:
        return 0, True
    total, seen = top.st_blocks * 512, set()
    stack = [os.fspath(root)] if stat.S_ISDIR(top.st_mode) else []
    while stack:
        if time.monotonic() > deadline:
            return total, False
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if info.st_dev != top.st_dev or info.st_ino in seen:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    stack.append(entry.path)
                elif info.st_nlink > 1:
                    seen.add(info.st_ino)
                total += info.st_blocks * 512
    return total, True


class Enforcer:
    """Applies `Limits` to workspaces; this base sets rlimits and watches storage only.

    `preexec` is called in the parent just before spawning; what it returns runs in the
    child between fork and exec. `violation` blocks (call it from a thread).
    """

    mechanism = "none"

    def __init__(self, *, storage_interval: float = 30.0, storage_budget: float = 2.0) -> None:
        self.storage_interval = storage_interval
        self.storage_budget = storage_budget
        self._usage: dict[str, tuple[float, int, bool]] = {}
        self._lock = threading.Lock()

    def preexec(self, env_id: str, limits: Limits) -> Callable[[], None] | None:
        """A ``preexec_fn`` for the workspace's first process (here: `rlimits`)."""
        return self.rlimits(limits)

    def rlimits(self, limits: Limits) -> Callable[[], None]:
        """Sets 65536 open files at most, no core dumps, ``RLIMIT_FSIZE`` = storage."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        files = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(MAX_OPEN_FILES, hard)
        fsize = limits.storage

        def apply() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        return apply

    def attach(self, env_id: str, pid: int, limits: Limits) -> None:
        """Put the started workspace process ``pid`` under ``limits`` (here: nothing more)."""

    def violation(self, env_id: str, pids: Sequence[int], home: Path, limits: Limits) -> str | None:
        """Why the workspace must be stopped (``storage limit exceeded (…)``), or None."""
        if limits.storage is None:
            return None
        used, complete = self._storage(env_id, home)
        if used <= limits.storage:
            return None
        figure = format_bytes(used) if complete else f"at least {format_bytes(used)}"
        return f"storage limit exceeded ({figure} of {format_bytes(limits.storage)})"

    def release(self, env_id: str) -> None:
        """Forget the environment (stopped or deleted); idempotent."""
        with self._lock:
            self._usage.pop(env_id, None)

    def _storage(self, env_id: str, home: Path) -> tuple[int, bool]:
        with self._lock:
            cached = self._usage.get(env_id)
        if cached and time.monotonic() - cached[0] < self.storage_interval:
            return cached[1], cached[2]
        used, complete = disk_usage(home, self.storage_budget)
        with self._lock:
            self._usage[env_id] = (time.monotonic(), used, complete)
        return used, complete


class PrlimitEnforcer(Enforcer):
    """rlimits and CPU affinity at spawn; memory checked by `violation`."""

    mechanism = "prlimit"

    def preexec(self, env_id: str, limits: Limits) -> Callable[[], None] | None:
        """rlimits, and affinity to the first ``ceil(cpu)`` CPUs the agent may use."""
        rlimits = self.rlimits(limits)
        allowed = sorted(os.sched_getaffinity(0))
        count = len(allowed) if limits.cpu is None else math.ceil(limits.cpu)
        cpus = set(allowed[:count]) if count < len(allowed) else None

        def apply() -> None:
            rlimits()
            if cpus is not None:
                os.sched_setaffinity(0, cpus)

        return apply

    def violation(self, env_id: str, pids: Sequence[int], home: Path, limits: Limits) -> str | None:
        """Memory above the limit (PSS summed over ``pids``), else storage."""
        used = sum(map(resident, pids)) if limits.memory is not None else 0
        if limits.memory is not None and used > limits.memory:
            figures = f"{format_bytes(used)} used of {format_bytes(limits.memory)}"
            return f"memory limit exceeded ({figures})"
        return super().violation(env_id, pids, home, limits)


def _write(path: str | Path, text: str) -> None:
    """Write to an existing cgroup file (never creating one)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class CgroupEnforcer(Enforcer):
    """One cgroup v2 per environment under ``base``, a cgroup delegated to the agent.

    Nothing is killed here: `release` removes an environment's cgroup once it is
    empty (one still busy is retried on later calls).
    """

    mechanism = "cgroup"

    def __init__(self, base: Path, *, pids_max: int = 4096, **storage: float) -> None:
        super().__init__(**storage)
        self.base = base
        self.pids_max = pids_max
        self._busy: set[str] = set()

    @classmethod
    def delegate(cls, cgroup_root: Path, own: str, **options: Any) -> CgroupEnforcer:
        """The agent's cgroup ``own`` (its parent if ``own`` is the leaf) as the base.

        Its processes move to the leaf ``agent``, then its children get cpu, memory and
        pids. Raises OSError or ValueError saying why this is impossible.
        """
        base = cgroup_root / own.strip("/")
        if base.name == AGENT_LEAF:
            base = base.parent
        missing = set(CONTROLLERS) - set((base / "cgroup.controllers").read_text().split())
        if missing:
            raise ValueError(f"{base} lacks the controllers {' '.join(sorted(missing))}")
        pids = (base / "cgroup.procs").read_text().split()
        if pids and (base / "cgroup.type").exists():  # the root cgroup may hold processes
            (base / AGENT_LEAF).mkdir(exist_ok=True)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    _write(base / AGENT_LEAF / "cgroup.procs", pid)
        _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
        return cls(base, **options)

    def path(self, env_id: str) -> Path:
        """The environment's cgroup (ValueError for an id unfit to name one)."""
        if not _ENV_ID.fullmatch(env_id):
            raise ValueError(f"environment id {env_id!r} cannot name a cgroup")
        return self.base / f"enclave-{env_id}"

    def preexec(self, env_id: str, limits: Limits) -> Callable[[], None] | None:
        """Create the limited cgroup now; the child joins it before exec, so no fork escapes."""
        rlimits = self.rlimits(limits)
        procs = os.fspath(self._create(env_id, limits) / "cgroup.procs")

        def apply() -> None:
            _write(procs, "0")
            rlimits()

        return apply

    def attach(self, env_id: str, pid: int, limits: Limits) -> None:
        """Move ``pid`` (not children it already forked: `preexec` is race-free) in."""
        _write(self._create(env_id, limits) / "cgroup.procs", str(pid))

    def release(self, env_id: str) -> None:
        """Remove the environment's cgroup once empty; busy ones are retried later."""
        super().release(env_id)
        with self._lock:
            pending, self._busy = self._busy | {env_id}, set()
        for name in pending:
            try:
                self.path(name).rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    logger.warning("cannot remove the cgroup of %s: %s", name, exc)
                    continue
                logger.info("cgroup of %s still has processes; removal retried later", name)
                with self._lock:
                    self._busy.add(name)

    def _create(self, env_id: str, limits: Limits) -> Path:
        path = self.path(env_id)
        path.mkdir(exist_ok=True)
        quota = "max" if limits.cpu is None else str(max(1000, round(limits.cpu * CPU_PERIOD)))
        _write(path / "cpu.max", f"{quota} {CPU_PERIOD}")
        _write(path / "memory.max", "max" if limits.memory is None else str(limits.memory))
        if limits.memory is not None and (path / "memory.swap.max").exists():
            _write(path / "memory.swap.max", "0")
        _write(path / "pids.max", str(self.pids_max))
        return path


def _mount_type(path: Path) -> str | None:
    """The type of the filesystem mounted at ``path`` (the topmost mount), if any."""
    target, fstype = os.fspath(path.resolve()), None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields.split()[4])
        if point == target:
            fstype = rest.split()[0]
    return fstype


def _own_cgroup() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise ValueError("the agent is in no cgroup v2 hierarchy")


def detect(cgroup_root: Path = Path("/sys/fs/cgroup"), **options: Any) -> Enforcer:
    """A `CgroupEnforcer` when cgroup v2 is delegated to the agent, else `PrlimitEnforcer`.

    ``options`` go to the enforcer's constructor. Never raises: why cgroups are not
    used is logged at INFO.
    """
    storage = {k: v for k, v in options.items() if k.startswith("storage_")}
    try:
        if _mount_type(cgroup_root) != "cgroup2":
            raise ValueError(f"no cgroup v2 mounted at {cgroup_root}")
        enforcer = CgroupEnforcer.delegate(cgroup_root, _own_cgroup(), **options)
    except Exception as exc:  # noqa: BLE001 - any failure means the fallback, never a crash
        logger.info("resource limits by prlimit: no usable cgroup v2 (%s)", exc)
        return PrlimitEnforcer(**storage)
    logger.info("resource limits by cgroup v2 under %s", enforcer.base)
    return enforcer
