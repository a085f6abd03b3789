"""Fixtures shared by every app's tests."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and caches never leak between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _close_worker_thread_connections(django_db_setup):
    """Async tests reach the ORM through `sync_to_async`, on asgiref's one worker thread,
    whose connection would otherwise stay open and keep PostgreSQL from dropping the
    test database at the end of the run. Set up after the test database, so torn down
    before it."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


@pytest.fixture
def member(db):
    from accounts.tests.factories import UserFactory

    return UserFactory(email="builder@example.com")


@pytest.fixture
def admin_member(db):
    from accounts.tests.factories import AdminFactory

    return AdminFactory(email="platform@example.com")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
