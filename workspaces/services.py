"""Workspace operations. Each one checks the rules, acts through the control plane and audits.

Authorisation is the portal's (ownership, blueprint ACL, limits); execution is the
agent's. Every operation — allowed or refused for a rule — writes an `AuditEvent`.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import User, normalize_email
from accounts.services import user_tags_ensure
from agent.protocol import (
    ACTIVE_STATUSES,
    BLUEPRINT_ID_TAG,
    BLUEPRINT_TAG,
    ENV_DIGEST_TAG,
    NAME_TAG,
    OWNER_TAG,
    RUNNING,
)
from audit.choices import AuditOutcome
from audit.services import audit_record
from blueprints.choices import TabKind
from blueprints.models import Blueprint
from blueprints.selectors import blueprint_for_launch, coming_soon_for
from clusters.models import Cluster
from core import ratelimit
from core.crypto import hash_secret
from core.errors import ApplicationError, RateLimited
from core.models import OrganizationSettings
from workspaces import injection
from workspaces.choices import TicketKind
from workspaces.controlplane import (
    ClusterUnavailable,
    Environment,
    EnvironmentNotFound,
    get_control_plane,
)
from workspaces.events import workspace_event_deleted, workspace_event_publish
from workspaces.models import Ticket, WorkspaceTagAssignment
from workspaces.selectors import (
    Workspace,
    discover,
    discovery_invalidate,
    running_workspace_count,
    workspace_for,
)

MAX_NAME = 60
NAME_OK = re.compile(r"^[\w .'-]{1,60}$", re.UNICODE)
LOG_TAIL_MAX = 2000
TICKET_TTL = timedelta(seconds=30)


def _audit(
    action: str,
    *,
    actor: User | None,
    workspace_id: str,
    outcome=AuditOutcome.SUCCESS,
    ip=None,
    **details,
):
    audit_record(
        action=action,
        actor=actor,
        target_type="workspace",
        target_id=workspace_id,
        ip=ip,
        outcome=outcome,
        details=details,
    )


REFUSED_AUDITS_PER_MINUTE = 10
"""Refused attempts on others' workspaces audited per member and minute (a prober cannot
flood the audit log; the answer stays the same 404 either way)."""


def own_workspace(actor: User, workspace_id: str, *, ip: str | None = None):
    """The member's own workspace `workspace_id` and its cluster (`workspace_for`).

    Someone else's is answered exactly like an unknown id (404 `not_found`), and the
    attempt is audited (`workspace.access_refused`, outcome denied, with the owner), at
    most `REFUSED_AUDITS_PER_MINUTE` times a minute per member.
    """
    try:
        return workspace_for(actor, workspace_id)
    except EnvironmentNotFound:
        others = discover().workspaces
        owner = next((w.owner_email for w in others if w.id == workspace_id), None)
        if (
            owner is not None
            and ratelimit.hit("access_refused", str(actor.pk), REFUSED_AUDITS_PER_MINUTE) is None
        ):
            _audit(
                "workspace.access_refused",
                actor=actor,
                workspace_id=workspace_id,
                outcome=AuditOutcome.DENIED,
                ip=ip,
                owner=owner,
            )
        raise


@contextmanager
def _user_launch_lock(owner_email: str) -> Iterator[None]:
    """Serialise one member's launches and starts across processes so the limit holds."""
    key = f"launch-lock:{normalize_email(owner_email)}"
    deadline = time.monotonic() + 15
    while not cache.add(key, 1, timeout=30):
        if time.monotonic() > deadline:
            raise ApplicationError(
                "Another launch of yours is in progress.", code="launch_in_progress", status=409
            )
        time.sleep(0.05)
    try:
        yield
    finally:
        cache.delete(key)


def render_name(template: str, *, user, blueprint: Blueprint, name: str) -> str:
    """Apply a blueprint's naming template ({user} {blueprint} {random} {name}).

    Placeholders are substituted as they are, never through ``str.format``: a format spec
    or conversion (refused by the blueprint's validation, but perhaps stored before it)
    is ignored, so no template can build a huge string or reach an attribute.
    """
    local_part = re.sub(r"[^a-z0-9]+", "-", user.email.split("@", 1)[0].lower()).strip("-")
    values = {
        "user": local_part or "user",
        "blueprint": blueprint.key,
        "random": secrets.token_hex(2),
        "name": name or blueprint.key,
    }
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        parsed = [("", "user", "", None), ("-", "blueprint", "", None), ("-", "random", "", None)]
    parts: list[str] = []
    for literal, field, _spec, _conversion in parsed:
        parts.append(literal)
        if field is not None:
            parts.append(values.get(field, ""))
        if sum(map(len, parts)) > MAX_NAME:
            break
    return "".join(parts)[:MAX_NAME]


