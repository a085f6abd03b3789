"""Management commands: issue_api_token, ensure_admin, createsuperuser, seed_demo."""

import io
import os
import re
import stat
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIRequestFactory

from accounts.api.authentication import ApiTokenAuthentication
from accounts.choices import MemberStatus, Role
from accounts.models import ApiToken, User
from accounts.tests.factories import UserFactory
from audit.models import AuditEvent
from blueprints.choices import BlueprintState
from blueprints.management.commands import seed_demo
from blueprints.management.commands.seed_demo import DEMO_START
from blueprints.models import Blueprint
from clusters.models import Cluster
from core.crypto import hash_secret

pytestmark = pytest.mark.django_db


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def authenticate(raw: str):
    request = APIRequestFactory().get("/api/v1/", HTTP_AUTHORIZATION=f"Token {raw}")
    return ApiTokenAuthentication().authenticate(request)


# --- issue_api_token -----------------------------------------------------------------------


def test_issue_api_token_prints_a_token_that_authenticates(member):
    raw = run("issue_api_token", "  BUILDER@Example.com ", "--name", "ci", "--days", "7").strip()
    assert raw.startswith("enc_")
    user, token = authenticate(raw)
    assert user == member
    assert token.name == "ci"
    assert token.token_hash == hash_secret(raw)
    assert not ApiToken.objects.filter(token_hash=raw).exists()


@pytest.mark.parametrize("email", ["nobody@example.com", "inactive@example.com"])
def test_issue_api_token_refuses_an_unknown_or_inactive_member(email):
    UserFactory(email="inactive@example.com", is_active=False)
    with pytest.raises(CommandError, match="No active member"):
        run("issue_api_token", email)
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("days", ["-1", "0", "366"])
def test_issue_api_token_refuses_a_bad_lifetime(member, days):
    with pytest.raises(CommandError, match="1 to 365 days"):  # API_TOKEN_MAX_DAYS
        run("issue_api_token", member.email, "--days", days)
    assert not ApiToken.objects.exists()


# --- ensure_admin --------------------------------------------------------------------------


def test_ensure_admin_creates_an_admin_once_and_prints_the_password_once():
    first = run("ensure_admin", "--email", "Root@Example.com")
    match = re.search(r"with password: (\S+)", first)
    assert match, first
    admin = User.objects.get()
    assert admin.email == "root@example.com"
    assert (admin.role, admin.status, admin.is_active) == (Role.ADMIN, MemberStatus.ACTIVE, True)
    assert admin.check_password(match.group(1))

    second = run("ensure_admin", "--email", "other@example.com")
    assert "password:" not in second
    assert match.group(1) not in second
    assert "root@example.com" in second
    assert User.objects.count() == 1


def test_ensure_admin_does_nothing_when_an_admin_exists(admin_member):
    out = run("ensure_admin")
    assert admin_member.email in out
    assert "password:" not in out
    assert User.objects.count() == 1


# --- createsuperuser -----------------------------------------------------------------------


def test_createsuperuser_noinput_creates_an_admin_role_member(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "Boss@Example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long enough passphrase")
    run("createsuperuser", "--noinput")
    user = User.objects.get()
    assert user.email == "boss@example.com"
    assert user.role == Role.ADMIN
    assert user.is_admin and user.is_staff and user.is_superuser
    assert user.check_password("a long enough passphrase")


# --- seed_demo -----------------------------------------------------------------------------


def test_seed_demo_creates_the_local_cluster_and_the_demo_blueprint():
    out = run("seed_demo")
    cluster = Cluster.objects.get()
    blueprint = Blueprint.objects.get(key="demo")
    assert cluster.name == "local"
    token = re.search(r"Agent token \(shown once\): (\S+)", out).group(1)
    assert hash_secret(token) == cluster.token_hash
    assert (blueprint.key, blueprint.state, blueprint.cluster) == (
        "demo",
        BlueprintState.ENABLED,
        cluster,
    )
    assert blueprint.ports == [{"port": 3000, "name": "app"}]
    blueprint.full_clean()

    builder = Blueprint.objects.get(key="ai-builder")
    assert (builder.state, builder.cluster) == (BlueprintState.ENABLED, cluster)
    assert [tab["kind"] for tab in builder.layout_tabs][:2] == ["chat", "claude"]
    assert builder.chat_system_prompt
    builder.full_clean()


def test_seed_demo_is_idempotent():
    run("seed_demo")
    token_hash = Cluster.objects.get().token_hash
    out = run("seed_demo")
    assert "Agent token" not in out
    assert "kept as it is" in out
    assert Cluster.objects.count() == 1
    assert sorted(Blueprint.objects.values_list("key", flat=True)) == ["ai-builder", "demo"]
    assert Cluster.objects.get().token_hash == token_hash


def test_seed_demo_keeps_an_admins_edits_until_reset():
    run("seed_demo")
    Blueprint.objects.filter(key="demo").update(name="Our shop", start_command="npm start")
    run("seed_demo")
    assert Blueprint.objects.get(key="demo").name == "Our shop"  # make run keeps edits

    out = run("seed_demo", "--reset")
    demo = Blueprint.objects.get(key="demo")
    assert "Restored blueprint 'demo'" in out
    assert (demo.name, demo.start_command) == ("Demo web app", DEMO_START)
    reset = AuditEvent.objects.filter(action="blueprint.update", target_id="demo").get()
    assert "start_command" in reset.details["changed"] and reset.actor is None


def test_seed_demo_writes_a_private_token_file(tmp_path):
    token_file = tmp_path / "run" / "agent.token"
    run("seed_demo", "--token-file", str(token_file))
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert hash_secret(token_file.read_text()) == Cluster.objects.get(name="local").token_hash

    # The file exists: a second run leaves the token alone.
    run("seed_demo", "--token-file", str(token_file))
    assert hash_secret(token_file.read_text()) == Cluster.objects.get(name="local").token_hash


def test_seed_demo_rotates_the_token_to_fill_a_missing_token_file(tmp_path):
    run("seed_demo")
    old_hash = Cluster.objects.get().token_hash
    token_file = tmp_path / "agent.token"
    run("seed_demo", "--token-file", str(token_file))
    new_hash = Cluster.objects.get().token_hash
    assert new_hash != old_hash
    assert hash_secret(token_file.read_text()) == new_hash
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_seed_demo_token_file_is_never_readable_by_others_not_even_briefly(tmp_path, monkeypatch):
    """Written whole under a temporary name that is 0600 from its creation, then renamed:
    at no moment does `agent.token` exist with a looser mode or a partial token, even
    under a umask that would let everyone read a file created plainly."""
    token_file = tmp_path / "var-agent" / "agent.token"
    run("seed_demo")  # the cluster exists, the token file does not: rotated to fill it
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        assert not token_file.exists()
        seen.append((stat.S_IMODE(os.stat(src).st_mode), Path(src).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(seed_demo.os, "replace", replace)
    old_umask = os.umask(0)
    try:
        run("seed_demo", "--token-file", str(token_file))
    finally:
        os.umask(old_umask)
    raw = token_file.read_text()
    assert seen == [(0o600, raw)]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert hash_secret(raw) == Cluster.objects.get(name="local").token_hash
    assert [path.name for path in token_file.parent.iterdir()] == ["agent.token"]


def test_seed_demo_tightens_an_existing_token_file(tmp_path):
    token_file = tmp_path / "agent.token"
    run("seed_demo", "--token-file", str(token_file))
    token_file.chmod(0o644)
    run("seed_demo", "--token-file", str(token_file))
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
