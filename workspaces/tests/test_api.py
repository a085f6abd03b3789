"""Workspace API: every endpoint, its refusals and its audit trail (DESIGN §5, §8)."""

import json
import re
from types import SimpleNamespace

import pytest
from django.utils import timezone

from accounts.models import UserTag
from accounts.tests.factories import UserTagFactory
from agent.protocol import BLUEPRINT_ID_TAG, BLUEPRINT_TAG, ENV_DIGEST_TAG, NAME_TAG, OWNER_TAG
from audit.choices import AuditOutcome
from audit.models import AuditEvent
from blueprints.choices import AccessRuleKind, AIProviderKind, BlueprintState
from blueprints.tests.factories import AccessRuleFactory, AIProviderFactory, BlueprintFactory
from clusters.tests.factories import ClusterFactory
from core import ratelimit
from core.crypto import hash_secret
from core.models import OrganizationSettings
from workspaces.choices import TicketKind
from workspaces.models import Ticket, WorkspaceTagAssignment
from workspaces.tests.factories import WorkspaceTagAssignmentFactory

pytestmark = pytest.mark.django_db

SHAPE = {
    "id",
    "name",
    "status",
    "phase",
    "blueprint",
    "owner_email",
    "cluster",
    "created_at",
    "tags",
    "ports",
}
ANTHROPIC_KEY = "sk-ant-never-in-a-response-0001"
OPENAI_KEY = "sk-openai-never-in-a-response-0002"


def seed(control_plane, blueprint, owner_email, *, name="Existing", status="running", cluster=None):
    """A workspace already running on a cluster, tagged as the portal tags its launches."""
    return control_plane.seed(
        cluster or blueprint.cluster,
        metadata={
            BLUEPRINT_ID_TAG: str(blueprint.pk),
            BLUEPRINT_TAG: blueprint.key,
            OWNER_TAG: owner_email,
            NAME_TAG: name,
        },
        status=status,
        spec={"ports": blueprint.ports, "start_command": blueprint.start_command},
    )


def set_limits(**limits):
    org = OrganizationSettings.load()
    for field, value in limits.items():
        setattr(org, field, value)
    org.save()


def launch(client, blueprint="webapp", name=""):
    return client.post("/api/v1/workspaces", {"blueprint": blueprint, "name": name}, format="json")


def audits(action=None):
    events = AuditEvent.objects.order_by("id")
    if action:
        events = events.filter(action=action)
    return list(events)


def assert_shape(body):
    assert body.keys() >= SHAPE
    assert isinstance(body["tags"], list)
    for port in body["ports"]:
        assert set(port) == {"port", "name"}


def stored(control_plane, cluster):
    return control_plane().list_environments([cluster], {}).environments


# --- every endpoint: anonymous, someone else's, non-admin ---------------------------------

USER_ENDPOINTS = [
    ("get", "/api/v1/workspaces/{id}", None),
    ("patch", "/api/v1/workspaces/{id}", {"name": "Hijacked"}),
    ("delete", "/api/v1/workspaces/{id}", None),
    ("post", "/api/v1/workspaces/{id}/start", None),
    ("post", "/api/v1/workspaces/{id}/stop", None),
    ("post", "/api/v1/workspaces/{id}/restart", None),
    ("get", "/api/v1/workspaces/{id}/logs", None),
    ("put", "/api/v1/workspaces/{id}/tags", {"tags": ["hijacked"]}),
    ("post", "/api/v1/workspaces/{id}/shell-ticket", None),
    ("post", "/api/v1/workspaces/{id}/preview-ticket", {"port": 3000}),
]
ADMIN_ENDPOINTS = [
    ("get", "/api/v1/admin/workspaces", None),
    ("get", "/api/v1/admin/workspaces/{id}", None),
    ("delete", "/api/v1/admin/workspaces/{id}", None),
    ("post", "/api/v1/admin/workspaces/{id}/start", None),
    ("post", "/api/v1/admin/workspaces/{id}/stop", None),
    ("post", "/api/v1/admin/workspaces/{id}/restart", None),
    ("post", "/api/v1/admin/workspaces/{id}/upgrade", None),
]
ALL_ENDPOINTS = [
    ("get", "/api/v1/workspaces", None),
    ("post", "/api/v1/workspaces", {"blueprint": "webapp"}),
    *USER_ENDPOINTS,
    *ADMIN_ENDPOINTS,
]