def display_name(blueprint: Blueprint, *, user, name: str) -> str:
    """The name the member typed, or the blueprint's template (which may embed it)."""
    if name and "{name}" not in blueprint.naming_template:
        return name
    return render_name(blueprint.naming_template, user=user, blueprint=blueprint, name=name)


def _injection(blueprint: Blueprint | None, owner_email: str) -> tuple[dict[str, str], str]:
    """The injected variables of `owner_email`'s workspace of `blueprint`, and their digest."""
    env = injection.injected_env(blueprint, injection.owner_of(owner_email))
    return env, injection.injection_digest(env)


def _with_injection(
    cluster: Cluster, workspace: Workspace, call: Callable[[dict[str, str]], Environment]
) -> Environment:
    """Run a (re)start `call` with today's injected variables, tagging their digest first
    (a start that then fails leaves a workspace that is not running: no stale claim)."""
    blueprint = injection.blueprint_with_providers(workspace.blueprint)
    env, digest = _injection(blueprint, workspace.owner_email)
    if workspace.environment.metadata.get(ENV_DIGEST_TAG) != digest:
        get_control_plane().set_metadata(cluster, workspace.id, {ENV_DIGEST_TAG: digest})
    return call(env)


def _clean_name(name: str | None) -> str:
    name = (name or "").strip()
    if name and not NAME_OK.match(name):
        raise ApplicationError(
            "Invalid input.",
            code="invalid",
            extra={"errors": {"name": ["Use up to 60 letters, digits, spaces, '.', '-' or '_'."]}},
        )
    return name


def workspace_launch(
    *,
    actor: User,
    blueprint_key: str,
    name: str = "",
    exact_name: bool = False,
    ip: str | None = None,
) -> Workspace:
    """Launch a workspace from a blueprint for `actor`.

    The name goes through the blueprint's naming template, unless `exact_name` says it
    is already final (the launch dialog shows the templated default and sends back what
    the member kept or typed).

    Refuses with: 400 (unknown blueprint — also one the member may not see, so keys
    cannot be enumerated — or a bad name), 403 `blueprint_forbidden` (a "coming soon"
    blueprint the member sees but may not launch yet), 429 `rate_limited` (launches per
    minute), 409 `workspace_limit_reached` (running workspaces), 503
    `cluster_unavailable`. Launches and ACL/limit refusals are audited.
    """
    name = _clean_name(name)
    blueprint = Blueprint.objects.select_related("cluster").filter(key=blueprint_key).first()
    unknown = ApplicationError(
        "Invalid input.",
        code="invalid",
        extra={"errors": {"blueprint": ["Unknown blueprint."]}},
    )
    if blueprint is None:
        raise unknown

    def denied(reason: str) -> None:
        _audit(
            "workspace.launch",
            actor=actor,
            workspace_id="",
            ip=ip,
            outcome=AuditOutcome.DENIED,
            blueprint=blueprint_key,
            reason=reason,
        )

    if blueprint_for_launch(actor, blueprint_key) is None:
        if not coming_soon_for(actor).filter(key=blueprint_key).exists():
            denied("blueprint_hidden")  # answered exactly like an unknown key
            raise unknown
        denied("blueprint_forbidden")
        raise ApplicationError(
            "You may not launch this blueprint.", code="blueprint_forbidden", status=403
        )
    org = OrganizationSettings.load()
    retry_after = ratelimit.hit("launch", str(actor.pk), org.launch_rate_per_minute)
    if retry_after is not None:
        raise RateLimited(retry_after, "Too many launches.")
    cluster = blueprint.cluster
    if not cluster.is_connected:
        raise ClusterUnavailable(cluster.name)
    with _user_launch_lock(actor.email):
        running = running_workspace_count(actor.email)
        if running >= org.max_running_workspaces_per_user:
            denied("workspace_limit_reached")
            raise ApplicationError(
                f"You already have {running} running workspaces "
                f"(limit {org.max_running_workspaces_per_user}). Stop one first.",
                code="workspace_limit_reached",
                status=409,
                extra={"limit": org.max_running_workspaces_per_user, "running": running},
            )
        spec = injection.spec_of(blueprint)
        secret_env, digest = _injection(blueprint, actor.email)
        metadata = {
            ENV_DIGEST_TAG: digest,
            BLUEPRINT_ID_TAG: str(blueprint.pk),
            BLUEPRINT_TAG: blueprint.key,
            OWNER_TAG: actor.email,
            NAME_TAG: name
            if exact_name and name
            else display_name(blueprint, user=actor, name=name),
        }
        environment = get_control_plane().create(
            cluster, spec=spec, metadata=metadata, secret_env=secret_env
        )
        discovery_invalidate(cluster.pk)
    _audit(
        "workspace.launch",
        actor=actor,
        workspace_id=environment.id,
        ip=ip,
        blueprint=blueprint.key,
        cluster=cluster.name,
        name=metadata[NAME_TAG],
    )
    return _published(Workspace(environment, []))


