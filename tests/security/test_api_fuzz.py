"""Schemathesis against the API's own OpenAPI schema, as a builder and as an admin:
bounded and deterministic (a fixed seed, a few examples per operation). No answer is a
5xx, and every documented answer matches its schema."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from accounts.services import api_token_issue
from accounts.tests.factories import AdminFactory, UserFactory

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The WSGI app runs in the test's transaction (as Django's test client does): it must
    not close the connection at the end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture
def builder_token(db):
    _, raw = api_token_issue(user=UserFactory(email="fuzz-builder@example.com"), name="fuzz")
    return raw


@pytest.fixture
def admin_token(db):
    _, raw = api_token_issue(user=AdminFactory(email="fuzz-admin@example.com"), name="fuzz")
    return raw


FUZZ = settings(
    max_examples=8,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@schema.parametrize()
@FUZZ
def test_the_api_never_fails_a_builder(case, builder_token):
    case.call_and_validate(headers={"Authorization": f"Token {builder_token}"}, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_the_api_never_fails_an_admin(case, admin_token):
    case.call_and_validate(headers={"Authorization": f"Token {admin_token}"}, checks=CHECKS)
