"""Cluster registration and tokens; single-use tickets, including racing redemptions."""

import pytest
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError

from audit.models import AuditEvent
from clusters import tunnels
from clusters.models import Cluster
from clusters.selectors import cluster_token_revocation, clusters_not_isolated
from clusters.services import (
    cluster_create,
    cluster_delete,
    cluster_rotate_token,
    tunnel_closed,
    tunnel_hello,
)
from clusters.tests.factories import ClusterFactory
from core.crypto import hash_secret
from core.errors import ApplicationError

# --- clusters ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cluster_create_stores_only_the_token_hash(admin_member):
    cluster, raw = cluster_create(name="eu-1", description="EU", actor=admin_member)
    cluster.refresh_from_db()
    assert raw.startswith("enca_")
    assert cluster.token_hash == hash_secret(raw)
    assert cluster.token_prefix == raw[:12]
    assert raw not in (cluster.token_hash, cluster.token_prefix, cluster.description)
    event = AuditEvent.objects.get(action="cluster.create")
    assert (event.target_id, event.actor_email) == ("eu-1", admin_member.email)
    assert raw not in str(event.details)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["Bad Name", "", "-x"])
def test_cluster_create_validates_the_name(admin_member, name):
    with pytest.raises(ValidationError):
        cluster_create(name=name, actor=admin_member)
    assert not Cluster.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_cluster_create_refuses_a_duplicate_name(admin_member):
    cluster_create(name="local", actor=admin_member)
    with pytest.raises(ValidationError) as excinfo:
        cluster_create(name="local", actor=admin_member)
    assert "name" in excinfo.value.message_dict


@pytest.mark.django_db
def test_cluster_rotate_token_replaces_the_hash(admin_member):
    cluster, old = cluster_create(name="local", actor=admin_member)
    new = cluster_rotate_token(cluster=cluster, actor=admin_member)
    assert new != old
    stored = Cluster.objects.get(pk=cluster.pk)
    assert stored.token_hash == cluster.token_hash == hash_secret(new)
    assert stored.token_prefix == new[:12]
    assert not Cluster.objects.filter(token_hash=hash_secret(old)).exists()
    assert AuditEvent.objects.filter(action="cluster.rotate_token", target_id="local").exists()


# --- ending the tunnel of a revoked credential -------------------------------------------


@pytest.fixture
def closed(monkeypatch):
    """What the registered tunnel closer (the relay's, in the portal) was asked to close."""
    calls = []
    monkeypatch.setattr(tunnels, "_closer", lambda **call: calls.append(call))
    return calls


@pytest.mark.django_db
def test_rotating_the_token_closes_the_recorded_tunnel_after_the_commit(
    admin_member, closed, django_capture_on_commit_callbacks
):
    cluster = ClusterFactory(name="edge", tunnel_channel="specific.a!b")
    with django_capture_on_commit_callbacks() as callbacks:
        cluster_rotate_token(cluster=cluster, actor=admin_member)
        assert closed == []  # nothing is closed before the new token is committed
    for callback in callbacks:
        callback()
    assert closed == [
        {"cluster_id": cluster.pk, "tunnel_channel": "specific.a!b", "reason": "token_rotated"}
    ]


@pytest.mark.django_db
def test_deleting_the_cluster_closes_its_tunnel_but_a_refused_delete_closes_nothing(
    admin_member, closed, django_capture_on_commit_callbacks
):
    used = ClusterFactory(name="used", tunnel_channel="specific.used")
    used.delete = _protected  # a blueprint above this app still points at it
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ApplicationError):
        cluster_delete(cluster=used, actor=admin_member)
    assert closed == []
    assert Cluster.objects.filter(name="used").exists()

    cluster = ClusterFactory(name="edge", tunnel_channel="specific.a!b")
    pk = cluster.pk
    with django_capture_on_commit_callbacks(execute=True):
        cluster_delete(cluster=cluster, actor=admin_member)
    assert closed == [
        {"cluster_id": pk, "tunnel_channel": "specific.a!b", "reason": "cluster_deleted"}
    ]


def _protected() -> None:
    raise ProtectedError("referenced", set())


@pytest.mark.django_db
def test_a_revoked_token_is_told_apart_from_a_current_one():
    cluster = ClusterFactory(name="edge")
    opened_with = cluster.token_hash
    assert cluster_token_revocation(cluster_id=cluster.pk, token_hash=opened_with) == ""
    cluster_rotate_token(cluster=cluster, actor=None)
    revocation = cluster_token_revocation(cluster_id=cluster.pk, token_hash=opened_with)
    assert revocation == "token_rotated"
    Cluster.objects.filter(pk=cluster.pk).delete()
    revocation = cluster_token_revocation(cluster_id=cluster.pk, token_hash=opened_with)
    assert revocation == "cluster_deleted"


@pytest.mark.django_db
def test_tunnel_closed_is_audited_with_its_reason():
    tunnel_closed(cluster_name="edge", reason="cluster_deleted")
    event = AuditEvent.objects.get(action="cluster.tunnel_closed")
    assert (event.target_type, event.target_id, event.actor) == ("cluster", "edge", None)
    assert event.details == {"reason": "cluster_deleted"}


# --- the agent's hello ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reported", "stored"),
    [
        (
            {"sandbox": "bubblewrap", "network": "private", "limits": "cgroup"},
            {"sandbox": "bubblewrap", "network": "private", "limits": "cgroup"},
        ),
        (
            {"sandbox": "none", "network": "shared", "limits": "none", "gpu": "yes"},
            {"sandbox": "none", "network": "shared", "limits": "none"},
        ),
        ({"sandbox": "<b>kinda</b>", "network": "x" * 10_000, "limits": 7}, {}),
        ("bubblewrap", {}),
        (None, {}),
    ],
)
def test_hello_stores_only_known_isolation_mechanisms(reported, stored):
    cluster = ClusterFactory(name="edge", isolation={"sandbox": "bubblewrap"})
    tunnel_hello(cluster_id=cluster.pk, version="1" * 100, runtime="local", isolation=reported)
    cluster.refresh_from_db()
    assert cluster.isolation == stored
    assert cluster.agent_version == "1" * 40


@pytest.mark.django_db
def test_clusters_not_isolated_names_those_reporting_no_sandbox():
    ClusterFactory(name="bare", isolation={"sandbox": "none", "network": "shared"})
    ClusterFactory(name="boxed", isolation={"sandbox": "bubblewrap"})
    ClusterFactory(name="silent")
    assert clusters_not_isolated() == {"bare"}
