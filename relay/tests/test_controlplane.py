"""The agent control plane over the relay's streams: failures map to domain errors, fast."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.tests.factories import ClusterFactory
from relay import streams
from workspaces.controlplane import (
    ClusterUnavailable,
)
from workspaces.controlplane.agent import AgentControlPlane

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "cluster_fields",
    [
        {},
        {"tunnel_channel": "gone", "last_seen_at": timezone.now() - timedelta(minutes=5)},
    ],
    ids=["never-connected", "silent-tunnel"],
)
def test_agent_call_without_a_tunnel_fails_fast(cluster_fields):
    cluster = ClusterFactory(name="nowhere", **cluster_fields)
    plane = AgentControlPlane(timeout=30)

    started = time.monotonic()
    with pytest.raises(ClusterUnavailable) as raised:
        plane.get(cluster, "env-000000000000")

    assert time.monotonic() - started < 1
    assert raised.value.code == "cluster_unavailable"
    assert raised.value.status == 503
    assert raised.value.cluster == "nowhere"


def test_agent_listing_reports_clusters_without_a_tunnel_as_unreachable():
    clusters = [ClusterFactory(name="a"), ClusterFactory(name="b")]

    started = time.monotonic()
    result = AgentControlPlane(timeout=30).list_environments(clusters, {})

    assert time.monotonic() - started < 1
    assert (result.environments, sorted(result.unreachable)) == ([], ["a", "b"])


def test_agent_call_to_a_dead_portal_process_is_bounded(monkeypatch):
    monkeypatch.setattr(streams, "REMOTE_OPEN_TIMEOUT", 0.2)
    cluster = ClusterFactory(
        name="orphan", tunnel_channel="relay.nobody-home", last_seen_at=timezone.now()
    )

    started = time.monotonic()
    with pytest.raises(ClusterUnavailable):
        AgentControlPlane(timeout=30).stop(cluster, "env-000000000000")

    assert time.monotonic() - started < 3