def _published(workspace: Workspace) -> Workspace:
    """`workspace`, once its owner's and the admins' pages were told (after the commit)."""
    workspace_event_publish(workspace)
    return workspace


def _blueprint_of(workspace: Workspace) -> Blueprint | None:
    return Blueprint.objects.filter(key=workspace.blueprint).first()


def workspace_start(
    *, actor: User, workspace: Workspace, cluster: Cluster, ip: str | None = None
) -> Workspace:
    """Start a stopped workspace; counts against its owner's running limit like a launch.

    The limit is the owner's even when an admin starts it; a refusal is audited.
    """
    if workspace.status not in ACTIVE_STATUSES:
        org = OrganizationSettings.load()
        with _user_launch_lock(workspace.owner_email):
            running = running_workspace_count(workspace.owner_email)
            if running >= org.max_running_workspaces_per_user:
                _audit(
                    "workspace.start",
                    actor=actor,
                    workspace_id=workspace.id,
                    ip=ip,
                    outcome=AuditOutcome.DENIED,
                    reason="workspace_limit_reached",
                )
                raise ApplicationError(
                    f"You already have {running} running workspaces "
                    f"(limit {org.max_running_workspaces_per_user}). Stop one first.",
                    code="workspace_limit_reached",
                    status=409,
                )
            environment = _with_injection(
                cluster,
                workspace,
                lambda env: get_control_plane().start(cluster, workspace.id, secret_env=env),
            )
    else:
        environment = workspace.environment
    discovery_invalidate(cluster.pk)
    _audit("workspace.start", actor=actor, workspace_id=workspace.id, ip=ip)
    return _published(Workspace(environment, workspace.tags))


def workspace_stop(
    *, actor: User, workspace: Workspace, cluster: Cluster, ip: str | None = None
) -> Workspace:
    """Stop a workspace (its files stay)."""
    environment = get_control_plane().stop(cluster, workspace.id)
    discovery_invalidate(cluster.pk)
    _audit("workspace.stop", actor=actor, workspace_id=workspace.id, ip=ip)
    return _published(Workspace(environment, workspace.tags))


def workspace_restart(
    *, actor: User, workspace: Workspace, cluster: Cluster, ip: str | None = None
) -> Workspace:
    """Restart a workspace's service."""
    environment = _with_injection(
        cluster,
        workspace,
        lambda env: get_control_plane().restart(cluster, workspace.id, secret_env=env),
    )
    discovery_invalidate(cluster.pk)
    _audit("workspace.restart", actor=actor, workspace_id=workspace.id, ip=ip)
    return _published(Workspace(environment, workspace.tags))


def workspace_delete(
    *, actor: User, workspace: Workspace, cluster: Cluster, ip: str | None = None
) -> None:
    """Delete a workspace and its files; its tag assignments go with it."""
    get_control_plane().delete(cluster, workspace.id)
    WorkspaceTagAssignment.objects.filter(cluster=cluster, environment_id=workspace.id).delete()
    discovery_invalidate(cluster.pk)
    _audit("workspace.delete", actor=actor, workspace_id=workspace.id, ip=ip)
    workspace_event_deleted(
        workspace_id=workspace.id, cluster=cluster.name, owner_email=workspace.owner_email
    )


