"""The catalog: which blueprints a member may see and launch (state and access rules)."""

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts.tests.factories import AdminFactory, UserFactory
from blueprints.choices import AccessRuleKind, BlueprintState
from blueprints.selectors import blueprint_for_launch, catalog_for
from blueprints.tests.factories import AccessRuleFactory, BlueprintFactory

pytestmark = pytest.mark.django_db

EMAIL, DOMAIN = AccessRuleKind.EMAIL, AccessRuleKind.DOMAIN


def blueprint_with(rules: list[tuple[str, str]], state: str = BlueprintState.ENABLED):
    blueprint = BlueprintFactory(key="bp", state=state)
    for kind, value in rules:
        AccessRuleFactory(blueprint=blueprint, kind=kind, value=value)
    return blueprint


@pytest.mark.parametrize(
    ("rules", "email", "visible"),
    [
        # open blueprint: no rules, everyone
        ([], "alice@example.com", True),
        ([], "x@elsewhere.org", True),
        # exact e-mail, case-insensitive on the member side
        ([(EMAIL, "alice@example.com")], "alice@example.com", True),
        ([(EMAIL, "alice@example.com")], "Alice@Example.COM", True),
        ([(EMAIL, "alice@example.com")], "bob@example.com", False),
        ([(EMAIL, "alice@example.com")], "alice@example.com.evil.org", False),
        # exact domain, never a subdomain nor a parent
        ([(DOMAIN, "example.com")], "bob@example.com", True),
        ([(DOMAIN, "example.com")], "BOB@EXAMPLE.COM", True),
        ([(DOMAIN, "example.com")], "alice@eu.example.com", False),
        ([(DOMAIN, "example.com")], "alice@notexample.com", False),
        ([(DOMAIN, "example.com")], "alice@example.com.evil.org", False),
        ([(DOMAIN, "eu.example.com")], "alice@example.com", False),
        ([(DOMAIN, "eu.example.com")], "alice@eu.example.com", True),
        # a domain rule is not an e-mail rule and vice versa
        ([(DOMAIN, "alice.example.com")], "alice@example.com", False),
        # mixed rules are OR-combined
        ([(EMAIL, "carol@partner.org"), (DOMAIN, "example.com")], "carol@partner.org", True),
        ([(EMAIL, "carol@partner.org"), (DOMAIN, "example.com")], "bob@example.com", True),
        ([(EMAIL, "carol@partner.org"), (DOMAIN, "example.com")], "dave@partner.org", False),
        ([(DOMAIN, "example.com"), (DOMAIN, "partner.org")], "dave@partner.org", True),
    ],
)
def test_access_rules_for_a_member(rules, email, visible):
    blueprint = blueprint_with(rules)
    user = UserFactory(email=email)
    assert (blueprint in catalog_for(user)) is visible
    assert (blueprint_for_launch(user, "bp") == blueprint) is visible


@pytest.mark.parametrize(
    ("state", "member_sees", "admin_sees"),
    [
        (BlueprintState.ENABLED, True, True),
        (BlueprintState.TESTING, False, True),
        (BlueprintState.DISABLED, False, False),
    ],
)
def test_state_gates_the_catalog(state, member_sees, admin_sees):
    blueprint = blueprint_with([], state=state)
    assert (blueprint in catalog_for(UserFactory())) is member_sees
    assert (blueprint in catalog_for(AdminFactory())) is admin_sees


def test_admins_are_subject_to_access_rules_too():
    blueprint = blueprint_with([(DOMAIN, "partner.org")], state=BlueprintState.TESTING)
    assert blueprint not in catalog_for(AdminFactory(email="ops@example.com"))
    assert blueprint in catalog_for(AdminFactory(email="ops@partner.org"))


@pytest.mark.parametrize("role_factory", [UserFactory, AdminFactory], ids=["member", "admin"])
def test_an_inactive_member_sees_nothing(role_factory):
    BlueprintFactory(state=BlueprintState.ENABLED)
    BlueprintFactory(state=BlueprintState.TESTING)
    user = role_factory(is_active=False)
    assert list(catalog_for(user)) == []
    assert blueprint_for_launch(user, "bp") is None


@pytest.mark.parametrize("user", [None, AnonymousUser()], ids=["none", "anonymous"])
def test_nobody_signed_in_sees_nothing(user):
    BlueprintFactory(state=BlueprintState.ENABLED)
    assert list(catalog_for(user)) == []


def test_catalog_is_ordered_by_category_then_name_without_duplicates():
    user = UserFactory(email="alice@example.com")
    b = BlueprintFactory(key="b", name="Beta", category="A")
    a = BlueprintFactory(key="a", name="Alpha", category="B")
    c = BlueprintFactory(key="c", name="Gamma", category="A")
    # Several matching rules must not repeat the blueprint.
    AccessRuleFactory(blueprint=c, kind=EMAIL, value="alice@example.com")
    AccessRuleFactory(blueprint=c, kind=DOMAIN, value="example.com")
    assert list(catalog_for(user)) == [b, c, a]


def test_blueprint_for_launch_unknown_key():
    blueprint_with([])
    assert blueprint_for_launch(UserFactory(), "nope") is None
