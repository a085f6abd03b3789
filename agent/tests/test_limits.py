"""Resource limits: quantities, rlimits and affinity of a real child, memory and storage
watched over real processes and files, and the cgroup v2 layout on a fake hierarchy."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.affinity import format_cpus
from agent.runtimes.local import limits
from agent.runtimes.local.limits import (
    CgroupEnforcer,
    Limits,
    PrlimitEnforcer,
    detect,
    disk_usage,
    format_bytes,
)

MiB = 1 << 20
GiB = 1 << 30


@contextlib.contextmanager
def running(argv, **kwargs):
    """A child process, killed and reaped on the way out."""
    child = subprocess.Popen(argv, **kwargs)
    try:
        yield child
    finally:
        child.kill()
        child.wait()


# -- quantities ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, Limits()),
        ({"cpu": "1", "memory": "2Gi", "storage": "10Gi"}, Limits(1.0, 2 * GiB, 10 * GiB)),
        ({"cpu": "0.5", "memory": "512Mi"}, Limits(cpu=0.5, memory=512 * MiB)),
        ({"cpu": "500m", "storage": "1G"}, Limits(cpu=0.5, storage=10**9)),
        ({"cpu": 2, "memory": "1000000", "storage": 4096}, Limits(2.0, 10**6, 4096)),
        ({"memory": "64Ki", "storage": "1Ti"}, Limits(memory=65536, storage=1 << 40)),
        ({"memory": "1.5Gi", "storage": "3k"}, Limits(memory=3 * GiB // 2, storage=3000)),
        ({"cpu": "", "memory": None, "gpu": "1"}, Limits()),
    ],
)
def test_resources_parse_into_cores_and_bytes(resources, expected):
    assert Limits.from_resources(resources) == expected


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"cpu": "1.5x"}, r"cpu: '1.5x' is not a CPU quantity \(use e\.g\. 1, 0\.5 or 500m\)"),
        ({"cpu": "0"}, "cpu: '0' must be more than 0 cores"),
        ({"cpu": "-1"}, "is not a CPU quantity"),
        ({"cpu": True}, "is not a CPU quantity"),
        ({"memory": "2GB"}, r"memory: '2GB' is not a byte quantity \(use e\.g\. 512Mi"),
        ({"memory": "0Mi"}, "memory: '0Mi' must be at least 1 byte"),
        ({"storage": "ten"}, "storage: 'ten' is not a byte quantity"),
        ({"storage": "1e9"}, "storage: '1e9' is not a byte quantity"),
    ],
)
def test_bad_quantities_are_refused_naming_the_resource(resources, message):
    with pytest.raises(ValueError, match=message):
        Limits.from_resources(resources)


def test_sizes_read_like_the_console_shows_them():
    assert format_bytes(2 * GiB) == "2 GiB"
    assert format_bytes(int(2.3 * GiB)) == "2.3 GiB"
    assert format_bytes(512 * MiB) == "512 MiB"
    assert format_bytes(int(153.14 * MiB)) == "153 MiB"
    assert format_bytes(int(10.44 * GiB)) == "10.4 GiB"
    assert format_bytes(int(2.04 * GiB)) == "2.04 GiB"
    assert format_bytes(1500) == "1.46 KiB"
    assert format_bytes(100) == "100 bytes"


# -- prlimit ------------------------------------------------------------------------------


def _proc_limit(pid: int, name: str) -> list[str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            return line[len(name) :].split()[:2]
    raise AssertionError(f"no {name!r} in /proc/{pid}/limits")


def _cpus_allowed(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split()[1]
    raise AssertionError("no Cpus_allowed_list")


def test_prlimit_preexec_sets_rlimits_and_pins_cpus_of_the_child():
    cpus = sorted(os.sched_getaffinity(0))
    hard = _proc_limit(os.getpid(), "Max open files")[1]
    files = "65536" if hard == "unlimited" else str(min(65536, int(hard)))
    preexec = PrlimitEnforcer().preexec("env-1", Limits(cpu=0.5, storage=10 * MiB))
    with running(["sleep", "60"], preexec_fn=preexec) as child:
        assert _proc_limit(child.pid, "Max open files") == [files, files]
        assert _proc_limit(child.pid, "Max file size") == [str(10 * MiB)] * 2
        assert _proc_limit(child.pid, "Max core file size") == ["0", "0"]
        address_space = _proc_limit(os.getpid(), "Max address space")
        assert _proc_limit(child.pid, "Max address space") == address_space
        assert _cpus_allowed(child.pid) == str(cpus[0])
    assert sorted(os.sched_getaffinity(0)) == cpus


def test_prlimit_without_cpu_or_storage_keeps_affinity_and_file_size():
    allowed, file_size = _cpus_allowed(os.getpid()), _proc_limit(os.getpid(), "Max file size")
    with running(["sleep", "60"], preexec_fn=PrlimitEnforcer().preexec("e", Limits())) as child:
        assert _proc_limit(child.pid, "Max file size") == file_size
        assert _cpus_allowed(child.pid) == allowed


def test_cores_round_up_to_a_count_of_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    preexec = PrlimitEnforcer().preexec("env-1", Limits(cpu=1.5))
    with running(["sleep", "60"], preexec_fn=preexec) as child:
        assert _cpus_allowed(child.pid) == format_cpus(frozenset(cpus[:2]))


ALLOCATE = "import sys; b = b'x' * (150 << 20); print('ready', flush=True); sys.stdin.read()"


def test_memory_violation_sums_the_resident_memory_of_the_workspace(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    enforcer = PrlimitEnforcer()
    argv = [sys.executable, "-c", ALLOCATE]
    with running(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout.readline() == "ready\n"
        pids = [child.pid, gone.pid]
        message = enforcer.violation("env-1", pids, tmp_path, Limits(memory=64 * MiB))
        assert message is not None
        assert message.startswith("memory limit exceeded (")
        assert message.endswith(" MiB used of 64 MiB)")
        used = float(message.removeprefix("memory limit exceeded (").split()[0])
        assert 150 <= used < 400
        assert enforcer.violation("env-1", pids, tmp_path, Limits(memory=GiB)) is None


def test_vanished_processes_count_nothing():
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert limits.resident(gone.pid) == 0


# -- storage ------------------------------------------------------------------------------


def _write_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))


@pytest.mark.parametrize("mechanism", ["prlimit", "cgroup"])
def test_storage_violation_measures_the_home(tmp_path, mechanism):
    if mechanism == "prlimit":
        enforcer = PrlimitEnforcer(storage_interval=0)
    else:
        enforcer = CgroupEnforcer(tmp_path / "cgroup", storage_interval=0)
    home = tmp_path / "home"
    _write_file(home / "data" / "blob", 2 * MiB)
    message = enforcer.violation("env-1", [], home, Limits(storage=MiB))
    assert message is not None
    assert message.startswith("storage limit exceeded (2")
    assert message.endswith(" MiB of 1 MiB)")
    assert enforcer.violation("env-1", [], home, Limits(storage=GiB)) is None


def test_storage_is_measured_at_most_once_per_interval(tmp_path):
    enforcer = PrlimitEnforcer(storage_interval=3600)
    home = tmp_path / "home"
    home.mkdir()
    assert enforcer.violation("env-1", [], home, Limits(storage=MiB)) is None
    _write_file(home / "blob", 2 * MiB)
    assert enforcer.violation("env-1", [], home, Limits(storage=MiB)) is None
    enforcer.release("env-1")
    assert enforcer.violation("env-1", [], home, Limits(storage=MiB)) is not None


def test_disk_usage_skips_symlinks_and_counts_hard_links_once(tmp_path):
    outside = tmp_path / "outside"
    _write_file(outside / "big", 4 * MiB)
    home = tmp_path / "home"
    _write_file(home / "file", MiB)
    os.link(home / "file", home / "same-file")
    (home / "link").symlink_to(outside)
    used, complete = disk_usage(home)
    assert complete
    assert MiB <= used < 2 * MiB


def test_a_walk_over_budget_reports_a_lower_bound(tmp_path):
    home = tmp_path / "home"
    _write_file(home / "deep" / "blob", 2 * MiB)
    used, complete = disk_usage(home, budget=-1)
    assert (used, complete) == (os.lstat(home).st_blocks * 512, False)
    message = PrlimitEnforcer(storage_budget=-1).violation("e", [], home, Limits(storage=1))
    assert message is not None
    assert "(at least " in message


# -- detection ----------------------------------------------------------------------------


def test_detect_falls_back_to_prlimit_on_this_host():
    if limits._mount_type(Path("/sys/fs/cgroup")) == "cgroup2":
        pytest.skip("this host has cgroup v2 (detect would delegate the real hierarchy)")
    enforcer = detect()
    assert isinstance(enforcer, PrlimitEnforcer)
    assert enforcer.mechanism == "prlimit"


def test_detect_never_raises_and_prefers_prlimit_when_unsure(tmp_path, caplog):
    caplog.set_level("INFO", logger=limits.__name__)
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    assert detect(tmp_path).mechanism == "prlimit"
    assert detect(tmp_path / "missing", storage_interval=5).storage_interval == 5
    assert "no cgroup v2 mounted at" in caplog.text


# -- cgroup v2 on a fake hierarchy --------------------------------------------------------


def _cgroup(path: Path, *, procs: str = "", root: bool = False) -> Path:
    """A directory with the files the kernel gives a cgroup (the ones the enforcer uses)."""
    path.mkdir(parents=True, exist_ok=True)
    files = ["cgroup.subtree_control", "cpu.max", "memory.max", "memory.swap.max", "pids.max"]
    for name in [*files, *([] if root else ["cgroup.type"])]:
        (path / name).write_text("")
    (path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (path / "cgroup.procs").write_text(procs)
    return path


def test_delegation_moves_the_agent_into_a_leaf_and_enables_controllers(tmp_path):
    service = _cgroup(tmp_path / "system.slice" / "enclave.service", procs=f"{os.getpid()}\n")
    leaf = _cgroup(service / "agent")
    enforcer = CgroupEnforcer.delegate(tmp_path, "/system.slice/enclave.service", pids_max=99)
    assert (enforcer.mechanism, enforcer.base, enforcer.pids_max) == ("cgroup", service, 99)
    assert (leaf / "cgroup.procs").read_text() == str(os.getpid())
    assert (service / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    again = CgroupEnforcer.delegate(tmp_path, "/system.slice/enclave.service/agent")
    assert again.base == service


def test_delegation_is_refused_without_the_controllers(tmp_path):
    service = _cgroup(tmp_path / "svc")
    (service / "cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(ValueError, match="lacks the controllers memory pids"):
        CgroupEnforcer.delegate(tmp_path, "/svc")


def test_the_root_cgroup_keeps_its_processes(tmp_path):
    _cgroup(tmp_path, procs="1\n", root=True)
    enforcer = CgroupEnforcer.delegate(tmp_path, "/")
    assert enforcer.base == tmp_path
    assert not (tmp_path / "agent").exists()


def test_cgroup_limits_are_written_and_the_child_joins_before_exec(tmp_path):
    enforcer = CgroupEnforcer(tmp_path, pids_max=4096)
    env = _cgroup(tmp_path / "enclave-env-1")
    limits_ = Limits(cpu=0.5, memory=2 * GiB, storage=10 * MiB)
    preexec = enforcer.preexec("env-1", limits_)
    assert (env / "cpu.max").read_text() == "50000 100000"
    assert (env / "memory.max").read_text() == str(2 * GiB)
    assert (env / "memory.swap.max").read_text() == "0"
    assert (env / "pids.max").read_text() == "4096"
    with running(["sleep", "60"], preexec_fn=preexec) as child:
        assert (env / "cgroup.procs").read_text() == "0"
        assert _proc_limit(child.pid, "Max file size") == [str(10 * MiB)] * 2
        enforcer.attach("env-1", child.pid, limits_)
        assert (env / "cgroup.procs").read_text() == str(child.pid)


def test_unlimited_cgroup_and_tiny_cpu_quota(tmp_path):
    enforcer = CgroupEnforcer(tmp_path)
    env = _cgroup(tmp_path / "enclave-env-1")
    (env / "memory.swap.max").write_text("max")
    enforcer.attach("env-1", 123, Limits())
    assert (env / "cpu.max").read_text() == "max 100000"
    assert (env / "memory.max").read_text() == "max"
    assert (env / "memory.swap.max").read_text() == "max"
    enforcer.attach("env-1", 123, Limits(cpu=0.001))
    assert (env / "cpu.max").read_text() == "1000 100000"


def test_cgroup_enforcer_leaves_memory_to_the_kernel(tmp_path):
    enforcer = CgroupEnforcer(tmp_path)
    assert enforcer.violation("env-1", [os.getpid()], tmp_path, Limits(memory=1)) is None


def test_release_removes_the_cgroup_and_is_idempotent(tmp_path):
    enforcer = CgroupEnforcer(tmp_path)
    env = tmp_path / "enclave-env-1"
    env.mkdir()
    enforcer.release("env-1")
    assert not env.exists()
    enforcer.release("env-1")


def test_a_busy_cgroup_is_left_and_removed_on_a_later_release(tmp_path):
    enforcer = CgroupEnforcer(tmp_path)
    busy = _cgroup(tmp_path / "enclave-env-1")  # a non-empty directory: like a busy cgroup
    enforcer.release("env-1")
    assert busy.exists()
    for child in busy.iterdir():
        child.unlink()
    enforcer.release("env-2")
    assert not busy.exists()


def test_ids_unfit_for_a_cgroup_name_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot name a cgroup"):
        CgroupEnforcer(tmp_path).path("../escape")
