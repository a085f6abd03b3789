"""The in-memory control plane keeps the whole control-plane contract."""

import threading

import pytest

from clusters.tests.factories import ClusterFactory
from workspaces.controlplane import (
    ClusterUnavailable,
    EnvironmentNotFound,
    get_control_plane,
)
from workspaces.controlplane.memory import InMemoryControlPlane

pytestmark = pytest.mark.django_db

OWNER = "RDE_OWNER_EMAIL"
SPEC = {"start_command": "serve", "ports": [{"port": 3000, "name": "app"}]}


# --- AgentControlPlane without a tunnel ----------------------------------------------------


# --- InMemoryControlPlane: the whole contract ----------------------------------------------


@pytest.fixture
def plane(control_plane):
    return get_control_plane()


def test_the_configured_control_plane_is_the_in_memory_one(plane):
    assert isinstance(plane, InMemoryControlPlane)


def test_every_instance_shares_one_store(plane, cluster):
    created = plane.create(cluster, spec=SPEC, metadata={OWNER: "a@example.com"}, secret_env={})

    assert get_control_plane().get(cluster, created.id) == created


def test_create_then_read(plane, cluster):
    created = plane.create(
        cluster, spec=SPEC, metadata={OWNER: "a@example.com"}, secret_env={"KEY": "s3cret"}
    )

    assert created.id.startswith("env-")
    assert (created.cluster, created.status, created.phase) == ("main", "running", None)
    assert created.ports == [{"port": 3000, "name": "app"}]
    assert created.created_at
    assert created.spec == SPEC
    assert "s3cret" not in repr(created)
    assert InMemoryControlPlane.secret_env_of("main", created.id) == {"KEY": "s3cret"}


def test_lifecycle_transitions(plane, cluster):
    environment_id = plane.create(cluster, spec=SPEC, metadata={}, secret_env={}).id

    assert plane.stop(cluster, environment_id).status == "stopped"
    assert plane.get(cluster, environment_id).status == "stopped"
    assert plane.start(cluster, environment_id, secret_env={"K": "1"}).status == "running"
    assert plane.stop(cluster, environment_id).status == "stopped"
    assert plane.restart(cluster, environment_id, secret_env={"K": "2"}).status == "running"
    assert InMemoryControlPlane.secret_env_of("main", environment_id) == {"K": "2"}
    plane.delete(cluster, environment_id)
    with pytest.raises(EnvironmentNotFound):
        plane.get(cluster, environment_id)


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("get", {}),
        ("start", {"secret_env": {}}),
        ("stop", {}),
        ("restart", {"secret_env": {}}),
        ("delete", {}),
        ("logs", {"tail": 10}),
        ("set_metadata", {"metadata": {"A": "b"}}),
        ("upgrade", {"spec": SPEC, "secret_env": {}}),
    ],
)
def test_unknown_ids_are_not_found(plane, cluster, method, kwargs):
    with pytest.raises(EnvironmentNotFound):
        getattr(plane, method)(cluster, "env-000000000000", **kwargs)


def test_ids_are_scoped_to_their_cluster(plane, cluster):
    other = ClusterFactory(name="other")
    environment_id = plane.create(cluster, spec=SPEC, metadata={}, secret_env={}).id

    with pytest.raises(EnvironmentNotFound):
        plane.get(other, environment_id)


def test_set_metadata_merges_and_none_removes(plane, cluster):
    environment_id = plane.create(
        cluster, spec=SPEC, metadata={"A": "1", "B": "2"}, secret_env={}
    ).id

    updated = plane.set_metadata(cluster, environment_id, {"B": None, "C": "3", "A": "one"})

    assert updated.metadata == {"A": "one", "C": "3"}
    assert plane.get(cluster, environment_id).metadata == {"A": "one", "C": "3"}


def test_logs_return_the_recorded_tail(plane, cluster):
    environment_id = plane.create(cluster, spec=SPEC, metadata={}, secret_env={}).id
    InMemoryControlPlane.add_log("main", environment_id, "one", "two", "three")

    assert plane.logs(cluster, environment_id, tail=2) == ["two", "three"]
    assert plane.logs(cluster, environment_id, tail=1000)[-3:] == ["one", "two", "three"]


