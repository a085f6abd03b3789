"""The terminal page and its status probe: owner only, 404 for anyone else."""

import pytest
from django.urls import reverse

from security_center.tests.factories import FirewallRuleFactory
from workspaces.tests.test_api import seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace_id(control_plane, blueprint, member):
    blueprint.layout_tabs = [
        {"kind": "terminal", "title": "Shell"},
        {"kind": "command", "title": "Tests", "command": "npm test -- --watch"},
    ]
    blueprint.save()
    return seed(control_plane, blueprint, member.email).id


def test_the_owner_gets_the_terminal_page_without_any_tab_command(client, member, workspace_id):
    client.force_login(member)
    page = client.get(reverse("workspace-terminal", args=[workspace_id]), {"tab": 1})
    assert page.status_code == 200
    body = page.content.decode()
    assert f'data-workspace="{workspace_id}"' in body and 'data-tab="1"' in body
    assert "vendor/xterm/xterm.mjs" in body and "js/terminal-page.js" in body
    assert "npm test" not in body  # commands are resolved by the portal, never sent
    assert (
        client.get(reverse("workspace-terminal", args=[workspace_id]), {"tab": 5}).status_code
        == 404
    )


def test_someone_elses_or_an_unknown_workspace_is_404(client, stranger, workspace_id):
    client.force_login(stranger)
    for name in ("workspace-terminal", "workspace-terminal-status"):
        assert client.get(reverse(name, args=[workspace_id])).status_code == 404
        assert client.get(reverse(name, args=["env-unknown"])).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, workspace_id):
    response = client.get(reverse("workspace-terminal", args=[workspace_id]))
    assert response.status_code == 302


def test_status_reports_the_workspace_and_the_firewall(client, member, workspace_id):
    client.force_login(member)
    url = reverse("workspace-terminal-status", args=[workspace_id])
    assert client.get(url).json() == {"status": "running", "firewall": "allowed"}
    FirewallRuleFactory(action="deny", cidr="127.0.0.0/8", priority=1)
    assert client.get(url).json()["firewall"] == "blocked"


@pytest.mark.parametrize(("sandbox", "shown"), [("none", True), ("bubblewrap", False)])
def test_the_terminal_bar_says_when_the_workspace_is_not_isolated(
    client, member, workspace_id, cluster, sandbox, shown
):
    cluster.isolation = {"sandbox": sandbox}
    cluster.save()
    client.force_login(member)
    body = client.get(reverse("workspace-terminal", args=[workspace_id])).content.decode()
    notice = "Not isolated: other workspaces on this cluster can reach this one"
    assert (notice in body) is shown
