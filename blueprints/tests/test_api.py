"""API of the builders' blueprint catalog and the admins' blueprint management."""

import copy

import pytest

from audit.models import AuditEvent
from blueprints.choices import AccessRuleKind, BlueprintState
from blueprints.models import AIProvider, Blueprint
from blueprints.tests.factories import AccessRuleFactory, AIProviderFactory, BlueprintFactory
from clusters.tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-ant-very-secret-key-0001"

PAYLOAD = {
    "key": "react-app",
    "name": "React app",
    "description": "A React starter",
    "icon": "⚛️",
    "category": "web",
    "state": "enabled",
    "cluster": "local",
    "image": "",
    "start_command": "npm run dev -- --port $PORT",
    "setup_script": "npm install",
    "git_repository": "https://github.com/example/react-starter.git",
    "env": {"NODE_ENV": "development"},
    "ports": [{"port": 3000, "name": "app"}],
    "resources": {"cpu": "2", "memory": "4Gi", "storage": "20Gi"},
    "naming_template": "{user}-{blueprint}-{random}",
    "layout": {
        "tabs": [
            {"kind": "terminal", "title": "Terminal"},
            {"kind": "claude", "title": "Claude"},
            {"kind": "chat", "title": "Chat"},
        ],
        "locked": True,
        "preview": True,
        "path_bar": False,
    },
    "chat_system_prompt": "Be brief.",
    "data_sources": [{"kind": "postgresql", "name": "Orders", "setup": "Use $ORDERS_URL."}],
    "opencode_default_model": "anthropic/claude-sonnet-4-6",
    "access_rules": [{"kind": "domain", "value": "example.com"}],
    "ai_providers": [{"provider": "anthropic", "model": "claude-sonnet-4-6", "api_key": SECRET}],
}


@pytest.fixture
def cluster(db):
    return ClusterFactory(name="local")


def payload(**changes) -> dict:
    data = copy.deepcopy(PAYLOAD)
    data.update(changes)
    return data


# --- catalog -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/blueprints", "/api/v1/blueprints/any"])
def test_catalog_anonymous_is_not_authenticated(api_client, url):
    response = api_client.get(url)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_catalog_lists_what_the_member_may_see(api_client, member):
    visible = BlueprintFactory(key="open", category="web")
    AIProviderFactory(blueprint=visible, api_key=SECRET)
    AccessRuleFactory(blueprint=BlueprintFactory(key="mine"), value="example.com")
    AccessRuleFactory(blueprint=BlueprintFactory(key="elsewhere"), value="other.org")
    BlueprintFactory(key="testing", state=BlueprintState.TESTING)
    BlueprintFactory(key="off", state=BlueprintState.DISABLED)
    api_client.force_authenticate(member)

    response = api_client.get("/api/v1/blueprints")

    assert response.status_code == 200
    assert {b["key"] for b in response.json()} == {"open", "mine"}
    entry = next(b for b in response.json() if b["key"] == "open")
    assert entry["ports"] == [{"port": 3000, "name": "app"}]
    assert entry["resources"] == {"cpu": "1", "memory": "2Gi", "storage": "10Gi"}
    assert entry["layout"] == {
        "tabs": [{"kind": "terminal", "title": "Terminal"}],
        "locked": False,
        "preview": True,
        "path_bar": True,
    }
    assert entry["ai_providers"] == [
        {"provider": "anthropic", "model": "claude-sonnet-4-6", "enabled": True}
    ]
    assert SECRET not in response.content.decode()


def test_catalog_detail(api_client, member):
    BlueprintFactory(key="open")
    api_client.force_authenticate(member)

    response = api_client.get("/api/v1/blueprints/open")

    assert response.status_code == 200
    assert response.json()["key"] == "open"
    assert "cluster" not in response.json()


@pytest.mark.parametrize("state", [BlueprintState.TESTING, BlueprintState.DISABLED])
def test_catalog_detail_invisible_is_not_found(api_client, member, state):
    BlueprintFactory(key="hidden", state=state)
    AccessRuleFactory(blueprint=BlueprintFactory(key="restricted"), value="other.org")
    api_client.force_authenticate(member)

    assert api_client.get("/api/v1/blueprints/hidden").status_code == 404
    response = api_client.get("/api/v1/blueprints/restricted")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- admin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/admin/blueprints"),
        ("post", "/api/v1/admin/blueprints"),
        ("get", "/api/v1/admin/blueprints/bp"),
        ("patch", "/api/v1/admin/blueprints/bp"),
        ("put", "/api/v1/admin/blueprints/bp"),
        ("delete", "/api/v1/admin/blueprints/bp"),
        ("post", "/api/v1/admin/blueprints/bp/enable"),
        ("post", "/api/v1/admin/blueprints/bp/disable"),
        ("post", "/api/v1/admin/blueprints/bp/set-testing"),
    ],
)
def test_admin_blueprints_need_an_admin(api_client, member, method, url):
    blueprint = BlueprintFactory(key="bp", state=BlueprintState.TESTING)

    anonymous = getattr(api_client, method)(url, {}, format="json")
    api_client.force_authenticate(member)
    builder = getattr(api_client, method)(url, {"name": "changed"}, format="json")

    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    assert builder.status_code == 403
    assert builder.json()["code"] == "permission_denied"
    blueprint.refresh_from_db()
    assert (blueprint.name, blueprint.state) != ("changed", BlueprintState.ENABLED)
    assert Blueprint.objects.filter(key="bp", state=BlueprintState.TESTING).exists()


