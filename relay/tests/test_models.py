"""Clusters and tickets: uniqueness of secrets, name rules, connection status, display."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from relay.choices import TicketKind
from relay.models import AGENT_TOKEN_PREFIX, Cluster, hash_secret
from relay.tests.factories import ClusterFactory, TicketFactory

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


def test_a_preview_ticket_needs_a_port():
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketFactory(kind=TicketKind.PREVIEW, port=None)
    TicketFactory(kind=TicketKind.PREVIEW, port=3000)
    TicketFactory(kind=TicketKind.SHELL, port=None)


def test_ticket_kind_is_constrained():
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketFactory(kind="sftp")


def test_two_tickets_with_the_same_hash_are_refused():
    ticket = TicketFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketFactory(token_hash=ticket.token_hash)


def test_str():
    cluster = ClusterFactory(name="local")
    assert str(cluster) == "local"
    ticket = TicketFactory(cluster=cluster, environment_id="env-1", kind=TicketKind.SHELL)
    assert str(ticket) == "shell ticket for env-1"
    assert ticket.token_hash not in str(ticket)