def test_upgrade_replaces_the_spec_and_keeps_the_metadata(plane, cluster):
    environment_id = plane.create(cluster, spec=SPEC, metadata={"A": "1"}, secret_env={}).id
    plane.stop(cluster, environment_id)
    new_spec = {"start_command": "serve --v2", "ports": [{"port": 8080, "name": "web"}]}

    upgraded = plane.upgrade(cluster, environment_id, spec=new_spec, secret_env={"K": "v2"})

    assert (upgraded.spec, upgraded.metadata, upgraded.status) == (new_spec, {"A": "1"}, "running")
    assert upgraded.ports == [{"port": 8080, "name": "web"}]
    assert InMemoryControlPlane.secret_env_of("main", environment_id) == {"K": "v2"}


def test_snapshots_do_not_alias_the_store(plane, cluster):
    created = plane.create(cluster, spec=SPEC, metadata={"A": "1"}, secret_env={})
    created.metadata["A"] = "tampered"
    created.spec["start_command"] = "tampered"

    again = plane.get(cluster, created.id)

    assert (again.metadata, again.spec["start_command"]) == ({"A": "1"}, "serve")


def test_listing_matches_every_tag_and_the_owner_case_insensitively(plane, cluster):
    other = ClusterFactory(name="other")
    wanted = plane.create(
        cluster, spec=SPEC, metadata={OWNER: "Builder@Example.com", "K": "x"}, secret_env={}
    )
    plane.create(
        cluster, spec=SPEC, metadata={OWNER: "builder@example.com", "K": "y"}, secret_env={}
    )
    plane.create(
        cluster, spec=SPEC, metadata={OWNER: "someone@example.com", "K": "x"}, secret_env={}
    )
    elsewhere = plane.create(
        other, spec=SPEC, metadata={OWNER: "builder@example.com", "K": "x"}, secret_env={}
    )

    result = plane.list_environments([cluster, other], {OWNER: "builder@example.com", "K": "x"})

    assert {(e.cluster, e.id) for e in result.environments} == {
        ("main", wanted.id),
        ("other", elsewhere.id),
    }
    assert result.unreachable == []
    assert len(plane.list_environments([cluster], {}).environments) == 3
    assert plane.list_environments([cluster], {"K": "X"}).environments == []


def test_listings_are_summaries_without_the_spec(plane, cluster):
    created = plane.create(cluster, spec=SPEC, metadata={"A": "1"}, secret_env={})

    (listed,) = plane.list_environments([cluster], {}).environments

    assert listed.spec == {}
    assert (listed.id, listed.metadata, listed.ports) == (created.id, {"A": "1"}, created.ports)
    assert plane.get(cluster, created.id).spec == SPEC


def test_an_unreachable_cluster_refuses_every_call_and_is_listed_as_such(plane, cluster):
    other = ClusterFactory(name="other")
    environment_id = plane.create(cluster, spec=SPEC, metadata={}, secret_env={}).id
    plane.create(other, spec=SPEC, metadata={}, secret_env={})
    InMemoryControlPlane.set_unreachable("main")

    for call in (
        lambda: plane.get(cluster, environment_id),
        lambda: plane.stop(cluster, environment_id),
        lambda: plane.create(cluster, spec=SPEC, metadata={}, secret_env={}),
        lambda: plane.logs(cluster, environment_id, tail=5),
    ):
        with pytest.raises(ClusterUnavailable) as raised:
            call()
        assert raised.value.cluster == "main"
    result = plane.list_environments([cluster, other], {})

    assert result.unreachable == ["main"]
    assert [e.cluster for e in result.environments] == ["other"]
    InMemoryControlPlane.set_unreachable("main", False)
    assert plane.get(cluster, environment_id).status == "running"


def test_reset_forgets_everything(plane, cluster):
    environment_id = plane.create(cluster, spec=SPEC, metadata={}, secret_env={"K": "v"}).id
    InMemoryControlPlane.set_unreachable("elsewhere")

    InMemoryControlPlane.reset()

    assert not InMemoryControlPlane.exists("main", environment_id)
    assert InMemoryControlPlane.secret_env_of("main", environment_id) == {}
    assert InMemoryControlPlane.call_count("create") == 0
    assert plane.list_environments([cluster], {}).environments == []


def test_concurrent_writers_lose_nothing(plane, cluster):
    def create_many():
        for _ in range(50):
            plane.create(cluster, spec=SPEC, metadata={OWNER: "a@example.com"}, secret_env={})

    threads = [threading.Thread(target=create_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    environments = plane.list_environments([cluster], {OWNER: "a@example.com"}).environments
    assert len({e.id for e in environments}) == 400