def request(client, method, url, body):
    return (
        getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)
    )


def assert_untouched(control_plane, cluster, environment):
    record = control_plane.record(cluster.name, environment.id)
    assert record["status"] == environment.status
    assert record["metadata"] == environment.metadata
    assert record["spec"] == environment.spec
    assert control_plane.call_count("create") == 0
    assert not WorkspaceTagAssignment.objects.exists()
    assert not Ticket.objects.exists()
    assert [e for e in audits() if e.action != "workspace.access_refused"] == []


@pytest.mark.parametrize(("method", "url", "body"), ALL_ENDPOINTS)
def test_every_endpoint_needs_authentication(
    api_client, control_plane, blueprint, member, method, url, body
):
    environment = seed(control_plane, blueprint, member.email, status="stopped")

    response = request(api_client, method, url.format(id=environment.id), body)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert_untouched(control_plane, blueprint.cluster, environment)


@pytest.mark.parametrize("status", ["running", "stopped"])
@pytest.mark.parametrize(("method", "url", "body"), USER_ENDPOINTS)
def test_someone_elses_workspace_is_not_found_and_nothing_happens(
    member_api, control_plane, blueprint, stranger, method, url, body, status
):
    environment = seed(control_plane, blueprint, stranger.email, name="Theirs", status=status)

    response = request(member_api, method, url.format(id=environment.id), body)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert_untouched(control_plane, blueprint.cluster, environment)
    assert not UserTag.objects.filter(name="hijacked").exists()
    # Nothing happened, and the refused attempt is on record (with the owner).
    (refused,) = audits()
    assert (refused.action, refused.outcome) == ("workspace.access_refused", "denied")
    assert refused.target_id == environment.id and refused.details["owner"] == stranger.email


@pytest.mark.parametrize(("method", "url", "body"), USER_ENDPOINTS)
def test_unknown_workspace_is_not_found(member_api, blueprint, method, url, body):
    response = request(member_api, method, url.format(id="env-000000000000"), body)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(("method", "url", "body"), ADMIN_ENDPOINTS)
def test_admin_endpoints_refuse_a_builder(
    member_api, control_plane, blueprint, member, method, url, body
):
    environment = seed(control_plane, blueprint, member.email, status="stopped")

    response = request(member_api, method, url.format(id=environment.id), body)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert_untouched(control_plane, blueprint.cluster, environment)


# --- list and detail -----------------------------------------------------------------------


def test_list_shows_only_my_workspaces_in_the_documented_shape(
    member_api, control_plane, blueprint, member, stranger
):
    mine = seed(control_plane, blueprint, member.email, name="Mine")
    seed(control_plane, blueprint, stranger.email, name="Theirs")

    response = member_api.get("/api/v1/workspaces")

    assert response.status_code == 200
    body = response.json()
    assert body["unreachable_clusters"] == []
    assert [w["id"] for w in body["results"]] == [mine.id]
    workspace = body["results"][0]
    assert_shape(workspace)
    assert (
        workspace.items()
        >= {
            "name": "Mine",
            "status": "running",
            "blueprint": "webapp",
            "owner_email": member.email,
            "cluster": "main",
            "tags": [],
            "ports": [{"port": 3000, "name": "app"}],
        }.items()
    )


def test_detail_in_the_documented_shape(member_api, control_plane, blueprint, member):
    environment = seed(control_plane, blueprint, member.email, name="Mine")
    WorkspaceTagAssignmentFactory(
        cluster=blueprint.cluster,
        environment_id=environment.id,
        tag=UserTagFactory(user=member, name="frontend"),
    )

    response = member_api.get(f"/api/v1/workspaces/{environment.id}")

    assert response.status_code == 200
    body = response.json()
    assert_shape(body)
    assert (body["id"], body["name"], body["tags"]) == (environment.id, "Mine", ["frontend"])
    assert body["created_at"] == environment.created_at


