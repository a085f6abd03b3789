"""The control-plane contract, run against both implementations so the fake cannot drift.

`InMemoryControlPlane` serves every workspace test; `AgentControlPlane` is what
production runs. Each test here runs twice: once on the in-memory plane, once on the
agent adapter speaking RPC over a real tunnel to a real agent process with the local
runtime (real processes, real files). The portal side of that tunnel is the relay's
ASGI application served by uvicorn in a thread of this process, and every control-plane
call is made from that server's event loop, as a view or consumer of the portal would.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from asgiref.sync import sync_to_async

from agent.protocol import BLUEPRINT_TAG, MAX_FILE_BYTES, NAME_TAG, OWNER_TAG, RUNNING, STOPPED
from clusters.models import Cluster
from clusters.services import cluster_create
from tests.harness import ROOT, free_port, kill_workspaces, stop_process, wait_until
from workspaces.controlplane import ClusterUnavailable, EnvironmentNotFound, FileRefused
from workspaces.controlplane.agent import AgentControlPlane
from workspaces.controlplane.memory import InMemoryControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SPEC = {
    "start_command": 'exec python3 -m http.server "$PORT" --bind 127.0.0.1',
    "ports": [{"port": 3000, "name": "app"}],
}
OWNER = "Builder@Example.com"


class OnServerLoop:
    """A control plane whose every call runs as portal code would: in a worker thread of
    the server's event loop (so the agent adapter reaches the tunnel in-process)."""

    def __init__(self, plane: AgentControlPlane, loop: asyncio.AbstractEventLoop) -> None:
        self._plane = plane
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._plane, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            coroutine = sync_to_async(method, thread_sensitive=False)(*args, **kwargs)
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

        return call


class PortalThread:
    """The relay's ASGI application under uvicorn, in a thread with its own loop."""

    def __init__(self) -> None:
        from relay.tests.asgi import application

        self.port = free_port()
        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=self.port,
            ws="websockets-sansio",
            lifespan="off",
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name="contract-portal", daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def __enter__(self) -> PortalThread:
        self.thread.start()
        wait_until(lambda: self.server.started, what="in-process portal")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _agent(portal: PortalThread, token: str, data_dir) -> subprocess.Popen:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(data_dir),
        "LANG": "C.UTF-8",
        "ENCLAVE_AGENT_TOKEN": token,
    }
    argv = [sys.executable, "-m", "agent", "--portal-url", f"http://127.0.0.1:{portal.port}"]
    argv += ["--runtime", "local", "--data-dir", str(data_dir)]
    log = open(data_dir.parent / "agent.log", "ab")  # noqa: SIM115
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)


@pytest.fixture(params=["memory", "agent"])
def contract(request, tmp_path) -> Iterator[tuple[Any, Cluster]]:
    """(control plane, cluster) for each implementation."""
    if request.param == "memory":
        InMemoryControlPlane.reset()
        cluster, _ = cluster_create(name="memory", actor=None)
        yield InMemoryControlPlane(), cluster
        InMemoryControlPlane.reset()
        return
    cluster, token = cluster_create(name="agent", actor=None)
    (tmp_path / "agent").mkdir()
    with PortalThread() as portal:
        agent = _agent(portal, token, tmp_path / "agent")
        try:
            wait_until(
                lambda: Cluster.objects.get(pk=cluster.pk).is_connected, what="agent connected"
            )
            cluster.refresh_from_db()
            yield OnServerLoop(AgentControlPlane(timeout=20), portal.loop), cluster
        finally:
            stop_process(agent)
            kill_workspaces(tmp_path / "agent")


def _create(plane, cluster, owner: str = OWNER, name: str = "Shop", spec: dict = SPEC):
    metadata = {BLUEPRINT_TAG: "demo", OWNER_TAG: owner, NAME_TAG: name}
    return plane.create(cluster, spec=spec, metadata=metadata, secret_env={"API_KEY": "k"})


def _until(plane, cluster, environment_id: str, status: str):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        environment = plane.get(cluster, environment_id)
        if environment.status == status:
            return environment
        assert environment.status != "error", environment.error
        time.sleep(0.1)
    raise AssertionError(f"{environment_id} never became {status}")


def test_create_then_read_and_list(contract):
    plane, cluster = contract
    created = _create(plane, cluster)
    assert created.status in ("deploying", RUNNING)
    running = _until(plane, cluster, created.id, RUNNING)
    assert running.metadata[NAME_TAG] == "Shop"
    assert running.spec["start_command"] == SPEC["start_command"]
    assert [(p["port"], p["name"]) for p in running.ports] == [(3000, "app")]

    _create(plane, cluster, owner="someone@example.com")
    mine = plane.list_environments([cluster], {OWNER_TAG: "builder@EXAMPLE.com"})
    assert [e.id for e in mine.environments] == [created.id]  # owner case-insensitively
    assert mine.unreachable == []
    assert mine.environments[0].spec == {}  # listings are summaries
    by_name = plane.list_environments([cluster], {NAME_TAG: "Shop"}).environments
    assert len(by_name) == 2
    assert plane.list_environments([cluster], {NAME_TAG: "nope"}).environments == []


def test_lifecycle(contract):
    plane, cluster = contract
    environment_id = _create(plane, cluster).id
    _until(plane, cluster, environment_id, RUNNING)
    assert plane.stop(cluster, environment_id).status == STOPPED
    plane.start(cluster, environment_id, secret_env={})
    _until(plane, cluster, environment_id, RUNNING)
    plane.restart(cluster, environment_id, secret_env={})
    _until(plane, cluster, environment_id, RUNNING)
    lines = plane.logs(cluster, environment_id, tail=5)
    assert isinstance(lines, list) and len(lines) <= 5
    assert all(isinstance(line, str) for line in lines)
    plane.delete(cluster, environment_id)
    with pytest.raises(EnvironmentNotFound):
        plane.get(cluster, environment_id)
    assert plane.list_environments([cluster], {}).environments == []


