"""API of the organisation settings, the rate limit and the OpenAPI schema."""

import pytest

from audit.models import AuditEvent
from core.models import OrganizationSettings

pytestmark = pytest.mark.django_db

URL = "/api/v1/admin/settings"


@pytest.mark.parametrize("method", ["get", "patch"])
def test_settings_need_an_admin(api_client, member, method):
    anonymous = getattr(api_client, method)(URL, {"portal_name": "X"}, format="json")
    api_client.force_authenticate(member)
    builder = getattr(api_client, method)(URL, {"portal_name": "X"}, format="json")

    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    assert builder.status_code == 403
    assert builder.json()["code"] == "permission_denied"
    assert OrganizationSettings.load().portal_name == "Enclave"


def test_settings_read(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    response = api_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert "id" not in body
    assert body["portal_name"] == "Enclave"
    assert body["api_rate_per_minute"] == 200
    fields = {f.name for f in OrganizationSettings._meta.fields} - {"id"}
    assert set(body) == fields


def test_settings_update(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    response = api_client.patch(
        URL, {"portal_name": "Acme", "max_running_workspaces_per_user": 5}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["portal_name"] == "Acme"
    settings = OrganizationSettings.load()
    assert (settings.portal_name, settings.max_running_workspaces_per_user) == ("Acme", 5)
    event = AuditEvent.objects.get(action="organization_settings.update")
    assert event.actor == admin_member
    assert event.details["changed"] == ["max_running_workspaces_per_user", "portal_name"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"accent_color": "blue"}, "accent_color"),
        ({"api_rate_per_minute": 0}, "api_rate_per_minute"),
        ({"max_running_workspaces_per_user": "many"}, "max_running_workspaces_per_user"),
        ({"logo_light_url": "not a url"}, "logo_light_url"),
    ],
)
def test_settings_update_invalid(api_client, admin_member, payload, field):
    api_client.force_authenticate(admin_member)

    response = api_client.patch(URL, {"portal_name": "Changed", **payload}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["errors"]
    assert OrganizationSettings.load().portal_name == "Enclave"
    assert not AuditEvent.objects.exists()


def test_api_rate_limit_set_through_the_settings(api_client, admin_member, member):
    api_client.force_authenticate(admin_member)
    assert api_client.patch(URL, {"api_rate_per_minute": 3}, format="json").status_code == 200
    api_client.force_authenticate(member)

    allowed = [api_client.get("/api/v1/me").status_code for _ in range(3)]
    limited = api_client.get("/api/v1/blueprints")

    assert allowed == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60


def test_schema_lists_the_endpoints(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    response = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/me",
        "/api/v1/me/tags",
        "/api/v1/me/tokens/{id}",
        "/api/v1/blueprints/{key}",
        "/api/v1/admin/blueprints/{key}/set-testing",
        "/api/v1/admin/clusters/{name}/rotate-token",
        "/api/v1/admin/members",
        "/api/v1/admin/tags",
        "/api/v1/admin/settings",
    ]:
        assert path in paths, path


def test_schema_describes_workspace_listings_as_the_object_they_are(api_client, admin_member):
    api_client.force_authenticate(admin_member)
    schema = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    for path, name in (
        ("/api/v1/workspaces", "WorkspaceList"),
        ("/api/v1/admin/workspaces", "AdminWorkspaceList"),
    ):
        answer = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert answer["schema"] == {"$ref": f"#/components/schemas/{name}"}, path
        listing = schema["components"]["schemas"][name]
        assert set(listing["properties"]) == {"results", "unreachable_clusters"}
