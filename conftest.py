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
def _sandboxes_reach_their_directories(tmp_path_factory):
    """Under root the agent runs each sandbox as a uid of its own, which must be able to
    pass through the directories above an agent's data dir (as on a real host, where
    they are 0755); pytest makes its temporary root 0700."""
    import os

    base = tmp_path_factory.getbasetemp()
    if os.geteuid() == 0:
        for path in (base.parent, base):
            path.chmod(0o711)


@pytest.fixture(autouse=True)
def _sandboxes_reach_tmp_path(request):
    """The same for each test's own `tmp_path` (pytest makes it 0700)."""
    import os

    if os.geteuid() == 0 and "tmp_path" in request.fixturenames:
        request.getfixturevalue("tmp_path").chmod(0o711)


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
