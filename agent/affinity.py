"""CPU partitioning: run a process (and what it starts later) on a set of CPUs.

On one host shared by the portal and the workspaces, an operator can give each its own
CPUs — the portal with `PORTAL_CPUS`, the agent with `--cpus` — the way nginx's
`worker_cpu_affinity` or HAProxy's `cpu-map` do. Two things follow: a builder's heavy
build cannot take the portal's CPUs, and the relay's processes stop being moved between
CPUs by the scheduler, which on a small host costs every keystroke a cold cache and an
idle-CPU wake-up (docs/performance.md measures it).

Linux only (`sched_setaffinity`); the list syntax is the kernel's (`0-3,8`), as in
`taskset -c` and Docker's `--cpuset-cpus`.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_CPU = 4095


class AffinityError(ValueError):
    """A CPU list that cannot be applied; the message says why and names the list."""


def parse_cpu_list(text: str) -> frozenset[int]:
    """``"0-2,5"`` → ``{0, 1, 2, 5}``; AffinityError on anything else (empty included)."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise AffinityError(f"{text!r} is not a CPU list such as 0-3,8")
        first, last = int(low), int(high) if dash else int(low)
        if first > last or last > MAX_CPU:
            raise AffinityError(f"{text!r} is not a CPU list such as 0-3,8")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def available_cpus() -> frozenset[int]:
    """The CPUs this process may run on now."""
    return frozenset(os.sched_getaffinity(0))


def pin_process(cpus: frozenset[int]) -> frozenset[int]:
    """Run every thread of this process, and every thread or child it starts from now
    on, on ``cpus`` that this process may use; returns the CPUs applied.

    AffinityError if none of ``cpus`` is available to this process (a list meant for
    another host): silently running everywhere would hide the mistake.
    """
    usable = cpus & available_cpus()
    if not usable:
        allowed = format_cpus(available_cpus())
        raise AffinityError(
            f"none of CPUs {format_cpus(cpus)} is available to this process (available: {allowed})"
        )
    # sched_setaffinity(0) sets the calling thread only; threads started before this
    # call (a server's helpers) get it one by one.
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), usable)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
    return usable


def format_cpus(cpus: frozenset[int]) -> str:
    """``{0, 1, 2, 5}`` → ``"0-2,5"``."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
