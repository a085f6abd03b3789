"""Who may call what, for every operation of the API and every console URL.

The operations come from the OpenAPI schema and the console URLs from the URL
configuration: an endpoint without an entry in `MATRIX` fails the suite, so nobody adds
one without saying who may use it. For each operation: anonymous → 401 (JSON, nothing
happens); a builder on an admin operation → 403; a builder on another builder's object
(workspace, token, tag, secret, hidden blueprint) → 404 and the object is untouched.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, reverse
from drf_spectacular.generators import SchemaGenerator

from accounts.models import ApiToken, BuilderSecret, UserTag
from accounts.services import builder_secret_set
from accounts.tests.factories import ApiTokenFactory, UserFactory, UserTagFactory
from blueprints.choices import AccessRuleKind
from blueprints.tests.factories import AccessRuleFactory, BlueprintFactory
from workspaces.models import Ticket
from workspaces.tests.test_api import seed

pytestmark = pytest.mark.django_db

ADMIN = "admin"  # admins only: 403 for a builder
SELF = "self"  # acts on the caller's own data only (nothing of another member's to reach)
WORKSPACE = "workspace"  # someone else's workspace: 404, untouched
TOKEN = "token"  # someone else's API token: 404, untouched
TAG = "tag"  # someone else's tag: 404, untouched
SECRET = "secret"  # someone else's secret of that name: 404 / untouched
BLUEPRINT = "blueprint"  # a blueprint hidden from the caller: 404

WORKSPACE_OPS = [
    ("DELETE", "/api/v1/workspaces/{id}"),
    ("GET", "/api/v1/workspaces/{id}"),
    ("PATCH", "/api/v1/workspaces/{id}"),
    ("DELETE", "/api/v1/workspaces/{id}/files"),
    ("GET", "/api/v1/workspaces/{id}/files"),
    ("GET", "/api/v1/workspaces/{id}/files/content"),
    ("PUT", "/api/v1/workspaces/{id}/files/content"),
    ("POST", "/api/v1/workspaces/{id}/files/rename"),
    ("GET", "/api/v1/workspaces/{id}/logs"),
    ("POST", "/api/v1/workspaces/{id}/preview-ticket"),
    ("POST", "/api/v1/workspaces/{id}/restart"),
    ("POST", "/api/v1/workspaces/{id}/shell-ticket"),
    ("POST", "/api/v1/workspaces/{id}/start"),
    ("POST", "/api/v1/workspaces/{id}/stop"),
    ("PUT", "/api/v1/workspaces/{id}/tags"),
]
MATRIX: dict[tuple[str, str], str] = {
    **{op: WORKSPACE for op in WORKSPACE_OPS},
    ("GET", "/api/v1/workspaces"): SELF,
    ("POST", "/api/v1/workspaces"): SELF,
    ("GET", "/api/v1/blueprints"): SELF,
    ("GET", "/api/v1/blueprints/{key}"): BLUEPRINT,
    ("GET", "/api/v1/me"): SELF,
    ("GET", "/api/v1/me/profile"): SELF,
    ("PATCH", "/api/v1/me/profile"): SELF,
    ("GET", "/api/v1/me/secrets"): SELF,
    ("PUT", "/api/v1/me/secrets/{name}"): SECRET,
    ("DELETE", "/api/v1/me/secrets/{name}"): SECRET,
    ("GET", "/api/v1/me/tags"): SELF,
    ("POST", "/api/v1/me/tags"): SELF,
    ("DELETE", "/api/v1/me/tags/{id}"): TAG,
    ("GET", "/api/v1/me/tokens"): SELF,
    ("POST", "/api/v1/me/tokens"): SELF,
    ("DELETE", "/api/v1/me/tokens/{id}"): TOKEN,
}
BODIES = {
    ("PATCH", "/api/v1/workspaces/{id}"): {"name": "Hijacked"},
    ("PUT", "/api/v1/workspaces/{id}/files/content"): {"path": "a.txt", "content": "x"},
    ("POST", "/api/v1/workspaces/{id}/files/rename"): {"from": "a.txt", "to": "b.txt"},
    ("POST", "/api/v1/workspaces/{id}/preview-ticket"): {"port": 3000},
    ("PUT", "/api/v1/workspaces/{id}/tags"): {"tags": ["hijacked"]},
    ("PUT", "/api/v1/me/secrets/{name}"): {"value": "attacker"},
}
QUERIES = {
    ("GET", "/api/v1/workspaces/{id}/files/content"): "?path=a.txt",
    ("DELETE", "/api/v1/workspaces/{id}/files"): "?path=a.txt",
}


def schema_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    verbs = {"get", "post", "put", "patch", "delete"}
    return {(m.upper(), path) for path, item in schema["paths"].items() for m in item if m in verbs}


OPERATIONS = sorted(schema_operations())


def expected(operation: tuple[str, str]) -> str:
    return ADMIN if operation[1].startswith("/api/v1/admin/") else MATRIX[operation]


def test_every_operation_is_in_the_matrix():
    unlisted = [op for op in OPERATIONS if not op[1].startswith("/api/v1/admin/")]
    missing = sorted(set(unlisted) - set(MATRIX))
    stale = sorted(set(MATRIX) - set(OPERATIONS))
    assert not missing, f"say who may use these (MATRIX): {missing}"
    assert not stale, f"no such operations any more: {stale}"


def call(client, operation, **ids):
    method, path = operation
    url = path.format(**{"id": "1", "key": "x", "name": "X", **ids}) + QUERIES.get(operation, "")
    body = BODIES.get(operation)
    if body is None:
        return getattr(client, method.lower())(url, format="json")
    return getattr(client, method.lower())(url, body, format="json")


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
def test_anonymous_callers_are_refused_with_401(api_client, operation):
    response = call(api_client, operation)
    assert response.status_code == 401, (operation, response.content[:200])
    assert response.json()["code"] in ("not_authenticated", "authentication_failed")
    assert not Ticket.objects.exists()


ADMIN_OPS = [op for op in OPERATIONS if op[1].startswith("/api/v1/admin/")]


@pytest.mark.parametrize("operation", ADMIN_OPS, ids=lambda op: f"{op[0]} {op[1]}")
def test_a_builder_gets_403_on_every_admin_operation(member_api, operation):
    response = call(member_api, operation)
    assert response.status_code == 403, (operation, response.content[:200])
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("operation", WORKSPACE_OPS, ids=lambda op: f"{op[0]} {op[1]}")
def test_another_builders_workspace_is_404_and_untouched(
    member_api, control_plane, blueprint, stranger, operation
):
    theirs = seed(control_plane, blueprint, stranger.email, name="Theirs")
    before = control_plane.record(blueprint.cluster.name, theirs.id)
    response = call(member_api, operation, id=theirs.id)
    assert response.status_code == 404, (operation, response.content[:200])
    assert response.json()["code"] == "not_found"
    assert control_plane.record(blueprint.cluster.name, theirs.id) == before
    assert not Ticket.objects.exists() and not UserTag.objects.filter(name="hijacked").exists()


def test_another_builders_token_tag_and_secret_are_out_of_reach(member_api, stranger):
    token = ApiTokenFactory(user=stranger)
    tag = UserTagFactory(user=stranger, name="theirs")
    builder_secret_set(user=stranger, name="THEIR_TOKEN", value="their value")
    assert call(member_api, ("DELETE", "/api/v1/me/tokens/{id}"), id=token.pk).status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    assert call(member_api, ("DELETE", "/api/v1/me/tags/{id}"), id=tag.pk).status_code == 404
    assert UserTag.objects.filter(pk=tag.pk).exists()
    gone = member_api.delete("/api/v1/me/secrets/THEIR_TOKEN")
    assert gone.status_code == 404
    assert (
        member_api.put(
            "/api/v1/me/secrets/THEIR_TOKEN", {"value": "mine"}, format="json"
        ).status_code
        == 200
    )  # the caller's own secret of that name; theirs is untouched
    theirs = BuilderSecret.objects.get(user=stranger, name="THEIR_TOKEN")
    assert theirs.value == "their value"


def test_a_hidden_blueprint_is_404_like_an_unknown_one(member_api, cluster):
    hidden = BlueprintFactory(key="finance-only", cluster=cluster)
    AccessRuleFactory(blueprint=hidden, kind=AccessRuleKind.DOMAIN, value="finance.example")
    response = member_api.get("/api/v1/blueprints/finance-only")
    unknown = member_api.get("/api/v1/blueprints/no-such-key")
    assert response.status_code == unknown.status_code == 404
    assert response.json() == unknown.json()


def console_urls() -> list[str]:
    """Every console URL, its parameters filled with a plain value."""
    urls: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                route = route.replace("^", "").replace("$", "").replace("\\Z", "")
                for token in ("<path:object_id>", "<id>", "<path:url>", "<content_type_id>"):
                    route = route.replace(token, "1")
                if "<" in route or "(?P" in route or "(" in route:
                    continue  # a regex route (the admin's catch-all): covered by another
                urls.append("/admin/" + route)

    walk(admin.site.get_urls(), "")
    return sorted(set(urls))


def test_no_console_url_serves_a_builder(client):
    client.force_login(UserFactory(email="builder2@example.com"))
    login = reverse("admin:login")
    urls = console_urls()
    assert len(urls) > 40  # the walk found the console
    for url in urls:
        if url.startswith((login, "/admin/logout/")):
            continue
        response = client.get(url)
        refused = response.status_code == 403 or (
            response.status_code == 302 and response["Location"].startswith(login)
        )
        assert refused, (url, response.status_code)


def test_no_console_url_serves_an_anonymous_visitor(client):
    login = reverse("admin:login")
    for url in console_urls():
        if url.startswith((login, "/admin/logout/")):
            continue
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(login), url
