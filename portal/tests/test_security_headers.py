"""Every portal page carries a Content-Security-Policy without inline script or eval,
frames only the preview origins, may be framed by the portal only; Permissions-Policy and
Cross-Origin-Opener-Policy too."""

import pytest
from django.urls import reverse

from accounts.tests.factories import AdminFactory, UserFactory

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    result = {}
    for part in policy.split(";"):
        name, *values = part.split()
        result[name] = values
    return result


@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/api/v1/me"])
def test_public_pages_have_the_policy(client, path):
    response = client.get(path)
    policy = directives(response)
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert policy["frame-ancestors"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert response["Permissions-Policy"].startswith("camera=()")
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_signed_in_pages_frame_only_the_preview_origins(client, settings):
    client.force_login(AdminFactory())
    for path in ("/", "/account/", reverse("admin:index"), reverse("admin:workspaces_console")):
        response = client.get(path)
        assert response.status_code == 200, path
        policy = directives(response)
        assert policy["frame-src"] == [f"http://*.{settings.PREVIEW_DOMAIN}:*"], path
        assert policy["script-src"] == ["'self'"], path


def test_portal_pages_carry_no_inline_script(client):
    client.force_login(UserFactory())
    for path in ("/", "/account/"):
        html = client.get(path).content.decode()
        for tag in html.split("<script")[1:]:
            head = tag.split(">", 1)[0]
            assert "src=" in head or 'type="application/json"' in head, head
        assert " onclick=" not in html and " onload=" not in html
