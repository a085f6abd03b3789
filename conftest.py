"""Fixtures shared by every app's tests."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and caches never leak between tests."""
    cache.clear()
    yield
    cache.clear()


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
