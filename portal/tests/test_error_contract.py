"""Every /api/v1/ answer is `{detail, code}` JSON with a 4xx — deep JSON, oversize bodies,
too many fields, unknown paths and malformed ids included — and an unknown WebSocket path
closes with 4404 instead of crashing."""

import json

import pytest
from channels.testing import WebsocketCommunicator

from accounts.tests.factories import UserFactory
from relay.routing import asgi_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def builder(client):
    user = UserFactory()
    client.force_login(user)
    return client


def assert_contract(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:200]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code and body["detail"]


def test_a_50000_deep_json_body_is_a_parse_error(builder):
    body = "[" * 50_000 + "]" * 50_000
    response = builder.post("/api/v1/me/tags", body, content_type="application/json")
    assert_contract(response, 400, "parse_error")


def test_a_deep_json_file_save_is_a_parse_error(builder):
    body = '{"content": ' + "[" * 50_000 + "]" * 50_000 + "}"
    response = builder.put(
        "/api/v1/workspaces/env-0123456789ab/files/content?path=a.txt",
        body,
        content_type="application/json",
    )
    assert response.status_code in (400, 404)
    assert response.json()["code"] in ("parse_error", "not_found")


def test_an_oversize_body_is_413_json(builder, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = builder.post(
        "/api/v1/me/tags", '{"name": "' + "x" * 4096 + '"}', content_type="application/json"
    )
    assert_contract(response, 413, "request_too_large")


def test_too_many_form_fields_is_400_json(builder, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    data = "&".join(f"f{i}=1" for i in range(50))
    response = builder.post(
        "/api/v1/me/tags", data, content_type="application/x-www-form-urlencoded"
    )
    assert_contract(response, 400, "too_many_fields")


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-endpoint", "/api/v1/workspaces/", "/api/v1/a/../../etc/passwd"]
)
def test_unknown_paths_are_404_json(builder, path):
    assert_contract(builder.get(path), 404, "not_found")
    assert_contract(builder.post(path, {}, content_type="application/json"), 404, "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/workspaces/not%20an%20id",
        "/api/v1/workspaces/env-%00",
        "/api/v1/me/tokens/abc",
        "/api/v1/me/tags/abc",
        "/api/v1/me/tokens/99999999999999999999999",
        "/api/v1/admin/members/abc",
    ],
)
@pytest.mark.parametrize("method", ["get", "delete", "patch"])
def test_malformed_ids_answer_a_json_4xx(builder, path, method):
    response = getattr(builder, method)(path, content_type="application/json")
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:200])
    assert response["Content-Type"].startswith("application/json")
    assert set(response.json()) >= {"detail", "code"}


def test_unknown_paths_are_json_for_anonymous_callers_too(client):
    assert_contract(client.get("/api/v1/nothing-here"), 404, "not_found")


def test_a_crash_under_the_api_is_json_without_a_traceback(rf):
    from portal.views import server_error

    response = server_error(rf.get("/api/v1/workspaces"))
    assert response.status_code == 500
    assert b"Traceback" not in response.content
    assert json.loads(response.content)["code"] == "server_error"


async def test_an_unknown_websocket_path_closes_with_4404():
    async def http(scope, receive, send):  # never reached by a WebSocket
        raise AssertionError

    communicator = WebsocketCommunicator(asgi_application(http), "/ws/nothing/")
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_output(timeout=2)
    assert message["type"] == "websocket.close" and message["code"] == 4404
    await communicator.wait()
