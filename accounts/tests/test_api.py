"""API of the member's profile, tags and tokens, and the admins' members and tags."""

import pytest

from accounts.choices import MemberStatus, Role
from accounts.models import ApiToken, User, UserTag
from accounts.tests.factories import AdminFactory, ApiTokenFactory, UserFactory, UserTagFactory
from audit.models import AuditEvent
from core.services import organization_settings_update

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/me"),
        ("get", "/api/v1/me/tags"),
        ("post", "/api/v1/me/tags"),
        ("delete", "/api/v1/me/tags/1"),
        ("get", "/api/v1/me/tokens"),
        ("post", "/api/v1/me/tokens"),
        ("delete", "/api/v1/me/tokens/1"),
        ("get", "/api/v1/admin/members"),
        ("post", "/api/v1/admin/members"),
        ("get", "/api/v1/admin/members/1"),
        ("patch", "/api/v1/admin/members/1"),
        ("get", "/api/v1/admin/tags"),
    ],
)
def test_anonymous_is_not_authenticated(api_client, method, url):
    response = getattr(api_client, method)(url, {}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/admin/members"),
        ("post", "/api/v1/admin/members"),
        ("get", "/api/v1/admin/members/{id}"),
        ("patch", "/api/v1/admin/members/{id}"),
        ("get", "/api/v1/admin/tags"),
    ],
)
def test_builder_is_refused_admin_endpoints(api_client, member, method, url):
    api_client.force_authenticate(member)

    response = getattr(api_client, method)(url.format(id=member.pk), {"role": "admin"}, "json")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert User.objects.get(pk=member.pk).role == Role.USER


def test_me_describes_the_member(api_client, member):
    UserTagFactory(user=member, name="alpha")
    UserTagFactory(name="someone-elses")
    organization_settings_update(actor=None, changes={"max_running_workspaces_per_user": 7})
    api_client.force_authenticate(member)

    response = api_client.get("/api/v1/me")

    assert response.status_code == 200
    body = response.json()
    assert body["email"] == "builder@example.com"
    assert body["role"] == "user"
    assert body["status"] == "active"
    assert body["full_name"] == member.full_name
    assert body["tags"] == ["alpha"]
    assert body["workspace_limit"] == 7
    assert "running_workspaces" in body
    assert body["running_workspaces"] is None or isinstance(body["running_workspaces"], int)


def test_tags_list_only_mine(api_client, member):
    mine = UserTagFactory(user=member, name="mine", color="#fff")
    UserTagFactory(name="theirs")
    api_client.force_authenticate(member)

    response = api_client.get("/api/v1/me/tags")

    assert response.status_code == 200
    assert response.json() == [
        {
            "id": mine.pk,
            "name": "mine",
            "color": "#fff",
            "created_at": response.json()[0]["created_at"],
        }
    ]


