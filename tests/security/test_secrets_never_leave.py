"""Secrets never leave: every kind of secret the portal holds is seeded with a known value,
then every API read (from the OpenAPI schema, ids filled with the seeded objects) and
every console page is fetched as an admin and as a builder, and the portal's own pages as
the builder — no answer, no log line and no database row holds any of the values."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib import admin
from django.db import connection
from django.urls import reverse

from accounts.services import api_token_issue, builder_secret_set, invitation_issue, member_invite
from accounts.tests.factories import AdminFactory, UserFactory
from blueprints.models import Blueprint
from blueprints.tests.factories import AIProviderFactory, BlueprintFactory
from clusters.services import cluster_create
from tests.security.test_ownership_matrix import OPERATIONS, console_urls
from workspaces.tests.test_api import seed

pytestmark = pytest.mark.django_db

LLM_KEY = "sk-ant-CANARY-llm-key-0b7e"
BUILDER_SECRET = "ghp_CANARY_builder_secret_41d2"
OIDC_SECRET = "CANARY-oidc-client-secret-9a3c"


@pytest.fixture
def seeded(control_plane, settings):
    """(admin, builder, every secret value, ids to fill the URLs with)."""
    settings.OIDC_CLIENT_SECRET = OIDC_SECRET
    boss = AdminFactory(email="boss@example.com")
    builder = UserFactory(email="builder@example.com")
    cluster, agent_token = cluster_create(name="main", actor=boss)
    blueprint = BlueprintFactory(key="webapp", cluster=cluster)
    AIProviderFactory(blueprint=blueprint, api_key=LLM_KEY)
    builder_secret_set(user=builder, name="GITHUB_TOKEN", value=BUILDER_SECRET)
    _, builder_token = api_token_issue(user=builder, name="ci")
    _, admin_token = api_token_issue(user=boss, name="ops")
    invited = member_invite(email="new@example.com", actor=boss)
    _, invitation, _ = invitation_issue(user=invited, actor=boss, send=False)
    workspace = seed(control_plane, blueprint, builder.email)
    values = {
        "llm key": LLM_KEY,
        "builder secret": BUILDER_SECRET,
        "builder API token": builder_token,
        "admin API token": admin_token,
        "agent token": agent_token,
        "invitation link": invitation.rsplit("/", 2)[-2],
        "OIDC client secret": OIDC_SECRET,
    }
    ids = {"id": workspace.id, "key": blueprint.key, "name": "main"}
    return boss, builder, values, ids


def leaks(text: str, values: dict[str, str]) -> list[str]:
    return [kind for kind, value in values.items() if value in text]


def api_reads(client, ids: dict[str, str]) -> list[tuple[str, str]]:
    """(url, body) of every GET operation of the schema, ids filled in."""
    pages = []
    for method, path in OPERATIONS:
        if method != "GET":
            continue
        if "{name}" in path and "clusters" not in path:
            continue
        url = path.format(**{"id": ids["id"], "key": ids["key"], "name": ids["name"]})
        response = client.get(url)
        pages.append((url, response.content.decode(errors="replace")))
    return pages


def test_no_answer_log_or_row_holds_a_secret(client, seeded, caplog):
    boss, builder, values, ids = seeded
    caplog.set_level(logging.DEBUG)
    seen: list[tuple[str, str]] = []

    client.force_login(boss)
    seen += api_reads(client, ids)
    admin_pages = [*console_urls(), reverse("admin:workspaces_console")]
    for url in admin_pages:
        seen.append((url, client.get(url).content.decode(errors="replace")))
    for model in admin.site._registry:
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        seen.append((changelist, client.get(changelist).content.decode(errors="replace")))
        first = model._default_manager.first()
        if first is not None:
            label = f"admin:{model._meta.app_label}_{model._meta.model_name}_change"
            url = reverse(label, args=[first.pk])
            seen.append((url, client.get(url).content.decode(errors="replace")))
    blueprint_page = reverse("admin:blueprints_blueprint_change", args=[Blueprint.objects.get().pk])
    seen.append((blueprint_page, client.get(blueprint_page).content.decode()))

    client.force_login(builder)
    seen += api_reads(client, ids)
    for url in ("/", "/account/", f"/workspaces/{ids['id']}/"):
        seen.append((url, client.get(url).content.decode(errors="replace")))

    assert len(seen) > 100
    found = [(url, leaks(body, values)) for url, body in seen if leaks(body, values)]
    assert not found, found
    assert not leaks(caplog.text, values), "a secret is in the portal's log"
    rows = _raw_rows()
    assert not leaks(rows, values), "a secret is stored in the clear"
    assert "enc:" in rows  # the encrypted ones are there, sealed
    # The crawl saw the objects that hold them (names, prefixes), not empty pages.
    bodies = dict(seen)
    assert "GITHUB_TOKEN" in bodies["/api/v1/me/secrets"]
    assert json.loads(bodies["/api/v1/me/tokens"])[0]["prefix"] == values["builder API token"][:12]


def _raw_rows() -> str:
    """Every row of every table as the database holds it (no field decrypts anything)."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            parts.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(parts)