def test_admin_create_full_shape(api_client, admin_member, cluster):
    api_client.force_authenticate(admin_member)

    response = api_client.post("/api/v1/admin/blueprints", PAYLOAD, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    expected = {k: v for k, v in PAYLOAD.items() if k != "ai_providers"}
    assert {k: body[k] for k in expected} == expected
    assert body["ai_providers"] == [
        {
            "provider": "anthropic",
            "enabled": True,
            "auth_mode": "api_key",
            "model": "claude-sonnet-4-6",
            "endpoint_url": "",
            "has_api_key": True,
        }
    ]
    assert SECRET not in response.content.decode()
    blueprint = Blueprint.objects.get(key="react-app")
    assert blueprint.cpu == "2"
    assert blueprint.layout_locked is True
    assert blueprint.ai_providers.get().api_key == SECRET
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"blueprint.create", "blueprint.access_rules", "ai_provider.create"} <= actions
    assert SECRET not in str(list(AuditEvent.objects.values_list("details", flat=True)))


def test_admin_key_is_never_returned(api_client, admin_member, cluster):
    api_client.force_authenticate(admin_member)
    api_client.post("/api/v1/admin/blueprints", PAYLOAD, format="json")

    responses = [
        api_client.get("/api/v1/admin/blueprints"),
        api_client.get("/api/v1/admin/blueprints/react-app"),
        api_client.patch("/api/v1/admin/blueprints/react-app", {"name": "R"}, format="json"),
        api_client.post("/api/v1/admin/blueprints/react-app/disable"),
        api_client.post("/api/v1/admin/blueprints/react-app/enable"),
        api_client.get("/api/v1/blueprints"),
        api_client.get("/api/v1/blueprints/react-app"),
    ]

    assert [r.status_code for r in responses] == [200] * 7
    for response in responses:
        assert SECRET not in response.content.decode()
        assert '"api_key":' not in response.content.decode()


