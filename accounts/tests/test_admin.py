"""Console pages for members, tags and API tokens: access, services, secrets."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.choices import MemberStatus, Role
from accounts.models import ApiToken, User, UserTag
from accounts.tests.factories import AdminFactory, ApiTokenFactory, UserFactory, UserTagFactory
from audit.models import AuditEvent
from core.crypto import hash_secret
from core.tests.admin import assert_refused, changeform_data, messages_of

pytestmark = pytest.mark.django_db


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def admin_user_():
    return AdminFactory()


@pytest.fixture
def console(client, admin_user_):
    client.force_login(admin_user_)
    return client


def pages(model, obj, *, add: bool) -> list[str]:
    urls = [url(model, "changelist"), url(model, "change", obj.pk)]
    return [*urls, url(model, "add")] if add else urls


# --- every page renders for an admin and is refused to a member ---------------------------


@pytest.mark.parametrize(
    ("model", "factory", "add"),
    [
        (User, UserFactory, True),
        (UserTag, UserTagFactory, False),
        (ApiToken, ApiTokenFactory, True),
    ],
)
def test_pages_render_for_admin_and_are_refused_to_member(client, model, factory, add):
    obj = factory()
    client.force_login(AdminFactory())
    for page in pages(model, obj, add=add):
        assert client.get(page).status_code == 200, page
    client.force_login(UserFactory())
    for page in [*pages(model, obj, add=add), url(model, "add")]:
        assert_refused(client, page)
        assert_refused(client, page, method="post")


def test_groups_are_not_part_of_the_console():
    assert not admin.site.is_registered(Group)


def test_user_tags_are_view_only(console):
    tag = UserTagFactory()
    assert console.get(url(UserTag, "add")).status_code == 403
    assert console.post(url(UserTag, "change", tag.pk), {"name": "x"}).status_code == 403
    assert console.post(url(UserTag, "delete", tag.pk), {"post": "yes"}).status_code == 403


# --- members --------------------------------------------------------------------------------


def test_add_member_form_invites_with_email_and_role_only(console, admin_user_):
    response = console.get(url(User, "add"))
    assert set(response.context["adminform"].form.fields) == {"email", "role"}
    response = console.post(url(User, "add"), {"email": " New@Example.COM ", "role": Role.ADMIN})
    assert response.status_code == 302
    invited = User.objects.get(email="new@example.com")
    assert (invited.status, invited.role, invited.invited_by) == (
        MemberStatus.PENDING,
        Role.ADMIN,
        admin_user_,
    )
    assert invited.invited_at is not None
    assert not invited.has_usable_password()
    assert AuditEvent.objects.filter(action="member.invite", target_id=str(invited.pk)).exists()


def test_inviting_an_existing_member_is_a_form_error(console):
    UserFactory(email="taken@example.com")
    response = console.post(url(User, "add"), {"email": "TAKEN@example.com", "role": Role.USER})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not AuditEvent.objects.filter(action="member.invite").exists()


def test_change_form_shows_identity_read_only_and_no_password(console):
    member = UserFactory()
    response = console.get(url(User, "change", member.pk))
    form = response.context["adminform"].form
    assert set(form.fields) == {"full_name", "role", "is_active"}
    content = response.content.decode()
    assert member.email in content
    assert member.password not in content


def test_change_form_edits_go_through_services(console):
    member = UserFactory(full_name="Ada")
    data = changeform_data(console.get(url(User, "change", member.pk)))
    data.update(full_name="Ada Lovelace", role=Role.ADMIN)
    response = console.post(url(User, "change", member.pk), data)
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.full_name, member.role) == ("Ada Lovelace", Role.ADMIN)
    actions = set(
        AuditEvent.objects.filter(target_id=str(member.pk)).values_list("action", flat=True)
    )
    assert {"member.set_role", "member.rename"} <= actions


def test_demoting_the_last_admin_in_the_form_is_an_error_message(console, admin_user_):
    data = changeform_data(console.get(url(User, "change", admin_user_.pk)))
    data.update(role=Role.USER, full_name="Changed")
    response = console.post(url(User, "change", admin_user_.pk), data)
    assert response.status_code == 302
    assert "The last active admin cannot be demoted." in messages_of(response)
    admin_user_.refresh_from_db()
    # The whole save is rolled back, including the name change.
    assert admin_user_.role == Role.ADMIN
    assert admin_user_.full_name != "Changed"
    assert not AuditEvent.objects.filter(target_id=str(admin_user_.pk)).exists()


def test_members_are_not_deleted_from_the_console(console):
    member = UserFactory()
    assert console.post(url(User, "delete", member.pk), {"post": "yes"}).status_code == 403
    actions = console.get(url(User, "changelist")).context["action_form"].fields["action"]
    assert "delete_selected" not in dict(actions.choices)
    assert User.objects.filter(pk=member.pk).exists()


def run_action(client, model, action: str, objects):
    return client.post(
        url(model, "changelist"),
        {"action": action, "_selected_action": [o.pk for o in objects]},
    )


@pytest.mark.parametrize(
    ("action", "start", "field", "expected", "audit"),
    [
        ("promote", {"role": Role.USER}, "role", Role.ADMIN, "member.set_role"),
        ("demote", {"role": Role.ADMIN}, "role", Role.USER, "member.set_role"),
        ("suspend", {"is_active": True}, "is_active", False, "member.suspend"),
        ("reactivate", {"is_active": False}, "is_active", True, "member.activate"),
    ],
)
def test_member_actions_call_services(console, action, start, field, expected, audit):
    members = [UserFactory(**start), UserFactory(**start)]
    response = run_action(console, User, action, members)
    assert response.status_code == 302
    for member in members:
        member.refresh_from_db()
        assert getattr(member, field) == expected
    assert AuditEvent.objects.filter(action=audit).count() == 2
    assert len(messages_of(response)) == 1
    assert "2 member(s)" in messages_of(response)[0]


def test_demote_action_reports_refusals_in_its_one_message(console, admin_user_):
    response = run_action(console, User, "demote", [admin_user_])
    (message,) = messages_of(response)
    assert "Demoted 0 member(s)" in message
    assert "The last active admin cannot be demoted." in message
    admin_user_.refresh_from_db()
    assert admin_user_.role == Role.ADMIN


# --- API tokens -----------------------------------------------------------------------------


def test_token_pages_never_show_the_hash_or_the_token(console):
    token = ApiTokenFactory()
    for page in pages(ApiToken, token, add=True):
        content = console.get(page).content.decode()
        assert token.token_hash not in content
        assert token.raw not in content
    assert token.prefix in console.get(url(ApiToken, "changelist")).content.decode()


def test_issuing_a_token_shows_it_once_and_stores_only_its_hash(console):
    member = UserFactory()
    response = console.post(url(ApiToken, "add"), {"user": member.pk, "name": "ci", "days": 7})
    assert response.status_code == 302
    (message,) = messages_of(response)
    raw = message.split("<code>")[1].split("</code>")[0]
    token = ApiToken.objects.get(user=member)
    assert token.name == "ci"
    assert token.token_hash == hash_secret(raw)
    assert raw.startswith(token.prefix)
    assert AuditEvent.objects.filter(action="api_token.issue", target_id=str(token.pk)).exists()
    # Shown once, on the page the admin lands on; never again.
    assert console.get(response.url).content.decode().count(raw) == 1
    assert raw not in console.get(url(ApiToken, "changelist")).content.decode()
    assert raw not in console.get(url(ApiToken, "change", token.pk)).content.decode()


def test_token_lifetime_is_validated(console):
    member = UserFactory()
    response = console.post(url(ApiToken, "add"), {"user": member.pk, "name": "ci", "days": 0})
    assert response.status_code == 200
    assert not ApiToken.objects.exists()


def test_tokens_are_view_only_apart_from_revoke(console):
    token = ApiTokenFactory()
    assert console.post(url(ApiToken, "change", token.pk), {"name": "x"}).status_code == 403
    assert console.post(url(ApiToken, "delete", token.pk), {"post": "yes"}).status_code == 403


def test_revoke_action_calls_the_service(console):
    tokens = [ApiTokenFactory(), ApiTokenFactory()]
    response = run_action(console, ApiToken, "revoke", tokens)
    assert response.status_code == 302
    for token in tokens:
        token.refresh_from_db()
        assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_token.revoke").count() == 2
    assert messages_of(response) == ["Revoked 2 token(s)."]