def test_owner_matches_case_insensitively(member_api, control_plane, blueprint, member):
    assert member.email == "builder@example.com"
    environment = seed(control_plane, blueprint, "Builder@Example.com")

    listing = member_api.get("/api/v1/workspaces").json()
    detail = member_api.get(f"/api/v1/workspaces/{environment.id}")
    stopped = member_api.post(f"/api/v1/workspaces/{environment.id}/stop")

    assert [w["id"] for w in listing["results"]] == [environment.id]
    assert detail.status_code == 200
    assert stopped.status_code == 200
    assert control_plane.record("main", environment.id)["status"] == "stopped"


def test_an_unreachable_cluster_is_reported_and_the_others_still_listed(
    member_api, control_plane, blueprint, member
):
    edge = ClusterFactory(name="edge", tunnel_channel="edge-channel", last_seen_at=timezone.now())
    on_main = seed(control_plane, blueprint, member.email)
    seed(control_plane, blueprint, member.email, cluster=edge)
    control_plane.set_unreachable("edge")

    body = member_api.get("/api/v1/workspaces").json()

    assert body["unreachable_clusters"] == ["edge"]
    assert [w["id"] for w in body["results"]] == [on_main.id]


def test_admin_listing_reports_unreachable_clusters(admin_api, control_plane, blueprint, member):
    ClusterFactory(name="edge")
    environment = seed(control_plane, blueprint, member.email)
    control_plane.set_unreachable("edge")

    body = admin_api.get("/api/v1/admin/workspaces").json()

    assert body["unreachable_clusters"] == ["edge"]
    assert [w["id"] for w in body["results"]] == [environment.id]


# --- launch --------------------------------------------------------------------------------


def test_launch_creates_a_tagged_workspace_and_audits_it(
    member_api, control_plane, blueprint, member
):
    response = launch(member_api, name="My shop")

    assert response.status_code == 201
    body = response.json()
    assert_shape(body)
    assert (
        body.items()
        >= {
            "name": "My shop",
            "status": "running",
            "blueprint": "webapp",
            "owner_email": member.email,
            "cluster": "main",
            "tags": [],
            "ports": [{"port": 3000, "name": "app"}],
        }.items()
    )
    record = control_plane.record("main", body["id"])
    assert record["metadata"] == {
        BLUEPRINT_ID_TAG: str(blueprint.pk),
        BLUEPRINT_TAG: "webapp",
        OWNER_TAG: member.email,
        NAME_TAG: "My shop",
        ENV_DIGEST_TAG: body["env_digest"],
    }
    assert re.fullmatch(r"[0-9a-f]{32}", body["env_digest"])
    assert record["spec"]["start_command"] == blueprint.start_command
    (event,) = audits("workspace.launch")
    assert (event.actor, event.target_id, event.outcome) == (
        member,
        body["id"],
        AuditOutcome.SUCCESS,
    )
    assert event.details["blueprint"] == "webapp"
    assert [w["id"] for w in member_api.get("/api/v1/workspaces").json()["results"]] == [body["id"]]


def test_launch_without_a_name_applies_the_naming_template(member_api, control_plane, cluster):
    BlueprintFactory(key="shop", cluster=cluster, naming_template="{user}-{blueprint}-{random}")

    response = launch(member_api, blueprint="shop")

    assert response.status_code == 201
    assert re.fullmatch(r"builder-shop-[0-9a-f]{4}", response.json()["name"])
    record = control_plane.record("main", response.json()["id"])
    assert record["metadata"][NAME_TAG] == response.json()["name"]