def test_tag_create(api_client, member):
    api_client.force_authenticate(member)

    response = api_client.post("/api/v1/me/tags", {"name": "Frontend", "color": "#00ff00"}, "json")

    assert response.status_code == 201
    assert response.json()["name"] == "frontend"
    assert UserTag.objects.get(user=member).name == "frontend"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Not/Valid!"}, "name"),
        ({"name": "ok", "color": "green"}, "color"),
        ({}, "name"),
    ],
)
def test_tag_create_invalid(api_client, member, payload, field):
    api_client.force_authenticate(member)

    response = api_client.post("/api/v1/me/tags", payload, "json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert field in body["errors"]
    assert not UserTag.objects.filter(user=member).exists()


def test_tag_duplicate_is_invalid(api_client, member):
    UserTagFactory(user=member, name="dup")
    api_client.force_authenticate(member)

    response = api_client.post("/api/v1/me/tags", {"name": "dup"}, "json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert UserTag.objects.filter(user=member).count() == 1


def test_tag_delete(api_client, member):
    tag = UserTagFactory(user=member)
    api_client.force_authenticate(member)

    response = api_client.delete(f"/api/v1/me/tags/{tag.pk}")

    assert response.status_code == 204
    assert not UserTag.objects.filter(pk=tag.pk).exists()


def test_someone_elses_tag_is_not_found_and_kept(api_client, member):
    theirs = UserTagFactory(name="keep-me")
    api_client.force_authenticate(member)

    response = api_client.delete(f"/api/v1/me/tags/{theirs.pk}")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert UserTag.objects.get(pk=theirs.pk).name == "keep-me"


def test_token_issue_shows_the_value_once_and_authenticates(api_client, member):
    api_client.force_authenticate(member)

    response = api_client.post("/api/v1/me/tokens", {"name": "ci", "days": 30}, "json")

    assert response.status_code == 201
    body = response.json()
    raw = body["token"]
    assert raw.startswith(body["prefix"])
    assert body["name"] == "ci"
    assert body["expires_at"]
    listing = api_client.get("/api/v1/me/tokens")
    assert raw not in listing.content.decode()
    assert "token_hash" not in listing.content.decode()
    assert [t["prefix"] for t in listing.json()] == [body["prefix"]]

    api_client.force_authenticate(None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    me = api_client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["email"] == member.email
    assert raw not in me.content.decode()
    assert AuditEvent.objects.filter(action="api_token.issue").exists()


def test_token_issue_invalid_days(api_client, member):
    api_client.force_authenticate(member)

    response = api_client.post("/api/v1/me/tokens", {"name": "ci", "days": 0}, "json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "days" in response.json()["errors"]
    assert not ApiToken.objects.filter(user=member).exists()


def test_token_revoke_stops_authentication(api_client, member):
    token = ApiTokenFactory(user=member)
    api_client.force_authenticate(member)

    response = api_client.delete(f"/api/v1/me/tokens/{token.pk}")

    assert response.status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    api_client.force_authenticate(None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.raw}")
    refused = api_client.get("/api/v1/me")
    assert refused.status_code == 401
    assert refused.json()["code"] == "authentication_failed"


def test_suspension_stops_the_members_token_and_session(api_client, client, member):
    token = ApiTokenFactory(user=member)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.raw}")
    assert api_client.get("/api/v1/me").status_code == 200
    client.force_login(member)
    assert client.get("/api/v1/me").status_code == 200
    api_client.credentials()
    api_client.force_authenticate(AdminFactory())
    suspended = api_client.patch(
        f"/api/v1/admin/members/{member.pk}", {"is_active": False}, format="json"
    )
    assert suspended.status_code == 200, suspended.content
    api_client.force_authenticate(None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.raw}")
    refused = api_client.get("/api/v1/me")
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_failed"
    assert client.get("/api/v1/me").status_code in (401, 403)


def test_someone_elses_token_is_not_found_and_still_works(api_client, member):
    theirs = ApiTokenFactory()
    api_client.force_authenticate(member)

    response = api_client.delete(f"/api/v1/me/tokens/{theirs.pk}")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert theirs.raw not in api_client.get("/api/v1/me/tokens").content.decode()
    api_client.force_authenticate(None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {theirs.raw}")
    assert api_client.get("/api/v1/me").status_code == 200


def test_api_rate_limit(api_client, member):
    organization_settings_update(actor=None, changes={"api_rate_per_minute": 3})
    api_client.force_authenticate(member)

    statuses = [api_client.get("/api/v1/me").status_code for _ in range(3)]
    limited = api_client.get("/api/v1/me")

    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited["Retry-After"]) >= 1


# --- admin: members ------------------------------------------------------------------------


def test_members_list_and_filters(api_client, admin_member):
    UserFactory(email="ann@example.com", full_name="Ann Lee")
    UserFactory(email="bob@example.com", full_name="Bob Stone", status=MemberStatus.PENDING)
    api_client.force_authenticate(admin_member)

    everyone = api_client.get("/api/v1/admin/members")
    admins = api_client.get("/api/v1/admin/members", {"role": "admin"})
    pending = api_client.get("/api/v1/admin/members", {"status": "pending"})
    by_text = api_client.get("/api/v1/admin/members", {"q": "lee"})

    assert everyone.status_code == 200
    assert {m["email"] for m in everyone.json()} == {
        "ann@example.com",
        "bob@example.com",
        "platform@example.com",
    }
    assert [m["email"] for m in admins.json()] == ["platform@example.com"]
    assert [m["email"] for m in pending.json()] == ["bob@example.com"]
    assert [m["email"] for m in by_text.json()] == ["ann@example.com"]
    assert "password" not in everyone.content.decode()


def test_member_retrieve(api_client, admin_member, member):
    api_client.force_authenticate(admin_member)

    response = api_client.get(f"/api/v1/admin/members/{member.pk}")

    assert response.status_code == 200
    assert response.json()["email"] == member.email
    assert response.json()["is_active"] is True


def test_member_invite(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    response = api_client.post(
        "/api/v1/admin/members", {"email": "New@Example.com", "role": "user"}, "json"
    )

    assert response.status_code == 201
    assert response.json()["email"] == "new@example.com"
    assert response.json()["status"] == "pending"
    assert User.objects.get(email="new@example.com").invited_by == admin_member
    assert AuditEvent.objects.filter(action="member.invite", actor=admin_member).exists()


def test_member_invite_invalid(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    response = api_client.post("/api/v1/admin/members", {"email": "nope", "role": "x"}, "json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert set(response.json()["errors"]) == {"email", "role"}


def test_member_invite_existing(api_client, admin_member, member):
    api_client.force_authenticate(admin_member)

    response = api_client.post("/api/v1/admin/members", {"email": member.email}, "json")

    assert response.status_code == 409
    assert response.json()["code"] == "member_exists"


def test_member_update(api_client, admin_member, member):
    api_client.force_authenticate(admin_member)

    response = api_client.patch(
        f"/api/v1/admin/members/{member.pk}",
        {"role": "admin", "is_active": False, "full_name": "Renamed"},
        "json",
    )

    assert response.status_code == 200
    member.refresh_from_db()
    assert (member.role, member.is_active, member.full_name) == ("admin", False, "Renamed")
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"member.set_role", "member.suspend", "member.rename"} <= actions


def test_member_update_invalid(api_client, admin_member, member):
    api_client.force_authenticate(admin_member)

    response = api_client.patch(f"/api/v1/admin/members/{member.pk}", {"role": "root"}, "json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "role" in response.json()["errors"]


def test_last_admin_cannot_be_demoted(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    response = api_client.patch(
        f"/api/v1/admin/members/{admin_member.pk}", {"role": "user", "full_name": "X"}, "json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "last_admin"
    admin_member.refresh_from_db()
    assert admin_member.role == "admin"
    assert admin_member.full_name != "X"


def test_members_cannot_be_deleted(api_client, admin_member, member):
    api_client.force_authenticate(admin_member)

    response = api_client.delete(f"/api/v1/admin/members/{member.pk}")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert User.objects.filter(pk=member.pk).exists()


def test_admin_tags_list_and_filter(api_client, admin_member, member):
    UserTagFactory(user=member, name="one")
    other = AdminFactory(email="other@example.com")
    UserTagFactory(user=other, name="two")
    api_client.force_authenticate(admin_member)

    everything = api_client.get("/api/v1/admin/tags")
    filtered = api_client.get("/api/v1/admin/tags", {"user": "Builder@example.com"})

    assert everything.status_code == 200
    assert {(t["user"], t["name"]) for t in everything.json()} == {
        ("builder@example.com", "one"),
        ("other@example.com", "two"),
    }
    assert [t["name"] for t in filtered.json()] == ["one"]
    assert api_client.post("/api/v1/admin/tags", {"name": "x"}, "json").status_code == 405
