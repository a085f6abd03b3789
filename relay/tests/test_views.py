"""The portal page embedding a preview: owner only, a fresh ticket per load, 404 otherwise."""

import pytest
from django.urls import reverse

from workspaces.models import Ticket
from workspaces.tests.conftest import blueprint, cluster, control_plane, stranger  # noqa: F401
from workspaces.tests.test_api import seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace_id(control_plane, blueprint, member):  # noqa: F811
    blueprint.ports = [{"port": 3000, "name": "app"}, {"port": 5173, "name": "vite"}]
    blueprint.save()
    return seed(control_plane, blueprint, member.email).id


def test_the_owner_gets_an_iframe_on_the_preview_origin(client, member, workspace_id):
    client.force_login(member)
    page = client.get(reverse("workspace-preview", args=[workspace_id]), {"port": 5173})
    assert page.status_code == 200
    body = page.content.decode()
    host = f"{workspace_id}-5173.preview.portal.localhost"
    assert f'src="http://{host}:8000/__enclave__/auth?ticket=' in body
    assert "allow-top-navigation" not in body  # the app cannot navigate the portal away
    ticket = Ticket.objects.get()
    assert (ticket.kind, ticket.environment_id, ticket.port) == ("preview", workspace_id, 5173)


def test_an_undeclared_port_is_refused_without_a_ticket(client, member, workspace_id):
    client.force_login(member)
    page = client.get(reverse("workspace-preview", args=[workspace_id]), {"port": 9999})
    assert page.status_code == 400 and not Ticket.objects.exists()


def test_someone_elses_or_an_unknown_workspace_is_404_without_a_ticket(
    client,
    stranger,  # noqa: F811
    workspace_id,
):
    client.force_login(stranger)
    for workspace in (workspace_id, "env-000000000000"):
        assert client.get(reverse("workspace-preview", args=[workspace])).status_code == 404
    assert not Ticket.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(client, workspace_id):
    assert client.get(reverse("workspace-preview", args=[workspace_id])).status_code == 302
    assert not Ticket.objects.exists()


@pytest.mark.parametrize(("sandbox", "shown"), [("none", True), ("bubblewrap", False)])
def test_the_preview_says_when_the_workspace_is_not_isolated(
    client,
    member,
    workspace_id,
    cluster,  # noqa: F811
    sandbox,
    shown,
):
    cluster.isolation = {"sandbox": sandbox}
    cluster.save()
    client.force_login(member)
    body = client.get(reverse("workspace-preview", args=[workspace_id])).content.decode()
    notice = "Not isolated: other workspaces on this cluster can reach this one"
    assert (notice in body) is shown