def test_launch_passes_ai_keys_to_the_data_plane_only(
    api_client, control_plane, blueprint, member, admin_member
):
    AIProviderFactory(blueprint=blueprint, provider=AIProviderKind.ANTHROPIC, api_key=ANTHROPIC_KEY)
    AIProviderFactory(
        blueprint=blueprint, provider=AIProviderKind.OPENAI, model="gpt-5", api_key=OPENAI_KEY
    )

    api_client.force_authenticate(member)
    launched = launch(api_client, name="With AI")
    workspace_id = launched.json()["id"]
    responses = [
        launched,
        api_client.get("/api/v1/workspaces"),
        api_client.get(f"/api/v1/workspaces/{workspace_id}"),
        api_client.post(f"/api/v1/workspaces/{workspace_id}/restart"),
        api_client.post(f"/api/v1/workspaces/{workspace_id}/stop"),
        api_client.post(f"/api/v1/workspaces/{workspace_id}/start"),
        api_client.get(f"/api/v1/workspaces/{workspace_id}/logs"),
        api_client.get("/api/v1/me"),
    ]
    api_client.force_authenticate(admin_member)
    responses += [
        api_client.get("/api/v1/admin/workspaces"),
        api_client.get(f"/api/v1/admin/workspaces/{workspace_id}"),
        api_client.post(f"/api/v1/admin/workspaces/{workspace_id}/upgrade"),
    ]

    assert all(r.status_code in (200, 201) for r in responses), [r.status_code for r in responses]
    for response in responses:
        assert ANTHROPIC_KEY not in response.content.decode()
        assert OPENAI_KEY not in response.content.decode()
    injected = control_plane.secret_env_of("main", workspace_id)
    assert injected["ANTHROPIC_API_KEY"] == ANTHROPIC_KEY
    assert injected["OPENAI_API_KEY"] == OPENAI_KEY
    assert injected["OPENAI_MODEL"] == "gpt-5"
    record = control_plane.record("main", workspace_id)
    assert ANTHROPIC_KEY not in json.dumps(record)
    assert OPENAI_KEY not in json.dumps(record)
    assert "OPENAI_MODEL" not in record["spec"]["env"]  # injected at each start instead
    assert all(ANTHROPIC_KEY not in json.dumps(e.details) for e in audits())


def test_launch_of_an_unknown_blueprint_is_invalid(member_api, control_plane, blueprint):
    response = launch(member_api, blueprint="nope")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "blueprint" in response.json()["errors"]
    assert control_plane.call_count("create") == 0


@pytest.mark.parametrize("name", ["<script>", "a/b", "x" * 61])
def test_launch_with_a_bad_name_is_invalid(member_api, control_plane, blueprint, name):
    response = launch(member_api, name=name)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "name" in response.json()["errors"]
    assert control_plane.call_count("create") == 0


def test_launch_refused_by_the_access_rules_is_audited(member_api, control_plane, blueprint):
    AccessRuleFactory(blueprint=blueprint, kind=AccessRuleKind.DOMAIN, value="other.example")
    AccessRuleFactory(blueprint=blueprint, kind=AccessRuleKind.EMAIL, value="boss@example.com")

    response = launch(member_api)
    unknown = member_api.post("/api/v1/workspaces", {"blueprint": "no-such"}, format="json")

    # Answered exactly like an unknown key: blueprint keys cannot be enumerated.
    assert response.status_code == unknown.status_code == 400
    assert response.json() == unknown.json()
    assert control_plane.call_count("create") == 0
    (event,) = audits("workspace.launch")
    assert event.outcome == AuditOutcome.DENIED
    assert event.details["reason"] == "blueprint_hidden"


def test_launch_admitted_by_an_email_rule(member_api, blueprint):
    AccessRuleFactory(blueprint=blueprint, kind=AccessRuleKind.EMAIL, value="builder@example.com")

    assert launch(member_api).status_code == 201


def test_launch_of_a_disabled_blueprint_is_an_unknown_one(member_api, control_plane, blueprint):
    blueprint.state = BlueprintState.DISABLED
    blueprint.save()

    response = launch(member_api)

    assert response.status_code == 400
    assert response.json()["errors"] == {"blueprint": ["Unknown blueprint."]}
    assert control_plane.call_count("create") == 0


def test_a_testing_blueprint_is_for_admins_only(
    api_client, control_plane, blueprint, member, admin_member
):
    blueprint.state = BlueprintState.TESTING
    blueprint.save()

    api_client.force_authenticate(member)
    refused = launch(api_client)
    api_client.force_authenticate(admin_member)
    accepted = launch(api_client)

    assert refused.status_code == 403
    assert refused.json()["code"] == "blueprint_forbidden"
    assert accepted.status_code == 201
    assert accepted.json()["owner_email"] == admin_member.email


def test_launch_over_the_running_limit_is_refused_and_audited(member_api, control_plane, blueprint):
    set_limits(max_running_workspaces_per_user=1)

    first = launch(member_api)
    second = launch(member_api)

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["code"] == "workspace_limit_reached"
    assert (second.json()["limit"], second.json()["running"]) == (1, 1)
    assert len(stored(control_plane, blueprint.cluster)) == 1
    denied = [e for e in audits("workspace.launch") if e.outcome == AuditOutcome.DENIED]
    assert [e.details["reason"] for e in denied] == ["workspace_limit_reached"]


