"""Clusters: uniqueness of secrets, name rules, connection status, display."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from clusters.models import AGENT_TOKEN_PREFIX, Cluster
from clusters.tests.factories import ClusterFactory
from core.crypto import hash_secret

pytestmark = pytest.mark.django_db


def test_two_clusters_with_the_same_token_hash_are_refused():
    cluster = ClusterFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Cluster.objects.create(name="other", token_hash=cluster.token_hash, token_prefix="x")


def test_cluster_names_are_unique():
    ClusterFactory(name="prod")
    with pytest.raises(IntegrityError), transaction.atomic():
        Cluster.objects.create(name="prod", token_hash=hash_secret("another"), token_prefix="x")


@pytest.mark.parametrize("name", ["Prod", "-prod", "prod-", "pr od", "p_rod", "x" * 51, ""])
def test_bad_cluster_names_are_refused(name):
    cluster = Cluster(name=name, token_hash=hash_secret(name + "t"), token_prefix="enca_x")
    with pytest.raises(ValidationError) as excinfo:
        cluster.full_clean()
    assert "name" in excinfo.value.message_dict


@pytest.mark.parametrize("name", ["local", "eu-west-1", "a", "x" * 50])
def test_good_cluster_names_are_accepted(name):
    Cluster(name=name, token_hash=hash_secret(name), token_prefix="enca_x").full_clean()


def test_generate_token_returns_raw_prefix_and_hash():
    raw, prefix, digest = Cluster.generate_token()
    assert raw.startswith(AGENT_TOKEN_PREFIX)
    assert prefix == raw[:12]
    assert digest == hash_secret(raw)
    assert Cluster.generate_token()[0] != raw


@pytest.mark.parametrize(
    ("channel", "seen_ago", "connected"),
    [
        ("specific.abc!def", timedelta(seconds=5), True),
        ("specific.abc!def", timedelta(seconds=44), True),
        ("specific.abc!def", timedelta(seconds=46), False),
        ("specific.abc!def", None, False),
        ("", timedelta(seconds=1), False),
    ],
)
def test_cluster_is_connected_only_with_a_live_tunnel(channel, seen_ago, connected):
    cluster = ClusterFactory.build(
        tunnel_channel=channel,
        last_seen_at=timezone.now() - seen_ago if seen_ago is not None else None,
    )
    assert cluster.is_connected is connected
    assert cluster.status == ("connected" if connected else "disconnected")


@pytest.mark.parametrize(
    ("isolation", "connected", "isolated", "not_isolated"),
    [
        ({"sandbox": "bubblewrap", "network": "private", "limits": "cgroup"}, True, True, False),
        ({"sandbox": "bubblewrap"}, False, False, False),  # nobody vouches for it now
        ({"sandbox": "none", "network": "shared", "limits": "none"}, True, False, True),
        ({"sandbox": "none"}, False, False, True),  # its workspaces still run unsandboxed
        ({}, True, False, False),  # an agent that says nothing is not isolated
    ],
)
def test_isolated_only_while_a_connected_agent_reports_a_sandbox(
    isolation, connected, isolated, not_isolated
):
    cluster = ClusterFactory.build(
        isolation=isolation,
        tunnel_channel="specific.abc!def" if connected else "",
        last_seen_at=timezone.now(),
    )
    assert cluster.isolated is isolated
    assert cluster.not_isolated is not_isolated


def test_str():
    cluster = ClusterFactory(name="local")
    assert str(cluster) == "local"
