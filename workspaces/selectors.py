"""Reads of workspaces: discovery in the data plane, scoped by owner (DESIGN §2).

Workspaces are never stored: every read lists environments on the connected clusters
(in parallel), keeps those carrying the blueprint tags and matches the owner by e-mail,
case-insensitively. Listings are cached per cluster and owner for a few seconds; an
agent event on a cluster (or a write through the portal) invalidates that cluster's
entries at once. A cluster that does not answer is reported as unreachable, never
silently dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

from accounts.models import normalize_email
from agent.protocol import ACTIVE_STATUSES, BLUEPRINT_TAG, NAME_TAG, OWNER_TAG
from audit.choices import AuditOutcome
from audit.models import AuditEvent
from clusters.models import Cluster
from workspaces.controlplane import Environment, EnvironmentNotFound, get_control_plane
from workspaces.models import WorkspaceTagAssignment


@dataclass(frozen=True)
class Workspace:
    """A workspace as the API shows it (DESIGN §8 shape), built from its environment."""

    environment: Environment
    tags: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.environment.id

    @property
    def cluster(self) -> str:
        return self.environment.cluster

    @property
    def name(self) -> str:
        return self.environment.metadata.get(NAME_TAG, self.environment.id)

    @property
    def owner_email(self) -> str:
        return self.environment.metadata.get(OWNER_TAG, "")

    @property
    def blueprint(self) -> str:
        return self.environment.metadata.get(BLUEPRINT_TAG, "")

    @property
    def status(self) -> str:
        return self.environment.status

    @property
    def ports(self) -> list[dict]:
        return [{"port": p["port"], "name": p.get("name", "")} for p in self.environment.ports]


@dataclass(frozen=True)
class Discovery:
    workspaces: list[Workspace]
    unreachable: list[str]


def _generation_key(cluster_id: int) -> str:
    return f"discovery-gen:{cluster_id}"


def discovery_invalidate(cluster_id: int) -> None:
    """Forget cached listings of one cluster (called on agent events and portal writes)."""
    key = _generation_key(cluster_id)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=None)


def _cache_key(cluster_id: int, owner: str) -> str:
    generation = cache.get(_generation_key(cluster_id), 0)
    return f"discovery:{cluster_id}:{generation}:{owner or '*'}"


def _is_workspace(environment: Environment) -> bool:
    return bool(environment.metadata.get(BLUEPRINT_TAG) and environment.metadata.get(OWNER_TAG))


def discover(
    *, owner_email: str | None = None, clusters: Iterable[Cluster] | None = None, fresh=False
) -> Discovery:
    """Workspaces on `clusters` (default: all), of `owner_email` when given."""
    owner = normalize_email(owner_email) if owner_email else ""
    clusters = list(clusters if clusters is not None else Cluster.objects.all())
    found: list[Environment] = []
    missing: list[Cluster] = []
    keys = {c.pk: _cache_key(c.pk, owner) for c in clusters}
    cached = {} if fresh else cache.get_many(list(keys.values()))
    for cluster in clusters:
        hit = cached.get(keys[cluster.pk])
        if hit is None:
            missing.append(cluster)
        else:
            found.extend(hit)
    unreachable: list[str] = []
    if missing:
        selector = {OWNER_TAG: owner} if owner else {}
        result = get_control_plane().list_environments(missing, selector)
        unreachable = result.unreachable
        per_cluster: dict[str, list[Environment]] = defaultdict(list)
        for environment in result.environments:
            if _is_workspace(environment):
                per_cluster[environment.cluster].append(environment)
        to_cache = {}
        for cluster in missing:
            if cluster.name in unreachable:
                continue
            envs = per_cluster.get(cluster.name, [])
            found.extend(envs)
            to_cache[keys[cluster.pk]] = envs
        if settings.DISCOVERY_CACHE_SECONDS > 0:
            cache.set_many(to_cache, timeout=settings.DISCOVERY_CACHE_SECONDS)
    found.sort(key=lambda e: (e.created_at or "", e.id), reverse=True)
    return Discovery(_with_tags(found), sorted(unreachable))


def _with_tags(environments: list[Environment]) -> list[Workspace]:
    if not environments:
        return []
    names: dict[tuple[str, str], list[str]] = defaultdict(list)
    rows = WorkspaceTagAssignment.objects.select_related("cluster", "tag").order_by("tag__name")
    if len(environments) <= 500:
        rows = rows.filter(environment_id__in=[e.id for e in environments])
    else:
        # Large listings (the admin view of a big cluster): one scan of the clusters'
        # assignments beats an IN list of thousands of ids.
        rows = rows.filter(cluster__name__in={e.cluster for e in environments})
    for row in rows:
        names[(row.cluster.name, row.environment_id)].append(row.tag.name)
    return [Workspace(e, names.get((e.cluster, e.id), [])) for e in environments]


def workspaces_among(environments: Iterable[Environment]) -> list[Workspace]:
    """The workspaces among `environments` (those carrying the blueprint and owner tags),
    each with its portal-side tags, in the order given (one query for all of them)."""
    return _with_tags([e for e in environments if _is_workspace(e)])


def workspaces_for(user, *, fresh: bool = False) -> Discovery:
    """The member's own workspaces on every cluster."""
    return discover(owner_email=user.email, fresh=fresh)


