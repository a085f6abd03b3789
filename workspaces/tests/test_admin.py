"""Console page for workspace tag assignments."""

import pytest
from django.urls import reverse

from accounts.tests.factories import AdminFactory, UserFactory
from portal.tests.test_admin import assert_refused
from workspaces.tests.factories import WorkspaceTagAssignmentFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:workspaces_workspacetagassignment_changelist")
ADD = reverse("admin:workspaces_workspacetagassignment_add")


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
