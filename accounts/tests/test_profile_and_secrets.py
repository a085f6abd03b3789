"""The builder profile and personal secrets: API, account page, encryption and audit."""

import json

import pytest
from django.db import connection

from accounts.models import MAX_BUILDER_SECRETS, BuilderSecret
from accounts.tests.factories import UserFactory
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

VALUE = "ghp_canary_value_that_must_never_show_0001"


@pytest.fixture
def me(api_client, member):
    api_client.force_authenticate(member)
    return api_client


def test_profile_read_and_update(me, member):
    assert me.get("/api/v1/me/profile").json() == {
        "experience_level": "familiar",
        "preferred_language": "",
        "role_title": "",
        "timezone": "",
    }

    response = me.patch(
        "/api/v1/me/profile",
        {"experience_level": "non_technical", "timezone": "Europe/Paris"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["experience_level"] == "non_technical"
    member.refresh_from_db()
    assert (member.experience_level, member.timezone) == ("non_technical", "Europe/Paris")
    (event,) = AuditEvent.objects.filter(action="member.profile")
    assert event.details == {"changed": ["experience_level", "timezone"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"experience_level": "wizard"}, "experience_level"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"role_title": "x" * 81}, "role_title"),
    ],
)
def test_profile_refuses_bad_values(me, body, field):
    response = me.patch("/api/v1/me/profile", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["errors"]


def test_secrets_are_write_only_encrypted_and_audited_without_value(me, member):
    response = me.put("/api/v1/me/secrets/GIT_TOKEN", {"value": VALUE}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"name", "created_at", "updated_at"}
    listed = me.get("/api/v1/me/secrets")
    assert [s["name"] for s in listed.json()] == ["GIT_TOKEN"]
    for answer in (response, listed):
        assert VALUE not in answer.content.decode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM accounts_buildersecret")
        (stored,) = cursor.fetchone()
    assert VALUE not in stored
    assert BuilderSecret.objects.get(user=member).value == VALUE
    (event,) = AuditEvent.objects.filter(action="member.secret_set")
    assert event.details == {"name": "GIT_TOKEN"}
    assert VALUE not in json.dumps(list(AuditEvent.objects.values("details")))


def test_a_secret_is_replaced_and_cleared(me, member):
    me.put("/api/v1/me/secrets/GIT_TOKEN", {"value": "first"}, format="json")
    me.put("/api/v1/me/secrets/GIT_TOKEN", {"value": "second"}, format="json")

    assert BuilderSecret.objects.get(user=member, name="GIT_TOKEN").value == "second"
    assert me.delete("/api/v1/me/secrets/GIT_TOKEN").status_code == 204
    assert not BuilderSecret.objects.filter(user=member).exists()
    missing = me.delete("/api/v1/me/secrets/GIT_TOKEN")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert AuditEvent.objects.filter(action="member.secret_cleared").count() == 1


@pytest.mark.parametrize(
    "name", ["1TOKEN", "GIT-TOKEN", "PATH", "PORT_3000", "ANTHROPIC_API_KEY", "ENCLAVE_X"]
)
def test_bad_or_reserved_names_are_refused(me, name):
    response = me.put(f"/api/v1/me/secrets/{name}", {"value": "v"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "name" in response.json()["errors"]


def test_an_empty_value_is_refused(me):
    response = me.put("/api/v1/me/secrets/GIT_TOKEN", {"value": ""}, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "invalid")


def test_the_number_of_secrets_is_bounded(me, member):
    for i in range(MAX_BUILDER_SECRETS):
        BuilderSecret.objects.create(user=member, name=f"S{i}", value="v")

    response = me.put("/api/v1/me/secrets/ONE_MORE", {"value": "v"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "secret_limit_reached")
    assert me.put("/api/v1/me/secrets/S0", {"value": "new"}, format="json").status_code == 200


def test_nobody_sees_another_members_secrets(me, member):
    other = UserFactory()
    BuilderSecret.objects.create(user=other, name="THEIRS", value=VALUE)

    assert me.get("/api/v1/me/secrets").json() == []
    assert me.delete("/api/v1/me/secrets/THEIRS").status_code == 404
    assert BuilderSecret.objects.filter(user=other).exists()


def test_the_account_page_saves_profile_and_secrets_and_never_shows_a_value(client, member):
    client.force_login(member)

    page = client.get("/account/")
    assert page.status_code == 200
    saved = client.post(
        "/account/",
        {"action": "secret_set", "name": "GITHUB_TOKEN", "value": VALUE},
        follow=True,
    )
    profile = client.post(
        "/account/",
        {
            "action": "profile",
            "experience_level": "developer",
            "preferred_language": "Deutsch",
            "role_title": "",
            "timezone": "",
        },
        follow=True,
    )
    refused = client.post("/account/", {"action": "secret_set", "name": "PATH", "value": "x"})

    assert "GITHUB_TOKEN" in saved.content.decode()
    assert VALUE not in saved.content.decode()
    member.refresh_from_db()
    assert (member.experience_level, member.preferred_language) == ("developer", "Deutsch")
    assert profile.status_code == 200
    assert refused.status_code == 400
    assert "set by the runtime" in refused.content.decode()
    cleared = client.post(
        "/account/", {"action": "secret_clear", "name": "GITHUB_TOKEN"}, follow=True
    )
    assert "GITHUB_TOKEN deleted" in cleared.content.decode()
    assert not BuilderSecret.objects.filter(user=member).exists()


def test_the_account_page_creates_shows_once_and_revokes_api_tokens(client, member, settings):
    from accounts.models import ApiToken
    from core.crypto import hash_secret

    settings.API_TOKEN_MAX_DAYS = 30
    client.force_login(member)
    page = client.get("/account/").content.decode()
    assert "API tokens" in page and 'max="30"' in page
    too_long = client.post("/account/", {"action": "token_create", "name": "CI", "days": "31"})
    assert too_long.status_code == 400 and not ApiToken.objects.exists()
    created = client.post(
        "/account/", {"action": "token_create", "name": "CI", "days": "30"}, follow=True
    )
    text = created.content.decode()
    raw = text.split('<code class="new-token">', 1)[1].split("</code>", 1)[0]
    token = ApiToken.objects.get(user=member)
    assert token.token_hash == hash_secret(raw) and token.name == "CI"
    assert raw not in client.get("/account/").content.decode()  # shown once
    api = client.__class__()
    assert api.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200

    other = UserFactory()
    foreign = other.api_tokens.create(
        name="theirs", prefix="enc_x", token_hash="0" * 64, expires_at=token.expires_at
    )
    client.post("/account/", {"action": "token_revoke", "token": str(foreign.pk)})
    client.post("/account/", {"action": "token_revoke", "token": "not-a-number"})
    foreign.refresh_from_db()
    assert foreign.revoked_at is None  # never another member's token
    revoked = client.post(
        "/account/", {"action": "token_revoke", "token": str(token.pk)}, follow=True
    )
    assert "revoked" in revoked.content.decode()
    assert api.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