def test_metadata_merges_and_none_removes(contract):
    plane, cluster = contract
    environment_id = _create(plane, cluster).id
    updated = plane.set_metadata(cluster, environment_id, {NAME_TAG: "Renamed", "EXTRA": "1"})
    assert updated.metadata[NAME_TAG] == "Renamed" and updated.metadata["EXTRA"] == "1"
    removed = plane.set_metadata(cluster, environment_id, {"EXTRA": None})
    assert "EXTRA" not in removed.metadata
    assert removed.metadata[OWNER_TAG] == OWNER


def test_upgrade_replaces_the_spec_and_keeps_the_metadata(contract):
    plane, cluster = contract
    environment_id = _create(plane, cluster).id
    _until(plane, cluster, environment_id, RUNNING)
    spec = {**SPEC, "ports": [{"port": 3000, "name": "web"}]}
    plane.upgrade(cluster, environment_id, spec=spec, secret_env={})
    upgraded = _until(plane, cluster, environment_id, RUNNING)
    assert [p["name"] for p in upgraded.ports] == ["web"]
    assert upgraded.metadata[NAME_TAG] == "Shop"


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("get", {}),
        ("stop", {}),
        ("start", {"secret_env": {}}),
        ("restart", {"secret_env": {}}),
        ("delete", {}),
        ("logs", {"tail": 10}),
        ("set_metadata", {"metadata": {NAME_TAG: "x"}}),
    ],
)
def test_unknown_ids_are_not_found(contract, method, kwargs):
    plane, cluster = contract
    kwargs = dict(kwargs)  # the parameter is shared by both planes' runs
    args = (kwargs.pop("metadata"),) if "metadata" in kwargs else ()
    with pytest.raises(EnvironmentNotFound):
        getattr(plane, method)(cluster, "env-000000000000", *args, **kwargs)


def test_a_cluster_without_its_agent_is_unreachable(contract):
    plane, cluster = contract
    if isinstance(plane, InMemoryControlPlane):
        InMemoryControlPlane.set_unreachable(cluster.name)
    else:  # a registered cluster whose agent never connected
        cluster, _ = cluster_create(name="gone", actor=None)
    listing = plane.list_environments([cluster], {})
    assert listing.unreachable == [cluster.name]
    with pytest.raises(ClusterUnavailable):
        plane.get(cluster, "env-000000000000")


def _home(plane, cluster, environment_id: str, tmp_path) -> Path:
    """Where the environment's home is on disk, for each implementation."""
    if isinstance(plane, InMemoryControlPlane):
        return InMemoryControlPlane.home_of(cluster.name, environment_id)
    return tmp_path / "agent" / "environments" / environment_id / "home"


def _refused(code: str, call, **kwargs) -> None:
    with pytest.raises(FileRefused) as info:
        call(**kwargs)
    assert info.value.code == code, info.value.detail


def test_the_files_of_a_home(contract, tmp_path):
    plane, cluster = contract
    environment_id = _create(plane, cluster).id
    _until(plane, cluster, environment_id, RUNNING)
    home = _home(plane, cluster, environment_id, tmp_path)
    where = {"cluster": cluster, "environment_id": environment_id}

    saved = plane.file_write(**where, path="src/app.py", content="print(1)\n", base_version=None)
    read = plane.file_read(**where, path="src/app.py")
    assert (read.content, read.version, read.binary) == ("print(1)\n", saved.version, False)
    assert (home / "src" / "app.py").read_text() == "print(1)\n"
    listing = plane.files_list(**where, path="")
    assert ("src", "dir") in [(e.name, e.type) for e in listing.entries]
    assert not listing.truncated
    _refused(
        "file_conflict",
        plane.file_write,
        **where,
        path="src/app.py",
        content="x",
        base_version="sha256-stale",
    )
    _refused("path_invalid", plane.file_read, **where, path="../etc/passwd")
    os.symlink("/etc", home / "etc")
    _refused("path_outside_home", plane.file_read, **where, path="etc/passwd")
    _refused("file_not_found", plane.file_read, **where, path="nope.txt")

    moved = plane.file_rename(**where, source="src", target="lib", overwrite=False)
    assert (moved.path, moved.type) == ("lib", "dir")
    plane.file_write(**where, path="other.txt", content="", base_version=None)
    _refused(
        "file_exists", plane.file_rename, **where, source="other.txt", target="lib", overwrite=False
    )
    _refused("directory_not_empty", plane.file_delete, **where, path="lib", recursive=False)
    plane.file_delete(**where, path="lib", recursive=True)
    assert not (home / "lib").exists()

    unit = 'five mebibytes through the tunnel, "quoted" ✓\n'
    count = MAX_FILE_BYTES // len(unit.encode())
    text = unit * count + "x" * (MAX_FILE_BYTES - count * len(unit.encode()))
    assert len(text.encode()) == MAX_FILE_BYTES
    big = plane.file_write(**where, path="big.txt", content=text, base_version=None)
    assert big.size == MAX_FILE_BYTES
    assert plane.file_read(**where, path="big.txt").content == text
    with pytest.raises(EnvironmentNotFound):
        plane.file_read(cluster=cluster, environment_id="env-000000000000", path="x")
