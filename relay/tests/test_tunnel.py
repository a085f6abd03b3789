"""The tunnel consumer with a scripted agent: auth, replacement, routing, flow control."""

from __future__ import annotations

import asyncio
import json
from unittest.mock import patch

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from agent import protocol as p
from audit.models import AuditEvent
from clusters.models import Cluster
from clusters.services import cluster_create, cluster_delete, cluster_rotate_token, tunnel_claim
from relay.consumers import tunnel as tunnel_consumer
from relay.consumers.tunnel import revoke_tunnel
from relay.streams import LOCAL_TUNNELS, RemoteStream, open_stream
from relay.tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster_token():
    cluster, token = cluster_create(name="edge", actor=None)
    return cluster, token


def _connect(token: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application, "/agent/v1/tunnel", headers=[(b"authorization", f"Bearer {token}".encode())]
    )


async def _cluster(pk: int) -> Cluster:
    return await sync_to_async(Cluster.objects.get)(pk=pk)


async def _wait_for(predicate, timeout: float = 5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if result := await predicate():
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def _frame(agent: WebsocketCommunicator) -> p.Frame:
    """The next frame the portal sent this fake agent (batches split)."""
    buffered = agent.__dict__.setdefault("_frames", [])
    if not buffered:
        message = await agent.receive_from(timeout=5)
        buffered.extend(map(p.decode_frame, p.split_message(message)))
    return buffered.pop(0)


async def test_unknown_token_is_refused_before_accept(cluster_token):
    agent = _connect("enca_not-a-real-token")
    connected, _ = await agent.connect()
    assert not connected
    cluster = await _cluster(cluster_token[0].pk)
    assert cluster.tunnel_channel == ""


async def test_connect_hello_and_disconnect_update_the_cluster(cluster_token):
    cluster, token = cluster_token
    agent = _connect(token)
    connected, _ = await agent.connect()
    assert connected
    hello = p.hello_message(
        version="9.9.9",
        runtime="local",
        capabilities=["rpc"],
        environments=0,
        isolation={"sandbox": "none", "network": "shared", "limits": "none"},
    )
    await agent.send_to(text_data=p.encode_message(hello))

    async def hello_recorded():
        fresh = await _cluster(cluster.pk)
        return fresh.agent_version == "9.9.9" and fresh

    fresh = await _wait_for(hello_recorded)
    assert fresh.is_connected and fresh.runtime == "local"
    assert fresh.isolation == {"sandbox": "none", "network": "shared", "limits": "none"}
    assert fresh.not_isolated and not fresh.isolated
    assert cluster.pk in LOCAL_TUNNELS

    await agent.send_to(text_data=json.dumps({"type": "ping", "ts": 1}))
    pong = json.loads(await agent.receive_from(timeout=5))
    assert pong["type"] == "pong"

    await agent.disconnect()

    async def released():
        return (await _cluster(cluster.pk)).tunnel_channel == ""

    await _wait_for(released)
    assert cluster.pk not in LOCAL_TUNNELS


@pytest.mark.parametrize(
    ("isolation", "stored"),
    [
        (
            {"sandbox": "bubblewrap", "network": "private", "limits": "cgroup", "x": "y"},
            {"sandbox": "bubblewrap", "network": "private", "limits": "cgroup"},
        ),
        ({"sandbox": "b" * 5000, "network": ["private"], "limits": None}, {}),
        ("bubblewrap", {}),
        (None, {}),
    ],
)
async def test_the_isolation_of_a_hello_is_sanitised(cluster_token, isolation, stored):
    cluster, token = cluster_token
    await sync_to_async(Cluster.objects.filter(pk=cluster.pk).update)(isolation={"sandbox": "none"})
    agent = _connect(token)
    assert (await agent.connect())[0]
    hello = {"type": "hello", "version": "2", "runtime": "local", "isolation": isolation}
    if isolation is None:
        del hello["isolation"]  # an agent from before isolation reports
    await agent.send_to(text_data=json.dumps(hello))

    async def hello_recorded():
        fresh = await _cluster(cluster.pk)
        return fresh.agent_version == "2" and fresh

    fresh = await _wait_for(hello_recorded)
    assert fresh.isolation == stored
    assert fresh.isolated is (stored.get("sandbox") == "bubblewrap")
    await agent.disconnect()


async def test_a_second_connection_replaces_the_first(cluster_token):
    cluster, token = cluster_token
    first = _connect(token)
    assert (await first.connect())[0]
    second = _connect(token)
    assert (await second.connect())[0]
    output = await first.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    fresh = await _cluster(cluster.pk)
    assert fresh.tunnel_channel and LOCAL_TUNNELS[cluster.pk].consumer is not None
    await second.disconnect()


async def _answer_rpc(agent: WebsocketCommunicator, result) -> dict:
    frame = await _frame(agent)
    assert frame.type == p.OPEN and frame.stream % 2 == 1
    request = p.decode_open(frame)
    body = p.encode_rpc_result(result)
    await agent.send_to(bytes_data=p.data_frame(frame.stream, body))
    await agent.send_to(bytes_data=p.close_frame(frame.stream))
    return request


async def test_rpc_in_process_and_through_the_channel_layer(cluster_token):
    cluster, token = cluster_token
    agent = _connect(token)
    assert (await agent.connect())[0]
    fresh = await _cluster(cluster.pk)

    # In-process fast path: this process holds the tunnel.
    stream = await open_stream(
        cluster_id=cluster.pk, tunnel_channel="", request=p.rpc_request("agent.info", {})
    )
    request = await _answer_rpc(agent, {"hello": "local"})
    assert request == {"kind": "rpc", "method": "agent.info", "params": {}}
    assert p.decode_rpc_response(await stream.read_all()) == {"hello": "local"}

    # Another process's path: frames travel through the channel layer.
    remote_task = asyncio.ensure_future(
        RemoteStream.open(fresh.tunnel_channel, p.rpc_request("environments.list", {}))
    )
    request = await _answer_rpc(agent, [{"id": "env-1"}])
    remote = await remote_task
    assert request["method"] == "environments.list"
    assert p.decode_rpc_response(await remote.read_all()) == [{"id": "env-1"}]
    assert remote.close_code == p.CLOSE_NORMAL
    await agent.disconnect()


async def test_stalled_remote_reader_bounds_what_the_agent_may_send(cluster_token):
    """A caller that stops reading stops the agent: credit is only granted after delivery."""
    cluster, token = cluster_token
    agent = _connect(token)
    assert (await agent.connect())[0]
    fresh = await _cluster(cluster.pk)
    remote_task = asyncio.ensure_future(
        RemoteStream.open(fresh.tunnel_channel, {"kind": "shell", "cols": 80, "rows": 24})
    )
    opened = await _frame(agent)
    remote = await remote_task
    sent = await _send_while_credit_lasts(agent, opened.stream)
    # The caller read nothing: the agent got at most one more window (the relay's own
    # buffer towards the caller), then no more credit — memory stays bounded.
    assert p.INITIAL_WINDOW <= sent <= 2 * p.INITIAL_WINDOW
    received = 0
    while received < sent:
        received += len(await remote.read())
    assert received == sent
    more = await _send_while_credit_lasts(agent, opened.stream, credit=0)
    assert more > 0, "reading released credit back to the agent"
    await remote.close()
    await agent.disconnect()


async def _send_while_credit_lasts(
    agent: WebsocketCommunicator, stream_id: int, credit: int = p.INITIAL_WINDOW
) -> int:
    """Act as a well-behaved agent: send DATA while credit lasts; return bytes sent."""
    sent = 0
    while True:
        while credit >= p.MAX_PAYLOAD:
            await agent.send_to(bytes_data=p.data_frame(stream_id, b"x" * p.MAX_PAYLOAD))
            credit -= p.MAX_PAYLOAD
            sent += p.MAX_PAYLOAD
        if await agent.receive_nothing(timeout=0.5):
            return sent
        frame = await _frame(agent)
        if frame.type == p.CREDIT and frame.stream == stream_id:
            credit += frame.arg


async def test_overdrawing_credit_closes_only_that_stream(cluster_token):
    cluster, token = cluster_token
    agent = _connect(token)
    assert (await agent.connect())[0]
    stream = await open_stream(
        cluster_id=cluster.pk, tunnel_channel="", request={"kind": "shell", "cols": 80, "rows": 24}
    )
    opened = await _frame(agent)
    chunk = b"y" * p.MAX_PAYLOAD
    for _ in range(p.INITIAL_WINDOW // p.MAX_PAYLOAD + 1):
        await agent.send_to(bytes_data=p.data_frame(opened.stream, chunk))
    close = await _frame(agent)
    assert close.type == p.CLOSE and close.arg == p.CLOSE_FLOW_CONTROL
    assert stream.close_code == p.CLOSE_FLOW_CONTROL
    # The tunnel itself stays up: a new RPC still works.
    rpc_stream = await open_stream(
        cluster_id=cluster.pk, tunnel_channel="", request=p.rpc_request("agent.info", {})
    )
    await _answer_rpc(agent, {"ok": 1})
    assert p.decode_rpc_response(await rpc_stream.read_all()) == {"ok": 1}
    await agent.disconnect()


async def test_garbage_frame_drops_the_tunnel(cluster_token):
    _, token = cluster_token
    agent = _connect(token)
    assert (await agent.connect())[0]
    await agent.send_to(bytes_data=b"\x09")
    output = await agent.receive_output(timeout=5)
    assert output["type"] == "websocket.close"


# --- revoked credentials --------------------------------------------------------------------


async def _closed_as_revoked(agent: WebsocketCommunicator, reason: str) -> None:
    """The tunnel is closed with TUNNEL_CLOSE_REVOKED within a second, then ends."""
    output = await agent.receive_output(timeout=1)
    assert output == {
        "type": "websocket.close",
        "code": p.TUNNEL_CLOSE_REVOKED,
        "reason": f"credentials revoked: {reason}",
    }
    await agent.disconnect()


async def _audited_closes() -> list[tuple[str, dict]]:
    rows = AuditEvent.objects.filter(action="cluster.tunnel_closed").order_by("id")
    return await sync_to_async(list)(rows.values_list("target_id", "details"))


async def test_rotating_the_token_closes_the_live_tunnel_and_refuses_the_old_token(
    cluster_token, caplog
):
    cluster, token = cluster_token
    agent = _connect(token)
    assert (await agent.connect())[0]

    new_token = await sync_to_async(cluster_rotate_token)(cluster=cluster, actor=None)

    await _closed_as_revoked(agent, "token_rotated")
    assert cluster.pk not in LOCAL_TUNNELS
    assert await _audited_closes() == [("edge", {"reason": "token_rotated"})]
    assert "closing the tunnel of cluster edge: credentials revoked (token_rotated)" in caplog.text
    assert token not in caplog.text and new_token not in caplog.text
    assert (await _cluster(cluster.pk)).tunnel_channel == ""
    again = _connect(token)
    assert not (await again.connect())[0]
    renewed = _connect(new_token)
    assert (await renewed.connect())[0]
    await renewed.disconnect()


async def test_deleting_the_cluster_closes_the_live_tunnel(cluster_token):
    cluster, token = cluster_token
    agent = _connect(token)
    assert (await agent.connect())[0]

    await sync_to_async(cluster_delete)(cluster=cluster, actor=None)

    await _closed_as_revoked(agent, "cluster_deleted")
    assert await _audited_closes() == [("edge", {"reason": "cluster_deleted"})]
    again = _connect(token)
    assert not (await again.connect())[0]


async def test_the_tunnel_of_another_process_is_told_through_the_channel_layer(cluster_token):
    """The closer reaches the consumer by the channel name the database records, which is
    all a portal process that does not hold the tunnel knows of it."""
    cluster, token = cluster_token
    agent = _connect(token)
    assert (await agent.connect())[0]
    channel = (await _cluster(cluster.pk)).tunnel_channel
    del LOCAL_TUNNELS[cluster.pk]  # as seen from another process
    await sync_to_async(revoke_tunnel)(
        cluster_id=cluster.pk, tunnel_channel=channel, reason="token_rotated"
    )
    await _closed_as_revoked(agent, "token_rotated")


async def test_a_revocation_nobody_announced_is_found_at_the_next_heartbeat(cluster_token):
    """A token changed where no closer runs (or whose message was lost) still ends the
    tunnel: the consumer re-checks its token whenever it refreshes `last_seen_at`."""
    cluster, token = cluster_token
    agent = _connect(token)
    assert (await agent.connect())[0]
    await agent.receive_nothing(timeout=0.2)  # the check on connect found the token good
    rows = Cluster.objects.filter(pk=cluster.pk)
    await sync_to_async(rows.update)(token_hash="0" * 64)

    await agent.send_to(text_data=p.encode_message(p.ping_message(1)))
    assert json.loads(await agent.receive_from(timeout=5))["type"] == "pong"
    await _closed_as_revoked(agent, "token_rotated")


async def test_a_tunnel_claimed_after_the_revocation_is_closed_at_once(cluster_token):
    """A tunnel authenticated just before the token changed, but claimed after, was named
    to nobody: its consumer checks the token once it holds the tunnel."""
    _, token = cluster_token
    agent = _connect(token)
    with patch.object(tunnel_consumer, "_claim", _rotate_then_claim):
        assert (await agent.connect())[0]
    await _closed_as_revoked(agent, "token_rotated")


async def _rotate_then_claim(*, cluster_id: int, channel_name: str) -> str:
    await sync_to_async(Cluster.objects.filter(pk=cluster_id).update)(token_hash="1" * 64)
    return await sync_to_async(tunnel_claim)(cluster_id=cluster_id, channel_name=channel_name)


async def test_a_revoke_message_of_unknown_reason_closes_only_a_revoked_tunnel(cluster_token):
    cluster, token = cluster_token
    agent = _connect(token)
    assert (await agent.connect())[0]
    channel = (await _cluster(cluster.pk)).tunnel_channel
    layer = get_channel_layer()

    await layer.send(channel, {"type": "tunnel.revoke", "reason": "because"})
    assert await agent.receive_nothing(timeout=0.3)  # the token still holds: kept open

    await sync_to_async(Cluster.objects.filter(pk=cluster.pk).update)(token_hash="2" * 64)
    await layer.send(channel, {"type": "tunnel.revoke", "reason": "because"})
    await _closed_as_revoked(agent, "token_rotated")