def test_a_stopped_workspace_does_not_count_but_starting_it_again_does(
    member_api, control_plane, blueprint
):
    set_limits(max_running_workspaces_per_user=1)
    first = launch(member_api).json()["id"]
    assert member_api.post(f"/api/v1/workspaces/{first}/stop").status_code == 200

    second = launch(member_api)
    restarted = member_api.post(f"/api/v1/workspaces/{first}/start")

    assert second.status_code == 201
    assert restarted.status_code == 409
    assert restarted.json()["code"] == "workspace_limit_reached"
    assert control_plane.record("main", first)["status"] == "stopped"
    (denied,) = [e for e in audits("workspace.start") if e.outcome == AuditOutcome.DENIED]
    assert denied.target_id == first


def test_launch_rate_is_limited_with_retry_after(member_api, control_plane, blueprint, monkeypatch):
    set_limits(launch_rate_per_minute=2, max_running_workspaces_per_user=10)
    # The clock stands thirty seconds into a one-minute window: all three launches share it.
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_700_000_010.0))

    responses = [launch(member_api) for _ in range(3)]

    assert [r.status_code for r in responses] == [201, 201, 429]
    assert responses[2].json()["code"] == "rate_limited"
    assert responses[2]["Retry-After"] == "30"
    assert len(stored(control_plane, blueprint.cluster)) == 2


def test_launch_on_a_disconnected_cluster_is_unavailable(member_api, control_plane):
    BlueprintFactory(key="far", cluster=ClusterFactory(name="far"))

    response = launch(member_api, blueprint="far")

    assert response.status_code == 503
    assert response.json()["code"] == "cluster_unavailable"
    assert control_plane.call_count("create") == 0


def test_launch_on_an_unreachable_cluster_is_unavailable(member_api, control_plane, blueprint):
    control_plane.set_unreachable("main")

    response = launch(member_api)

    assert response.status_code == 503
    assert response.json()["code"] == "cluster_unavailable"


# --- rename, delete, lifecycle, logs, tags -------------------------------------------------


