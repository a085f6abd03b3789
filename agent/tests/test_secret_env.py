"""The secret env across agent restarts: sealed beside the environment, never plaintext."""

from __future__ import annotations

import logging
import shutil
import stat

import pytest

from agent.runtimes.local import LocalRuntime, secret_store
from agent.tests.conftest import kill_all, wait_status

SECRET = "sk-ant-survives-restarts-0123456789"
KEY = secret_store.key_from_token("enc_agent-token-one")
OTHER_KEY = secret_store.key_from_token("enc_agent-token-two")
SLEEPER = {"start_command": "exec sleep 60"}


async def loaded(data_dir, key: bytes | None) -> LocalRuntime:
    runtime = LocalRuntime(data_dir, sandbox=None, poll_interval=0.05, stop_grace=2, secret_key=key)
    await runtime.load()
    return runtime


@pytest.fixture
async def data_dir(tmp_path):
    yield tmp_path
    kill_all(tmp_path)


def shell_secret(runtime: LocalRuntime, env_id: str) -> str | None:
    return runtime.shell_context(env_id).env.get("AI_KEY")


def test_the_key_comes_from_the_token():
    assert len(KEY) == 32
    assert secret_store.key_from_token("enc_agent-token-one") == KEY
    assert KEY != OTHER_KEY


async def test_the_secret_env_survives_an_agent_restart_sealed(data_dir, caplog):
    first = await loaded(data_dir, KEY)
    env = await first.create(SLEEPER, {}, {"AI_KEY": SECRET})
    await wait_status(first, env["id"], "running")
    await first.shutdown()

    path = first.root / env["id"]
    sealed = path / "secret_env.bin"
    data = sealed.read_bytes()
    assert data[0] == secret_store.VERSION
    assert SECRET.encode() not in data and b"AI_KEY" not in data
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    assert not list((path / "home").rglob("secret_env*"))
    for other in path.rglob("*"):
        if other.is_file():
            assert SECRET.encode() not in other.read_bytes(), other

    second = await loaded(data_dir, KEY)
    try:
        assert (await second.get(env["id"]))["status"] == "running"  # adopted
        assert shell_secret(second, env["id"]) == SECRET
    finally:
        await second.shutdown()

    caplog.set_level(logging.WARNING)
    third = await loaded(data_dir, OTHER_KEY)  # the agent token changed
    try:
        assert shell_secret(third, env["id"]) is None
        assert f"secret environment of {env['id']} unreadable (agent token changed?)" in caplog.text
        assert SECRET not in caplog.text
        await third.delete(env["id"])
        assert not path.exists()
    finally:
        await third.shutdown()


async def test_start_on_a_running_workspace_keeps_its_secret_env(data_dir):
    runtime = await loaded(data_dir, KEY)
    try:
        env = await runtime.create(SLEEPER, {}, {"AI_KEY": "first"})
        await wait_status(runtime, env["id"], "running")
        await runtime.start(env["id"], {"AI_KEY": "second"})
        assert shell_secret(runtime, env["id"]) == "first"

        await runtime.stop(env["id"])
        await runtime.start(env["id"], {"AI_KEY": "second"})
        await wait_status(runtime, env["id"], "running")
        assert shell_secret(runtime, env["id"]) == "second"

        await runtime.restart(env["id"], {"AI_KEY": "third"})
        await wait_status(runtime, env["id"], "running")
        assert shell_secret(runtime, env["id"]) == "third"
    finally:
        await runtime.shutdown()
    again = await loaded(data_dir, KEY)
    try:
        assert shell_secret(again, env["id"]) == "third"
    finally:
        await again.shutdown()


async def test_without_a_key_the_secret_env_stays_in_memory(data_dir):
    runtime = await loaded(data_dir, None)
    try:
        env = await runtime.create(SLEEPER, {}, {"AI_KEY": SECRET})
        await wait_status(runtime, env["id"], "running")
        assert not (runtime.root / env["id"] / "secret_env.bin").exists()
    finally:
        await runtime.shutdown()


def test_a_sealed_file_opens_only_for_its_own_environment(tmp_path):
    one, two = tmp_path / "env-000000000001", tmp_path / "env-000000000002"
    one.mkdir()
    two.mkdir()
    secret_store.save(one, one.name, {"AI_KEY": SECRET}, KEY)
    assert secret_store.load(one, one.name, KEY) == {"AI_KEY": SECRET}
    shutil.copy(one / "secret_env.bin", two / "secret_env.bin")
    with pytest.raises(secret_store.SecretUnreadable):
        secret_store.load(two, two.name, KEY)
    with pytest.raises(secret_store.SecretUnreadable):
        secret_store.load(one, one.name, OTHER_KEY)
    (one / "secret_env.bin").write_bytes(b"\x02garbage-of-another-format")
    with pytest.raises(secret_store.SecretUnreadable):
        secret_store.load(one, one.name, KEY)
    assert secret_store.load(tmp_path, "env-none", KEY) is None
    assert [p.name for p in one.iterdir()] == ["secret_env.bin"]  # no temporary left