def test_admin_invalid_provider_saves_nothing(api_client, admin_member, cluster):
    api_client.force_authenticate(admin_member)
    data = payload(ai_providers=[{"provider": "anthropic", "model": "m"}])

    response = api_client.post("/api/v1/admin/blueprints", data, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "api_key" in body["errors"]["ai_providers"][0]
    assert not Blueprint.objects.filter(key="react-app").exists()
    assert not AuditEvent.objects.filter(action__startswith="blueprint.").exists()


def test_admin_update_with_invalid_provider_changes_nothing(api_client, admin_member, cluster):
    blueprint = BlueprintFactory(key="bp", name="Before", cluster=cluster)
    AIProviderFactory(blueprint=blueprint, provider="openai", api_key=SECRET)
    AccessRuleFactory(blueprint=blueprint, value="example.com")
    api_client.force_authenticate(admin_member)

    response = api_client.patch(
        "/api/v1/admin/blueprints/bp",
        {
            "name": "After",
            "access_rules": [],
            "ai_providers": [{"provider": "custom", "endpoint_url": ""}],
        },
        format="json",
    )

    assert response.status_code == 400
    assert "endpoint_url" in response.json()["errors"]["ai_providers"][0]
    blueprint.refresh_from_db()
    assert blueprint.name == "Before"
    assert list(blueprint.ai_providers.values_list("provider", "api_key")) == [("openai", SECRET)]
    assert blueprint.access_rules.count() == 1


def test_admin_update_keeps_key_and_removes_unlisted(api_client, admin_member, cluster):
    blueprint = BlueprintFactory(key="bp", cluster=cluster)
    AIProviderFactory(blueprint=blueprint, provider="anthropic", api_key=SECRET)
    AIProviderFactory(blueprint=blueprint, provider="openai", api_key="sk-openai-1")
    api_client.force_authenticate(admin_member)

    response = api_client.patch(
        "/api/v1/admin/blueprints/bp",
        {"ai_providers": [{"provider": "anthropic", "model": "claude-opus-4-1", "enabled": True}]},
        format="json",
    )

    assert response.status_code == 200, response.json()
    provider = AIProvider.objects.get(blueprint=blueprint)
    assert (provider.provider, provider.model, provider.api_key) == (
        "anthropic",
        "claude-opus-4-1",
        SECRET,
    )
    assert response.json()["ai_providers"][0]["has_api_key"] is True
    assert AuditEvent.objects.filter(action="ai_provider.delete").exists()


def test_admin_update_replaces_access_rules_and_fields(api_client, admin_member, cluster):
    blueprint = BlueprintFactory(key="bp", cluster=cluster)
    AccessRuleFactory(blueprint=blueprint, value="example.com")
    api_client.force_authenticate(admin_member)

    response = api_client.patch(
        "/api/v1/admin/blueprints/bp",
        {
            "access_rules": [{"kind": "email", "value": "Ann@Example.com"}],
            "resources": {"memory": "8Gi"},
            "env": {"A": "1"},
            "network": "none",
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["network"] == "none"
    assert response.json()["access_rules"] == [{"kind": "email", "value": "ann@example.com"}]
    assert response.json()["resources"] == {"cpu": "1", "memory": "8Gi", "storage": "10Gi"}
    assert list(blueprint.access_rules.values_list("kind", "value")) == [
        (AccessRuleKind.EMAIL, "ann@example.com")
    ]
    assert AuditEvent.objects.filter(action="blueprint.update").exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cluster": "nowhere"}, "cluster"),
        ({"env": {"PATH": "/x"}}, "env"),
        ({"ports": [{"port": 70000, "name": "app"}]}, "ports"),
        ({"resources": {"cpu": "lots", "memory": "1Gi", "storage": "1Gi"}}, "cpu"),
        ({"naming_template": "{owner}"}, "naming_template"),
        ({"state": "on"}, "state"),
        ({"git_repository": "ftp://x"}, "git_repository"),
        ({"opencode_default_model": "gpt-4o"}, "opencode_default_model"),
        ({"data_sources": [{"kind": "oracle", "name": "X"}]}, "data_sources"),
        ({"env": {"ANTHROPIC_API_KEY": "sk-in-plain-env"}}, "env"),
        ({"ports": [{"port": 4096, "name": "app"}]}, "ports"),
        ({"key": ""}, "key"),
        ({"network": "intranet"}, "network"),
    ],
)
def test_admin_create_invalid(api_client, admin_member, cluster, changes, field):
    api_client.force_authenticate(admin_member)

    response = api_client.post("/api/v1/admin/blueprints", payload(**changes), format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert field in body["errors"] or field in body["errors"].get("resources", {})
    assert not Blueprint.objects.exists()


def test_admin_invalid_access_rule_saves_nothing(api_client, admin_member, cluster):
    api_client.force_authenticate(admin_member)
    data = payload(access_rules=[{"kind": "email", "value": "not-an-email"}])

    response = api_client.post("/api/v1/admin/blueprints", data, format="json")

    assert response.status_code == 400
    assert "value" in response.json()["errors"]["access_rules"][0]
    assert not Blueprint.objects.exists()


def test_admin_duplicate_key(api_client, admin_member, cluster):
    BlueprintFactory(key="react-app", cluster=cluster)
    api_client.force_authenticate(admin_member)

    response = api_client.post("/api/v1/admin/blueprints", PAYLOAD, format="json")

    assert response.status_code == 400
    assert "key" in response.json()["errors"]


def test_admin_key_cannot_change(api_client, admin_member, cluster):
    BlueprintFactory(key="bp", cluster=cluster)
    api_client.force_authenticate(admin_member)

    response = api_client.patch("/api/v1/admin/blueprints/bp", {"key": "other"}, format="json")

    assert response.status_code == 400
    assert "key" in response.json()["errors"]
    assert Blueprint.objects.filter(key="bp").exists()


@pytest.mark.parametrize(
    ("verb", "state"),
    [("enable", "enabled"), ("disable", "disabled"), ("set-testing", "testing")],
)
def test_admin_state_verbs(api_client, admin_member, verb, state):
    blueprint = BlueprintFactory(key="bp", state="disabled" if state != "disabled" else "enabled")
    api_client.force_authenticate(admin_member)

    response = api_client.post(f"/api/v1/admin/blueprints/bp/{verb}")

    assert response.status_code == 200
    assert response.json()["state"] == state
    blueprint.refresh_from_db()
    assert blueprint.state == state
    assert AuditEvent.objects.filter(action="blueprint.set_state", target_id="bp").exists()


def test_admin_delete(api_client, admin_member):
    BlueprintFactory(key="bp")
    api_client.force_authenticate(admin_member)

    response = api_client.delete("/api/v1/admin/blueprints/bp")

    assert response.status_code == 204
    assert not Blueprint.objects.filter(key="bp").exists()
    assert AuditEvent.objects.filter(action="blueprint.delete", target_id="bp").exists()


def test_admin_unknown_blueprint_is_not_found(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    assert api_client.get("/api/v1/admin/blueprints/none").status_code == 404
    assert api_client.post("/api/v1/admin/blueprints/none/enable").status_code == 404


@pytest.mark.parametrize(
    "changes",
    [
        {"access_rules": [{"kind": "email"}]},
        {"ai_providers": [{"model": "m"}]},
        {"ai_providers": [{"provider": "openai", "api_key": "k"}] * 2},
    ],
)
def test_admin_patch_incomplete_items_are_invalid(api_client, admin_member, changes):
    blueprint = BlueprintFactory(key="bp")
    AccessRuleFactory(blueprint=blueprint)
    api_client.force_authenticate(admin_member)

    response = api_client.patch("/api/v1/admin/blueprints/bp", changes, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert set(response.json()["errors"]) == set(changes)
    assert blueprint.access_rules.count() == 1
    assert not blueprint.ai_providers.exists()
