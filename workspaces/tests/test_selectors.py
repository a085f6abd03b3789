"""Discovery: workspaces read from the data plane, cached briefly, scoped by owner."""

import pytest
from django.utils import timezone

from agent.protocol import BLUEPRINT_ID_TAG, BLUEPRINT_TAG, NAME_TAG, OWNER_TAG
from clusters.tests.factories import ClusterFactory
from workspaces.controlplane import EnvironmentNotFound
from workspaces.selectors import (
    discover,
    discovery_invalidate,
    running_workspace_count,
    workspace_any,
    workspace_for,
    workspaces_for,
)

pytestmark = pytest.mark.django_db


def tags(blueprint, owner_email, name="A workspace"):
    return {
        BLUEPRINT_ID_TAG: str(blueprint.pk),
        BLUEPRINT_TAG: blueprint.key,
        OWNER_TAG: owner_email,
        NAME_TAG: name,
    }


@pytest.fixture
def edge(db):
    return ClusterFactory(name="edge", tunnel_channel="edge-channel", last_seen_at=timezone.now())


def test_a_second_listing_within_the_cache_window_asks_no_cluster(
    control_plane, blueprint, member, edge
):
    control_plane.seed(blueprint.cluster, metadata=tags(blueprint, member.email))

    first = workspaces_for(member)
    asked = control_plane.call_count("list")
    second = workspaces_for(member)

    assert asked == 2  # one listing per cluster
    assert control_plane.call_count("list") == asked
    assert [w.id for w in second.workspaces] == [w.id for w in first.workspaces]


def test_invalidating_a_cluster_asks_that_cluster_again_only(
    control_plane, blueprint, member, edge
):
    workspaces_for(member)
    environment = control_plane.seed(blueprint.cluster, metadata=tags(blueprint, member.email))
    assert workspaces_for(member).workspaces == []  # still the cached (empty) listing

    discovery_invalidate(blueprint.cluster.pk)
    listing = workspaces_for(member)

    assert control_plane.call_count("list") == 3
    assert [w.id for w in listing.workspaces] == [environment.id]


def test_a_fresh_read_bypasses_the_cache(control_plane, blueprint, member):
    workspaces_for(member)
    environment = control_plane.seed(blueprint.cluster, metadata=tags(blueprint, member.email))

    assert [w.id for w in workspaces_for(member, fresh=True).workspaces] == [environment.id]


def test_listings_are_cached_per_owner(control_plane, blueprint, member, stranger):
    control_plane.seed(blueprint.cluster, metadata=tags(blueprint, member.email))
    control_plane.seed(blueprint.cluster, metadata=tags(blueprint, stranger.email))

    mine = workspaces_for(member)
    theirs = workspaces_for(stranger)
    everyone = discover()

    assert [w.owner_email for w in mine.workspaces] == [member.email]
    assert [w.owner_email for w in theirs.workspaces] == [stranger.email]
    assert len(everyone.workspaces) == 2


def test_environments_without_the_workspace_tags_are_ignored(control_plane, blueprint, member):
    control_plane.seed(blueprint.cluster, metadata={OWNER_TAG: member.email, NAME_TAG: "Other"})
    control_plane.seed(blueprint.cluster, metadata={BLUEPRINT_TAG: "webapp"})
    control_plane.seed(blueprint.cluster, metadata={})
    kept = control_plane.seed(blueprint.cluster, metadata=tags(blueprint, member.email))

    assert [w.id for w in workspaces_for(member).workspaces] == [kept.id]
    assert [w.id for w in discover().workspaces] == [kept.id]


def test_owner_is_matched_case_insensitively(control_plane, blueprint, member):
    environment = control_plane.seed(
        blueprint.cluster, metadata=tags(blueprint, "  Builder@EXAMPLE.com")
    )

    assert [w.id for w in workspaces_for(member).workspaces] == [environment.id]
    assert workspace_for(member, environment.id)[0].id == environment.id


def test_unreachable_clusters_are_reported_never_dropped(control_plane, blueprint, member, edge):
    kept = control_plane.seed(blueprint.cluster, metadata=tags(blueprint, member.email))
    control_plane.seed(edge, metadata=tags(blueprint, member.email))
    control_plane.set_unreachable("edge")

    listing = workspaces_for(member)

    assert listing.unreachable == ["edge"]
    assert [w.id for w in listing.workspaces] == [kept.id]


def test_an_unreachable_cluster_is_not_cached_as_empty(control_plane, blueprint, member, edge):
    on_edge = control_plane.seed(edge, metadata=tags(blueprint, member.email))
    control_plane.set_unreachable("edge")
    workspaces_for(member)

    control_plane.set_unreachable("edge", False)

    assert [w.id for w in workspaces_for(member).workspaces] == [on_edge.id]


def test_someone_elses_workspace_is_not_found(control_plane, blueprint, member, stranger):
    theirs = control_plane.seed(blueprint.cluster, metadata=tags(blueprint, stranger.email))

    with pytest.raises(EnvironmentNotFound):
        workspace_for(member, theirs.id)
    assert workspace_any(theirs.id)[0].owner_email == stranger.email


def test_a_workspace_launched_after_a_cached_listing_is_found(control_plane, blueprint, member):
    workspaces_for(member)
    environment = control_plane.seed(blueprint.cluster, metadata=tags(blueprint, member.email))

    workspace, cluster = workspace_for(member, environment.id)

    assert (workspace.id, cluster) == (environment.id, blueprint.cluster)


def test_a_deleted_workspace_still_in_the_cache_is_not_found(control_plane, blueprint, member):
    environment = control_plane.seed(blueprint.cluster, metadata=tags(blueprint, member.email))
    workspaces_for(member)
    control_plane().delete(blueprint.cluster, environment.id)

    with pytest.raises(EnvironmentNotFound):
        workspace_for(member, environment.id)


def test_running_count_counts_running_and_deploying(control_plane, blueprint, member):
    for status in ("running", "deploying", "stopped", "error", "stopping"):
        control_plane.seed(blueprint.cluster, metadata=tags(blueprint, member.email), status=status)

    assert running_workspace_count(member.email) == 2
    assert running_workspace_count("BUILDER@example.com") == 2