def test_rename(member_api, control_plane, blueprint, member):
    environment = seed(control_plane, blueprint, member.email, name="Old")

    response = member_api.patch(
        f"/api/v1/workspaces/{environment.id}", {"name": "New name"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["name"] == "New name"
    assert control_plane.record("main", environment.id)["metadata"][NAME_TAG] == "New name"
    assert member_api.get("/api/v1/workspaces").json()["results"][0]["name"] == "New name"
    (event,) = audits("workspace.rename")
    assert (event.target_id, event.details["name"]) == (environment.id, "New name")


def test_rename_to_a_bad_name_is_invalid(member_api, control_plane, blueprint, member):
    environment = seed(control_plane, blueprint, member.email, name="Old")

    response = member_api.patch(
        f"/api/v1/workspaces/{environment.id}", {"name": "<script>"}, format="json"
    )

    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    assert control_plane.record("main", environment.id)["metadata"][NAME_TAG] == "Old"


def test_delete_removes_the_workspace_and_its_tags(member_api, control_plane, blueprint, member):
    environment = seed(control_plane, blueprint, member.email)
    WorkspaceTagAssignmentFactory(
        cluster=blueprint.cluster, environment_id=environment.id, tag__user=member
    )

    response = member_api.delete(f"/api/v1/workspaces/{environment.id}")

    assert response.status_code == 204
    assert not control_plane.exists("main", environment.id)
    assert not WorkspaceTagAssignment.objects.exists()
    assert member_api.get("/api/v1/workspaces").json()["results"] == []
    (event,) = audits("workspace.delete")
    assert (event.actor, event.target_id) == (member, environment.id)


@pytest.mark.parametrize(
    ("operation", "before", "after"),
    [
        ("start", "stopped", "running"),
        ("stop", "running", "stopped"),
        ("restart", "running", "running"),
    ],
)
def test_lifecycle(member_api, control_plane, blueprint, member, operation, before, after):
    environment = seed(control_plane, blueprint, member.email, status=before)

    response = member_api.post(f"/api/v1/workspaces/{environment.id}/{operation}")

    assert response.status_code == 200
    assert_shape(response.json())
    assert response.json()["status"] == after
    assert control_plane.record("main", environment.id)["status"] == after
    assert member_api.get(f"/api/v1/workspaces/{environment.id}").json()["status"] == after
    (event,) = audits(f"workspace.{operation}")
    assert (event.actor, event.target_id, event.outcome) == (
        member,
        environment.id,
        AuditOutcome.SUCCESS,
    )


def test_start_and_restart_pass_the_ai_keys_again(member_api, control_plane, blueprint, member):
    environment = seed(control_plane, blueprint, member.email, status="stopped")
    AIProviderFactory(blueprint=blueprint, api_key=ANTHROPIC_KEY)

    started = member_api.post(f"/api/v1/workspaces/{environment.id}/start")

    assert started.status_code == 200
    assert ANTHROPIC_KEY not in started.content.decode()
    assert control_plane.secret_env_of("main", environment.id)["ANTHROPIC_API_KEY"] == (
        ANTHROPIC_KEY
    )
    digest = started.json()["env_digest"]
    AIProviderFactory(blueprint=blueprint, provider=AIProviderKind.OPENAI, api_key=OPENAI_KEY)

    restarted = member_api.post(f"/api/v1/workspaces/{environment.id}/restart")

    assert control_plane.secret_env_of("main", environment.id)["OPENAI_API_KEY"] == OPENAI_KEY
    assert restarted.json()["env_digest"] not in (None, digest)


def test_logs(member_api, control_plane, blueprint, member):
    environment = seed(control_plane, blueprint, member.email)
    control_plane.add_log("main", environment.id, "GET / 200", "GET /favicon.ico 404")

    response = member_api.get(f"/api/v1/workspaces/{environment.id}/logs?tail=2")

    assert response.status_code == 200
    assert response.json() == {"lines": ["GET / 200", "GET /favicon.ico 404"]}
    (event,) = audits("workspace.logs")
    assert (event.target_id, event.details["tail"]) == (environment.id, 2)


def test_tags_replace_the_assignment_and_create_missing_tags(
    member_api, control_plane, blueprint, member, stranger
):
    environment = seed(control_plane, blueprint, member.email)
    existing = UserTagFactory(user=member, name="demo")
    UserTagFactory(user=stranger, name="frontend")
    url = f"/api/v1/workspaces/{environment.id}/tags"

    first = member_api.put(url, {"tags": ["Frontend", "demo"]}, format="json")
    second = member_api.put(url, {"tags": ["demo", "api"]}, format="json")

    assert first.status_code == 200
    assert first.json()["tags"] == ["demo", "frontend"]
    assert second.json()["tags"] == ["api", "demo"]
    assert sorted(UserTag.objects.filter(user=member).values_list("name", flat=True)) == [
        "api",
        "demo",
        "frontend",
    ]
    assert UserTag.objects.filter(user=member, name="demo").get() == existing
    assert member_api.get(f"/api/v1/workspaces/{environment.id}").json()["tags"] == ["api", "demo"]
    assert member_api.get("/api/v1/workspaces").json()["results"][0]["tags"] == ["api", "demo"]
    assert [e.details["tags"] for e in audits("workspace.tags")] == [
        ["demo", "frontend"],
        ["api", "demo"],
    ]


def test_shell_ticket(member_api, control_plane, blueprint, member):
    environment = seed(control_plane, blueprint, member.email)

    response = member_api.post(f"/api/v1/workspaces/{environment.id}/shell-ticket")

    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"ticket", "expires_at", "url"}
    assert body["url"].startswith("ws://portal.localhost:8000/ws/terminal/?ticket=")
    ticket = Ticket.objects.get()
    assert ticket.token_hash == hash_secret(body["ticket"])
    assert (ticket.kind, ticket.user, ticket.environment_id, ticket.cluster, ticket.port) == (
        TicketKind.SHELL,
        member,
        environment.id,
        blueprint.cluster,
        None,
    )


def test_preview_ticket(member_api, control_plane, blueprint, member):
    environment = seed(control_plane, blueprint, member.email)

    response = member_api.post(
        f"/api/v1/workspaces/{environment.id}/preview-ticket", {"port": 3000}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["url"].startswith(
        f"http://{environment.id}-3000.preview.portal.localhost:8000/__enclave__/auth?ticket="
    )
    ticket = Ticket.objects.get()
    assert ticket.token_hash == hash_secret(body["ticket"])
    assert (ticket.kind, ticket.environment_id, ticket.port) == (
        TicketKind.PREVIEW,
        environment.id,
        3000,
    )


def test_preview_ticket_for_an_undeclared_port_is_invalid(
    member_api, control_plane, blueprint, member
):
    environment = seed(control_plane, blueprint, member.email)

    response = member_api.post(
        f"/api/v1/workspaces/{environment.id}/preview-ticket", {"port": 22}, format="json"
    )

    assert response.status_code == 400
    assert "port" in response.json()["errors"]
    assert not Ticket.objects.exists()


@pytest.mark.parametrize(
    ("path", "body"), [("shell-ticket", None), ("preview-ticket", {"port": 3000})]
)
def test_tickets_need_a_running_workspace(member_api, control_plane, blueprint, member, path, body):
    environment = seed(control_plane, blueprint, member.email, status="stopped")

    response = member_api.post(f"/api/v1/workspaces/{environment.id}/{path}", body, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "workspace_not_running"
    assert not Ticket.objects.exists()


def test_me_reports_running_workspaces_and_the_limit(member_api, control_plane, blueprint, member):
    set_limits(max_running_workspaces_per_user=4)
    seed(control_plane, blueprint, member.email, status="running")
    seed(control_plane, blueprint, "BUILDER@example.com", status="deploying")
    seed(control_plane, blueprint, member.email, status="stopped")
    seed(control_plane, blueprint, "someone@example.com", status="running")

    body = member_api.get("/api/v1/me").json()

    assert (body["running_workspaces"], body["workspace_limit"]) == (2, 4)


# --- admin ---------------------------------------------------------------------------------


@pytest.fixture
def estate(control_plane, blueprint, member, stranger):
    """Workspaces of two members on two clusters."""
    edge = ClusterFactory(name="edge", tunnel_channel="edge-channel", last_seen_at=timezone.now())
    return {
        "mine": seed(control_plane, blueprint, member.email, name="Mine"),
        "theirs": seed(control_plane, blueprint, stranger.email, name="Theirs", status="stopped"),
        "edge": seed(control_plane, blueprint, member.email, name="On edge", cluster=edge),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"mine", "theirs", "edge"}),
        ("?status=stopped", {"theirs"}),
        ("?cluster=edge", {"edge"}),
        ("?owner=BUILDER@example.com", {"mine", "edge"}),
        ("?owner=stranger@example.com&status=running", set()),
    ],
)
def test_admin_lists_every_workspace_with_filters(admin_api, estate, query, expected):
    response = admin_api.get(f"/api/v1/admin/workspaces{query}")

    assert response.status_code == 200
    ids = {w["id"] for w in response.json()["results"]}
    assert ids == {estate[k].id for k in expected}
    for workspace in response.json()["results"]:
        assert_shape(workspace)


