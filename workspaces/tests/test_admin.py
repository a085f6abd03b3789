"""Console pages for workspace tag assignments and (view only) tickets."""

import pytest
from django.urls import reverse

from accounts.tests.factories import AdminFactory, UserFactory
from core.tests.admin import assert_refused
from workspaces.models import Ticket
from workspaces.tests.factories import TicketFactory, WorkspaceTagAssignmentFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:workspaces_workspacetagassignment_changelist")
ADD = reverse("admin:workspaces_workspacetagassignment_add")


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def change_url(pk: int) -> str:
    return reverse("admin:workspaces_workspacetagassignment_change", args=[pk])


def test_pages_render_for_admin(client):
    assignment = WorkspaceTagAssignmentFactory()
    client.force_login(AdminFactory())
    for page in (CHANGELIST, ADD, change_url(assignment.pk)):
        assert client.get(page).status_code == 200, page
    changelist = client.get(CHANGELIST).content.decode()
    assert assignment.environment_id in changelist
    assert assignment.tag.user.email in changelist


def test_pages_are_refused_to_a_member(client):
    assignment = WorkspaceTagAssignmentFactory()
    client.force_login(UserFactory())
    for page in (CHANGELIST, ADD, change_url(assignment.pk)):
        assert_refused(client, page)
        assert_refused(client, page, method="post")


@pytest.fixture
def console(client):
    client.force_login(AdminFactory())
    return client


def test_ticket_pages_are_refused_to_a_member(client):
    ticket = TicketFactory()
    client.force_login(UserFactory())
    for page in (url(Ticket, "changelist"), url(Ticket, "change", ticket.pk)):
        assert_refused(client, page)
        assert_refused(client, page, method="post")


def test_ticket_pages_are_view_only_without_the_hash(console):
    ticket = TicketFactory()
    for page in (url(Ticket, "changelist"), url(Ticket, "change", ticket.pk)):
        response = console.get(page)
        assert response.status_code == 200, page
        assert ticket.token_hash not in response.content.decode()
    assert console.get(url(Ticket, "add")).status_code == 403
    assert console.post(url(Ticket, "change", ticket.pk), {"port": "1"}).status_code == 403
    assert console.post(url(Ticket, "delete", ticket.pk), {"post": "yes"}).status_code == 403
