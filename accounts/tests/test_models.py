"""Members, tags and API tokens: identity by case-insensitive e-mail, constraints, display."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.choices import MemberStatus, Role
from accounts.models import ApiToken, User, UserTag, normalize_email
from accounts.tests.factories import AdminFactory, ApiTokenFactory, UserFactory, UserTagFactory
from core.crypto import hash_secret

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("  Alice@Example.COM ", "alice@example.com"),
        ("BOB@EXAMPLE.COM", "bob@example.com"),
        ("carol@example.com", "carol@example.com"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_email(raw, normal):
    assert normalize_email(raw) == normal


def test_create_user_stores_the_email_lowercase():
    user = User.objects.create_user("  Alice@Example.COM ", "pw-1234567")
    user.refresh_from_db()
    assert user.email == "alice@example.com"
    assert user.check_password("pw-1234567")
    assert (user.role, user.status, user.is_active) == (Role.USER, MemberStatus.ACTIVE, True)


def test_create_user_without_password_has_an_unusable_one():
    user = User.objects.create_user("nopass@example.com")
    assert not user.has_usable_password()


@pytest.mark.parametrize("email", ["", "   ", None])
def test_create_user_requires_an_email(email):
    with pytest.raises(ValueError, match="e-mail"):
        User.objects.create_user(email)


def test_create_user_refuses_an_invalid_email():
    with pytest.raises(ValidationError) as excinfo:
        User.objects.create_user("not-an-email")
    assert "email" in excinfo.value.message_dict


@pytest.mark.parametrize("second", ["alice@example.com", "ALICE@example.com", " Alice@EXAMPLE.com"])
def test_duplicate_email_through_the_manager_is_a_validation_error(second):
    User.objects.create_user("alice@example.com")
    with pytest.raises(ValidationError):
        User.objects.create_user(second)
    assert User.objects.count() == 1


@pytest.mark.parametrize("second", ["ALICE@example.com", "Alice@Example.Com"])
def test_duplicate_email_differing_in_case_is_refused_by_the_database(second):
    User.objects.create_user("alice@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(email=second)
    assert User.objects.count() == 1


def test_full_clean_normalises_the_email():
    user = User(email="Dora@Example.com")
    user.set_unusable_password()
    user.full_clean(exclude=["password"])
    assert user.email == "dora@example.com"


def test_natural_key_lookup_is_case_insensitive():
    user = UserFactory(email="erin@example.com")
    assert User.objects.get_by_natural_key(" ERIN@example.com") == user


def test_create_superuser_makes_an_active_admin():
    user = User.objects.create_superuser("Root@Example.com", "pw-1234567")
    assert (user.email, user.role, user.status) == ("root@example.com", Role.ADMIN, "active")


@pytest.mark.parametrize(
    ("role", "is_active", "expected"),
    [
        (Role.ADMIN, True, True),
        (Role.ADMIN, False, False),
        (Role.USER, True, False),
        (Role.USER, False, False),
    ],
)
def test_admin_rights_need_an_active_admin(role, is_active, expected):
    user = UserFactory(role=role, is_active=is_active)
    assert user.is_admin is expected
    assert user.is_staff is expected
    assert user.is_superuser is expected
    assert user.has_perm("anything") is expected
    assert user.has_module_perms("blueprints") is expected


@pytest.mark.parametrize(
    ("field", "value"), [("role", "owner"), ("status", "banned")], ids=["role", "status"]
)
def test_role_and_status_are_constrained(field, value):
    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=user.pk).update(**{field: value})


def test_user_names():
    user = UserFactory(email="fay@example.com", full_name="Fay Wray")
    assert str(user) == "fay@example.com"
    assert user.get_full_name() == "Fay Wray"
    assert user.get_short_name() == "Fay"
    anonymous = UserFactory(email="gil@example.com", full_name="")
    assert anonymous.get_full_name() == anonymous.get_short_name() == "gil@example.com"


# --- tags ----------------------------------------------------------------------------------


def test_user_tag_is_unique_per_user():
    tag = UserTagFactory(name="frontend")
    UserTagFactory(name="frontend")  # another member may use the same name
    with pytest.raises(IntegrityError), transaction.atomic():
        UserTag.objects.create(user=tag.user, name="frontend")


def test_user_tag_full_clean_reports_the_duplicate():
    tag = UserTagFactory(name="frontend")
    with pytest.raises(ValidationError):
        UserTag(user=tag.user, name="frontend").full_clean()


@pytest.mark.parametrize("name", ["", "-leading", "UPPER", "x" * 41, "sp@ce", "émoji"])
def test_bad_tag_names_are_refused(name):
    with pytest.raises(ValidationError) as excinfo:
        UserTag(user=UserFactory(), name=name).full_clean()
    assert "name" in excinfo.value.message_dict


@pytest.mark.parametrize("name", ["a", "front end", "v1.2_beta-x", "x" * 40])
def test_good_tag_names_are_accepted(name):
    UserTag(user=UserFactory(), name=name).full_clean()


def test_tag_colour_must_be_hex():
    with pytest.raises(ValidationError):
        UserTag(user=UserFactory(), name="ok", color="blue").full_clean()
    UserTag(user=UserFactory(), name="ok", color="#abc").full_clean()


def test_user_tag_str_is_its_name():
    assert str(UserTagFactory(name="backend")) == "backend"


# --- API tokens ----------------------------------------------------------------------------


def test_two_api_tokens_with_the_same_hash_are_refused():
    token = ApiTokenFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiToken.objects.create(
            user=token.user,
            name="copy",
            prefix=token.prefix,
            token_hash=token.token_hash,
            expires_at=token.expires_at,
        )


def test_generate_returns_raw_prefix_and_hash():
    raw, prefix, digest = ApiToken.generate()
    assert raw.startswith("enc_")
    assert len(raw) > 40
    assert prefix == raw[:12]
    assert digest == hash_secret(raw)
    assert len(digest) == 64
    assert raw not in digest
    assert ApiToken.generate()[0] != raw


@pytest.mark.parametrize(
    ("expires_in", "revoked", "usable"),
    [
        (timedelta(days=1), False, True),
        (timedelta(seconds=-1), False, False),
        (timedelta(days=1), True, False),
    ],
    ids=["valid", "expired", "revoked"],
)
def test_api_token_is_usable(expires_in, revoked, usable):
    token = ApiTokenFactory.build(
        expires_at=timezone.now() + expires_in,
        revoked_at=timezone.now() if revoked else None,
    )
    assert token.is_usable is usable


def test_a_new_token_must_expire_in_the_future():
    token = ApiToken(
        user=UserFactory(),
        name="t",
        prefix="enc_x",
        token_hash="0" * 64,
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    with pytest.raises(ValidationError) as excinfo:
        token.full_clean()
    assert "expires_at" in excinfo.value.message_dict


def test_api_token_str_shows_name_and_prefix_only():
    token = ApiTokenFactory(name="ci")
    assert str(token) == f"ci ({token.prefix}…)"
    assert token.raw not in str(token)


def test_admin_factory_builds_an_admin():
    assert AdminFactory().is_admin