def workspace_rename(
    *, actor: User, workspace: Workspace, cluster: Cluster, name: str, ip: str | None = None
) -> Workspace:
    """Change the display name (`RDE_DISPLAY_NAME`)."""
    name = _clean_name(name)
    if not name:
        raise ApplicationError(
            "Invalid input.", code="invalid", extra={"errors": {"name": ["A name is required."]}}
        )
    environment = get_control_plane().set_metadata(cluster, workspace.id, {NAME_TAG: name})
    discovery_invalidate(cluster.pk)
    _audit("workspace.rename", actor=actor, workspace_id=workspace.id, ip=ip, name=name)
    return _published(Workspace(environment, workspace.tags))


def workspace_logs(
    *, actor: User, workspace: Workspace, cluster: Cluster, tail: int = 200, ip: str | None = None
) -> list[str]:
    """The last `tail` lines of the workspace's service log (not stored by the portal)."""
    tail = max(1, min(int(tail), LOG_TAIL_MAX))
    lines = get_control_plane().logs(cluster, workspace.id, tail=tail)
    _audit("workspace.logs", actor=actor, workspace_id=workspace.id, ip=ip, tail=tail)
    return lines


def workspace_set_tags(
    *,
    actor: User,
    workspace: Workspace,
    cluster: Cluster,
    tag_names: list[str],
    ip: str | None = None,
) -> Workspace:
    """Replace the member's tags on a workspace; unknown names are created as their tags."""
    names = sorted({(n or "").strip().lower() for n in tag_names if (n or "").strip()})
    with transaction.atomic():
        tags = user_tags_ensure(user=actor, names=names)
        WorkspaceTagAssignment.objects.filter(
            cluster=cluster, environment_id=workspace.id, tag__user=actor
        ).exclude(tag__in=tags).delete()
        for tag in tags:
            WorkspaceTagAssignment.objects.get_or_create(
                cluster=cluster, environment_id=workspace.id, tag=tag
            )
        _audit("workspace.tags", actor=actor, workspace_id=workspace.id, ip=ip, tags=names)
        tagged = _published(Workspace(workspace.environment, names))
    return tagged


def workspace_upgrade(
    *, actor: User, workspace: Workspace, cluster: Cluster, ip: str | None = None
) -> Workspace:
    """Admin: re-create a workspace from its blueprint's current definition, keeping home/."""
    blueprint = _blueprint_of(workspace)
    if blueprint is None:
        raise ApplicationError(
            "The workspace's blueprint no longer exists.", code="blueprint_missing", status=409
        )
    spec = injection.spec_of(blueprint)
    environment = _with_injection(
        cluster,
        workspace,
        lambda env: get_control_plane().upgrade(cluster, workspace.id, spec=spec, secret_env=env),
    )
    discovery_invalidate(cluster.pk)
    _audit(
        "workspace.upgrade", actor=actor, workspace_id=workspace.id, ip=ip, blueprint=blueprint.key
    )
    return _published(Workspace(environment, workspace.tags))


def workspace_shell_ticket(
    *, actor: User, workspace: Workspace, cluster: Cluster, ip: str | None = None
):
    """A 30-second single-use ticket to open a terminal on a running workspace.

    Refuses with 409 `workspace_not_running` otherwise. Returns (ticket row, raw value).
    """
    if workspace.status != RUNNING:
        raise ApplicationError(
            f"The workspace is {workspace.status}; start it first.",
            code="workspace_not_running",
            status=409,
        )
    return ticket_issue(
        kind=TicketKind.SHELL,
        user=actor,
        environment_id=workspace.id,
        cluster=cluster,
        client_ip=ip,
    )


def workspace_preview_ticket(
    *, actor: User, workspace: Workspace, cluster: Cluster, port, ip: str | None = None
):
    """A 30-second single-use ticket for the preview of one declared port.

    Refuses with 400 (`errors.port`) for a port the blueprint does not declare, and 409
    `workspace_not_running` when the workspace is not running.
    """
    declared = {p["port"] for p in workspace.ports}
    if not isinstance(port, int) or isinstance(port, bool) or port not in declared:
        raise ApplicationError(
            "Invalid input.",
            code="invalid",
            extra={"errors": {"port": [f"Choose one of the declared ports: {sorted(declared)}."]}},
        )
    if workspace.status != RUNNING:
        raise ApplicationError(
            f"The workspace is {workspace.status}; start it first.",
            code="workspace_not_running",
            status=409,
        )
    return ticket_issue(
        kind=TicketKind.PREVIEW,
        user=actor,
        environment_id=workspace.id,
        cluster=cluster,
        port=port,
        client_ip=ip,
    )