def workspace_for(user, workspace_id: str) -> tuple[Workspace, Cluster]:
    """One of the member's workspaces, freshly read from its cluster.

    Someone else's workspace, or an unknown id, raises `EnvironmentNotFound` (404) —
    the same answer, so ids cannot be probed.
    """
    listing = workspaces_for(user)
    match = next((w for w in listing.workspaces if w.id == workspace_id), None)
    if match is None:
        listing = workspaces_for(user, fresh=True)
        match = next((w for w in listing.workspaces if w.id == workspace_id), None)
    if match is None:
        raise EnvironmentNotFound()
    cluster = Cluster.objects.get(name=match.cluster)
    environment = get_control_plane().get(cluster, workspace_id)
    if normalize_email(environment.metadata.get(OWNER_TAG, "")) != normalize_email(user.email):
        raise EnvironmentNotFound()
    return _with_tags([environment])[0], cluster


def workspace_search(*, status: str = "", cluster: str = "", owner: str = "") -> Discovery:
    """Every workspace of every cluster (admins), narrowed by exact status, cluster name
    and a case-insensitive part of the owner's e-mail; empty filters keep everything."""
    listing = discover()
    owner = owner.strip().lower()
    found = [
        w
        for w in listing.workspaces
        if (not status or w.status == status)
        and (not cluster or w.cluster == cluster)
        and (not owner or owner in w.owner_email.lower())
    ]
    return Discovery(found, listing.unreachable)


def workspace_any(workspace_id: str) -> tuple[Workspace, Cluster]:
    """Any workspace by id, for admins (every cluster)."""
    listing = discover()
    match = next((w for w in listing.workspaces if w.id == workspace_id), None)
    if match is None:
        listing = discover(fresh=True)
        match = next((w for w in listing.workspaces if w.id == workspace_id), None)
    if match is None:
        raise EnvironmentNotFound()
    cluster = Cluster.objects.get(name=match.cluster)
    environment = get_control_plane().get(cluster, workspace_id)
    return _with_tags([environment])[0], cluster


def running_workspace_count(owner_email: str) -> int:
    """How many workspaces of `owner_email` count against the running limit (fresh read)."""
    listing = discover(owner_email=owner_email, fresh=True)
    return sum(1 for w in listing.workspaces if w.status in ACTIVE_STATUSES)


def clusters_with_workspaces_of(user, cluster_names: Iterable[str]) -> list[str]:
    """Which of `cluster_names` hold a workspace of `user`, as far as the portal knows.

    An unreachable cluster cannot be asked, so the audit trail answers: a successful
    launch by the member there whose workspace was not deleted since.
    """
    names = set(cluster_names)
    if not names:
        return []
    launched = AuditEvent.objects.filter(
        action="workspace.launch",
        outcome=AuditOutcome.SUCCESS,
        actor=user,
        details__cluster__in=sorted(names),
    ).values_list("target_id", "details__cluster")
    deleted = set(
        AuditEvent.objects.filter(
            action="workspace.delete", outcome=AuditOutcome.SUCCESS, target_type="workspace"
        )
        .filter(target_id__in=[workspace_id for workspace_id, _ in launched])
        .values_list("target_id", flat=True)
    )
    return sorted({cluster for workspace_id, cluster in launched if workspace_id not in deleted})