def test_admin_detail_of_anyones_workspace(admin_api, estate, stranger):
    response = admin_api.get(f"/api/v1/admin/workspaces/{estate['theirs'].id}")

    assert response.status_code == 200
    assert_shape(response.json())
    assert response.json()["owner_email"] == stranger.email


def test_admin_detail_of_an_unknown_workspace(admin_api, estate):
    response = admin_api.get("/api/v1/admin/workspaces/env-000000000000")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_admin_delete(admin_api, control_plane, estate, admin_member):
    response = admin_api.delete(f"/api/v1/admin/workspaces/{estate['theirs'].id}")

    assert response.status_code == 204
    assert not control_plane.exists("main", estate["theirs"].id)
    assert control_plane.exists("main", estate["mine"].id)
    (event,) = audits("workspace.delete")
    assert (event.actor, event.target_id) == (admin_member, estate["theirs"].id)


@pytest.mark.parametrize(
    ("operation", "workspace", "after"),
    [("start", "theirs", "running"), ("stop", "mine", "stopped"), ("restart", "edge", "running")],
)
def test_admin_lifecycle(
    admin_api, control_plane, estate, admin_member, operation, workspace, after
):
    environment = estate[workspace]

    response = admin_api.post(f"/api/v1/admin/workspaces/{environment.id}/{operation}")

    assert response.status_code == 200
    assert response.json()["status"] == after
    assert control_plane.record(environment.cluster, environment.id)["status"] == after
    (event,) = audits(f"workspace.{operation}")
    assert (event.actor, event.target_id) == (admin_member, environment.id)