# --- one-time tickets (redeemed by the relay) ----------------------------------------------


def ticket_issue(
    *,
    kind: str,
    user,
    environment_id: str,
    cluster: Cluster,
    port: int | None = None,
    client_ip: str | None = None,
) -> tuple[Ticket, str]:
    """A single-use ticket valid 30 s for (user, workspace, kind, port); returns the raw value."""
    raw = secrets.token_urlsafe(32)
    ticket = Ticket.objects.create(
        kind=kind,
        token_hash=hash_secret(raw),
        user=user,
        environment_id=environment_id,
        cluster=cluster,
        port=port,
        expires_at=timezone.now() + TICKET_TTL,
        client_ip=client_ip,
    )
    return ticket, raw


def ticket_redeem(
    *, raw: str, kind: str, environment_id: str | None = None, port: int | None = None
) -> Ticket | None:
    """Consume a ticket: exactly one caller wins, however many race for the same value.

    One conditional UPDATE (`used_at IS NULL AND expires_at > now` and the ticket's member
    still active) decides; the loser, an expired, reused, unknown or mismatched ticket and
    a suspended member's ticket all get None.
    """
    if not raw or len(raw) > 200:
        return None
    if kind == TicketKind.PREVIEW and port is None:
        return None  # a preview ticket only ever opens the port it was issued for
    filters = {"token_hash": hash_secret(raw), "kind": kind}
    if environment_id is not None:
        filters["environment_id"] = environment_id
    if port is not None:
        filters["port"] = port
    now = timezone.now()
    # `user__in` keeps the UPDATE on the ticket table alone: a condition through a join
    # would become `id IN (subquery)`, which PostgreSQL does not re-check against a
    # concurrent redemption, letting two callers win.
    active = User.objects.filter(is_active=True).values("pk")
    won = Ticket.objects.filter(
        used_at__isnull=True, expires_at__gt=now, user__in=active, **filters
    ).update(used_at=now)
    if not won:
        return None
    return Ticket.objects.select_related("user", "cluster").get(token_hash=filters["token_hash"])


def tickets_purge(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete tickets that expired more than `older_than` ago; returns how many."""
    deleted, _ = Ticket.objects.filter(expires_at__lt=timezone.now() - older_than).delete()
    return deleted


EXTRA_SHELL = -1
"""The `tab` of a terminal the builder added with "+": a plain shell beside the layout."""


def workspace_tab_command(
    *, user: User, cluster: Cluster, workspace_id: str, tab: int
) -> str | None:
    """What layout tab `tab` of a workspace runs: None for a plain shell.

    `EXTRA_SHELL` asks for a plain shell outside the layout, which a locked layout
    refuses (400 `tab_invalid`).

    The workspace is read fresh through the control plane; only its owner (or an admin)
    gets an answer, anyone else 404 `not_found`. Its blueprint's layout decides, tab 0
    included; a tab the layout does not have answers 400 `tab_invalid`, and a workspace
    whose blueprint is gone still opens a plain shell in tab 0. An unreachable cluster
    answers 503 `cluster_unavailable`.
    """
    environment = get_control_plane().get(cluster, workspace_id)
    owner = normalize_email(environment.metadata.get(OWNER_TAG, ""))
    if owner != normalize_email(user.email) and not user.is_admin:
        raise EnvironmentNotFound()
    blueprint = _blueprint_of(Workspace(environment))
    tabs = blueprint.layout_tabs if blueprint is not None else []
    if tab == EXTRA_SHELL:
        if blueprint is not None and blueprint.layout_locked:
            raise ApplicationError(
                "This workspace's layout is locked: no terminal can be added.",
                code="tab_invalid",
            )
        return None
    if blueprint is None and tab == 0:
        return None
    if not 0 <= tab < len(tabs):
        raise ApplicationError("This workspace has no such tab.", code="tab_invalid")
    kind = tabs[tab].get("kind")
    if kind in (TabKind.CHAT, TabKind.FILES):
        raise ApplicationError("This tab is not a terminal.", code="tab_invalid")
    if kind == TabKind.COMMAND:
        return tabs[tab]["command"]
    if kind == TabKind.CLAUDE:
        return "claude"
    return None
