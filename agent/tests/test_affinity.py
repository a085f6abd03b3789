"""CPU partitioning: the list syntax, pinning every thread, and the agent's `--cpus`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.affinity import AffinityError, format_cpus, parse_cpu_list

REPO = Path(__file__).resolve().parents[2]
CPUS = sorted(os.sched_getaffinity(0))
AGENT = [sys.executable, "-m", "agent", "--portal-url", "http://127.0.0.1:9"]
"""An agent that would dial a port nothing listens on."""


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0", {0}), ("0-2,5", {0, 1, 2, 5}), (" 3 , 1-1 ", {1, 3}), ("2-3,3", {2, 3})],
)
def test_cpu_lists_parse_like_taskset(text, cpus):
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["", ",", "a", "1-", "-1", "3-1", "1,,2", "0x1", "1.5", "5000"])
def test_anything_else_is_refused_naming_the_list(text):
    with pytest.raises(AffinityError, match="is not a CPU list"):
        parse_cpu_list(text)


def test_format_gives_back_the_shortest_list():
    assert format_cpus(frozenset({0, 1, 2, 5, 7, 8})) == "0-2,5,7-8"
    assert parse_cpu_list(format_cpus(frozenset({4, 9, 10}))) == {4, 9, 10}


def _pin_in_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_pinning_reaches_threads_started_before_and_after_and_children():
    # In a child process: pinning this test process would outlive the test.
    code = f"""
import os, subprocess, sys, threading
from agent.affinity import pin_process
seen = {{}}
started = threading.Event(); go = threading.Event()
def early():
    started.set(); go.wait(); seen['early'] = os.sched_getaffinity(0)
t = threading.Thread(target=early); t.start(); started.wait()
applied = pin_process(frozenset({{{CPUS[-1]}}}))
go.set(); t.join()
late = threading.Thread(target=lambda: seen.__setitem__('late', os.sched_getaffinity(0)))
late.start(); late.join()
child = subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))'],
                       capture_output=True, text=True).stdout.strip()
print(sorted(applied), sorted(seen['early']), sorted(seen['late']), child)
"""
    result = _pin_in_child(code)
    assert result.returncode == 0, result.stderr
    only = f"[{CPUS[-1]}]"
    assert result.stdout.split() == [only] * 4


def test_only_available_cpus_are_applied_and_none_available_is_an_error():
    code = f"""
from agent.affinity import AffinityError, pin_process
print(sorted(pin_process(frozenset({{{CPUS[0]}, 4095}}))))
try:
    pin_process(frozenset({{4095}}))
except AffinityError as exc:
    print(exc)
"""
    result = _pin_in_child(code)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first == f"[{CPUS[0]}]"
    assert second.startswith("none of CPUs 4095 is available to this process (available: ")


def test_the_agent_refuses_a_bad_cpu_list_before_dialling():
    for value, message in (("x", "is not a CPU list"), ("4095", "none of CPUs 4095")):
        argv = [*AGENT, "--token", "t", "--cpus", value]
        env = {"PATH": os.environ["PATH"]}
        result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 2
        assert "--cpus: " in result.stderr and message in result.stderr


def test_the_agent_runs_on_its_cpus(tmp_path):
    """The agent pins itself at start (so do the workspaces it starts: they inherit it)."""
    env = {"PATH": os.environ["PATH"], "ENCLAVE_AGENT_TOKEN": "t", "ENCLAVE_CPUS": str(CPUS[-1])}
    agent = subprocess.Popen(
        [*AGENT, "--data-dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = agent.stderr.readline()
        while line and "running on CPUs" not in line:
            line = agent.stderr.readline()
        assert f"running on CPUs {CPUS[-1]}" in line
        status = Path(f"/proc/{agent.pid}/status").read_text()
        assert f"Cpus_allowed_list:\t{CPUS[-1]}\n" in status
    finally:
        agent.terminate()
        agent.wait(timeout=30)
