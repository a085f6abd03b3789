"""Workspace services: names and what a terminal tab runs."""

import re

import pytest

from accounts.tests.factories import UserFactory
from blueprints.tests.factories import BlueprintFactory
from workspaces.services import display_name, render_name

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(cluster):
    return BlueprintFactory(key="shop", cluster=cluster)


def test_render_name_fills_every_placeholder(shop):
    user = UserFactory(email="Jane.Doe+work@example.com")

    name = render_name("{user}/{blueprint}/{random}/{name}", user=user, blueprint=shop, name="x")

    assert re.fullmatch(r"jane-doe-work/shop/[0-9a-f]{4}/x", name)


def test_render_name_defaults_the_name_to_the_blueprint_key(shop, member):
    assert render_name("{user}-{name}", user=member, blueprint=shop, name="") == "builder-shop"


def test_render_name_of_an_unusual_local_part(shop):
    user = UserFactory(email="+++@example.com")

    assert render_name("{user}", user=user, blueprint=shop, name="") == "user"


def test_render_name_is_at_most_sixty_characters(shop, member):
    assert len(render_name("{name}{name}", user=member, blueprint=shop, name="n" * 50)) == 60


def test_render_name_is_random_per_call(shop, member):
    names = {render_name("{random}", user=member, blueprint=shop, name="") for _ in range(20)}

    assert len(names) > 1


def test_display_name_keeps_a_typed_name(shop, member):
    shop.naming_template = "{user}-{blueprint}-{random}"

    assert display_name(shop, user=member, name="My shop") == "My shop"


def test_display_name_uses_the_template_without_a_name(shop, member):
    shop.naming_template = "{user}-{blueprint}"

    assert display_name(shop, user=member, name="") == "builder-shop"


def test_display_name_embeds_a_typed_name_in_a_template_that_asks_for_it(shop, member):
    shop.naming_template = "{user}-{name}"

    assert display_name(shop, user=member, name="demo") == "builder-demo"


# --- what a terminal tab runs ----------------------------------------------------------------


def _tabbed(blueprint):
    blueprint.layout_tabs = [
        {"kind": "command", "title": "Dev server", "command": "npm run dev"},
        {"kind": "terminal", "title": "Terminal"},
        {"kind": "claude", "title": "Claude Code"},
    ]
    blueprint.save()
    return blueprint


def test_tab_command_follows_the_layout_tab_0_included(control_plane, blueprint, member):
    from workspaces.services import workspace_tab_command
    from workspaces.tests.test_api import seed

    env = seed(control_plane, _tabbed(blueprint), member.email)
    commands = [
        workspace_tab_command(user=member, cluster=blueprint.cluster, workspace_id=env.id, tab=t)
        for t in range(3)
    ]
    assert commands == ["npm run dev", None, "claude"]


def test_tab_command_refuses_a_tab_the_layout_lacks(control_plane, blueprint, member):
    from core.errors import ApplicationError
    from workspaces.services import workspace_tab_command
    from workspaces.tests.test_api import seed

    env = seed(control_plane, blueprint, member.email)
    with pytest.raises(ApplicationError) as refused:
        workspace_tab_command(user=member, cluster=blueprint.cluster, workspace_id=env.id, tab=1)
    assert refused.value.code == "tab_invalid"


def test_tab_command_of_someone_elses_workspace_is_not_found(
    control_plane, blueprint, member, stranger, admin_member
):
    from workspaces.controlplane import EnvironmentNotFound
    from workspaces.services import workspace_tab_command
    from workspaces.tests.test_api import seed

    env = seed(control_plane, _tabbed(blueprint), stranger.email)
    with pytest.raises(EnvironmentNotFound):
        workspace_tab_command(user=member, cluster=blueprint.cluster, workspace_id=env.id, tab=0)
    # an admin may open any workspace's tabs
    assert (
        workspace_tab_command(
            user=admin_member, cluster=blueprint.cluster, workspace_id=env.id, tab=0
        )
        == "npm run dev"
    )


def test_an_extra_terminal_is_a_plain_shell_unless_the_layout_is_locked(
    control_plane, blueprint, member
):
    from core.errors import ApplicationError
    from workspaces.services import EXTRA_SHELL, workspace_tab_command
    from workspaces.tests.test_api import seed

    env = seed(control_plane, _tabbed(blueprint), member.email)
    ask = dict(user=member, cluster=blueprint.cluster, workspace_id=env.id, tab=EXTRA_SHELL)
    assert workspace_tab_command(**ask) is None
    blueprint.layout_locked = True
    blueprint.save()
    with pytest.raises(ApplicationError) as refused:
        workspace_tab_command(**ask)
    assert refused.value.code == "tab_invalid"


def test_an_exact_name_skips_the_naming_template(control_plane, blueprint, member):
    from workspaces.services import workspace_launch

    blueprint.naming_template = "{user}-{name}"
    blueprint.save()
    templated = workspace_launch(actor=member, blueprint_key=blueprint.key, name="shop")
    exact = workspace_launch(
        actor=member, blueprint_key=blueprint.key, name="builder-shop", exact_name=True
    )
    assert templated.name == "builder-shop" and exact.name == "builder-shop"


@pytest.mark.parametrize(
    "template", ["{random:>30000000}", "{name!r}", "{user.__class__}", "{user[0]}"]
)
def test_render_name_never_formats_a_spec_a_conversion_or_an_attribute(shop, member, template):
    name = render_name(template, user=member, blueprint=shop, name="")
    assert len(name) <= 60 and "class" not in name and "'" not in name
