"""Cluster registration and tokens; single-use tickets, including racing redemptions."""

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from clusters.models import Cluster
from clusters.services import cluster_create, cluster_rotate_token
from core.crypto import hash_secret

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
