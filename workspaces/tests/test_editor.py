"""The editor page: owner only, the layout's titles and kinds but never its commands."""

import json
import re

import pytest
from django.urls import reverse

from audit.services import audit_record
from workspaces.tests.test_api import seed

pytestmark = pytest.mark.django_db


def editor_data(response) -> dict:
    match = re.search(
        r'<script id="editor-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "the editor embeds its data"
    return json.loads(match.group(1))


@pytest.fixture
def workspace_id(control_plane, blueprint, member):
    blueprint.ports = [{"port": 3000, "name": "web"}]
    blueprint.layout_tabs = [
        {"kind": "terminal", "title": "Shell"},
        {"kind": "command", "title": "Tests", "command": "npm test -- --watch"},
        {"kind": "files", "title": "Files"},
    ]
    blueprint.save()
    return seed(control_plane, blueprint, member.email, name="Shop").id


def test_the_owner_gets_the_editor_with_the_layout_but_no_command(client, member, workspace_id):
    client.force_login(member)
    response = client.get(reverse("workspace-editor", args=[workspace_id]))
    assert response.status_code == 200
    data = editor_data(response)
    assert data["workspace"]["name"] == "Shop" and data["blueprint"]["name"] == "Web app"
    assert data["blueprint"]["tabs"] == [
        {"kind": "terminal", "title": "Shell"},
        {"kind": "command", "title": "Tests"},
        {"kind": "files", "title": "Files"},
    ]
    assert "npm test" not in response.content.decode()
    assert data["preview_origins"] == {
        "3000": f"http://{workspace_id.lower()}-3000.preview.portal.localhost:8000"
    }
    body = response.content.decode()
    for name in ('aria-label="Workspace tabs"', 'title="Preview"', 'aria-label="Preview path"'):
        assert name in body
    for label in ("Back", "Forward", "Reload preview", "Open preview in a new tab", "Port"):
        assert f'aria-label="{label}"' in body
    for button in ("Desktop", "Tablet", "Mobile", "Publish", "Stop", "Start", "Restart"):
        assert f">{button}</button>" in body
    assert 'role="status" id="ws-status"' in body


def test_a_blueprint_without_preview_has_no_preview_panel(client, member, blueprint, workspace_id):
    blueprint.preview_enabled = False
    blueprint.save()
    client.force_login(member)
    body = client.get(reverse("workspace-editor", args=[workspace_id])).content.decode()
    assert 'title="Preview"' not in body and "no-preview" in body


def test_a_locked_layout_offers_no_new_terminal(client, member, blueprint, workspace_id):
    client.force_login(member)
    url = reverse("workspace-editor", args=[workspace_id])
    assert 'aria-label="New terminal"' in client.get(url).content.decode()
    blueprint.layout_locked = True
    blueprint.save()
    response = client.get(url)
    assert 'aria-label="New terminal"' not in response.content.decode()
    assert editor_data(response)["blueprint"]["locked"] is True


def test_someone_elses_or_an_unknown_workspace_is_404(client, stranger, workspace_id):
    client.force_login(stranger)
    assert client.get(reverse("workspace-editor", args=[workspace_id])).status_code == 404
    assert client.get(reverse("workspace-editor", args=["env-unknown"])).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, workspace_id):
    response = client.get(reverse("workspace-editor", args=[workspace_id]))
    assert response.status_code == 302 and "/login/" in response.url


def test_an_unreachable_cluster_is_explained(client, member, control_plane, workspace_id):
    audit_record(
        action="workspace.launch",
        actor=member,
        target_type="workspace",
        target_id=workspace_id,
        details={"cluster": "main"},
    )
    control_plane.set_unreachable("main")
    client.force_login(member)
    response = client.get(reverse("workspace-editor", args=[workspace_id]))
    assert response.status_code == 503
    assert "cannot be opened right now" in response.content.decode()