def test_admin_start_counts_against_the_owners_limit(admin_api, control_plane, blueprint, member):
    set_limits(max_running_workspaces_per_user=1)
    seed(control_plane, blueprint, member.email, status="running")
    stopped = seed(control_plane, blueprint, member.email, status="stopped")

    response = admin_api.post(f"/api/v1/admin/workspaces/{stopped.id}/start")

    assert response.status_code == 409
    assert response.json()["code"] == "workspace_limit_reached"
    assert control_plane.record("main", stopped.id)["status"] == "stopped"


def test_admin_start_is_not_limited_by_the_admins_own_workspaces(
    admin_api, control_plane, blueprint, member, admin_member
):
    set_limits(max_running_workspaces_per_user=1)
    seed(control_plane, blueprint, admin_member.email, status="running")
    stopped = seed(control_plane, blueprint, member.email, status="stopped")

    response = admin_api.post(f"/api/v1/admin/workspaces/{stopped.id}/start")

    assert response.status_code == 200
    assert control_plane.record("main", stopped.id)["status"] == "running"


def test_admin_upgrade_applies_the_blueprints_current_definition(
    admin_api, control_plane, blueprint, estate, admin_member
):
    blueprint.start_command = "exec npm run dev"
    blueprint.ports = [{"port": 5173, "name": "vite"}]
    blueprint.save()
    AIProviderFactory(blueprint=blueprint, api_key=ANTHROPIC_KEY)
    environment = estate["theirs"]

    response = admin_api.post(f"/api/v1/admin/workspaces/{environment.id}/upgrade")

    assert response.status_code == 200
    assert response.json()["ports"] == [{"port": 5173, "name": "vite"}]
    assert ANTHROPIC_KEY not in response.content.decode()
    record = control_plane.record("main", environment.id)
    assert record["spec"]["start_command"] == "exec npm run dev"
    assert {k: v for k, v in record["metadata"].items() if k != ENV_DIGEST_TAG} == (
        environment.metadata
    )
    assert control_plane.secret_env_of("main", environment.id)["ANTHROPIC_API_KEY"] == (
        ANTHROPIC_KEY
    )
    (event,) = audits("workspace.upgrade")
    assert (event.actor, event.target_id, event.details["blueprint"]) == (
        admin_member,
        environment.id,
        "webapp",
    )


def test_upgrade_of_a_workspace_whose_blueprint_is_gone(admin_api, control_plane, cluster, member):
    gone = BlueprintFactory(key="gone", cluster=cluster)
    environment = seed(control_plane, gone, member.email)
    gone.delete()

    response = admin_api.post(f"/api/v1/admin/workspaces/{environment.id}/upgrade")

    assert response.status_code == 409
    assert response.json()["code"] == "blueprint_missing"


def test_preview_ticket_opens_at_a_path(member_api, control_plane, blueprint, member):
    environment = seed(control_plane, blueprint, member.email)
    url = f"/api/v1/workspaces/{environment.id}/preview-ticket"

    response = member_api.post(url, {"port": 3000, "path": "/cart?id=2#top"}, format="json")

    assert response.status_code == 201
    assert "&next=%2Fcart%3Fid%3D2%23top" in response.json()["url"]
    for bad in ("//evil.example.com", "https://evil.example.com", "cart", "/a b"):
        refused = member_api.post(url, {"port": 3000, "path": bad}, format="json")
        assert refused.status_code == 400 and "path" in refused.json()["errors"], bad


def test_refused_attempts_are_audited_at_most_ten_a_minute(
    member_api, control_plane, blueprint, stranger
):
    environment = seed(control_plane, blueprint, stranger.email, name="Theirs", status="running")
    for _ in range(15):
        assert member_api.get(f"/api/v1/workspaces/{environment.id}").status_code == 404
    assert len(audits("workspace.access_refused")) == 10
    # An id nobody has is not an attempt on anyone's workspace: nothing recorded.
    assert member_api.get("/api/v1/workspaces/env-000000000000").status_code == 404
    assert len(audits("workspace.access_refused")) == 10
