"""Members for the base app's own tests, made through the configured user model.

`core` sits below `accounts`, so its tests reach the user model the way a reusable app
does (`get_user_model()`), never through `accounts`' factories.
"""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model

_numbers = itertools.count(1)


def make_admin(**fields):
    """A platform engineer (active unless `fields` say otherwise)."""
    email = f"core-admin-{next(_numbers)}@example.com"
    return get_user_model().objects.create_superuser(email, **fields)


def make_member(**fields):
    """A builder (active unless `fields` say otherwise)."""
    email = f"core-member-{next(_numbers)}@example.com"
    return get_user_model().objects.create_user(email, **fields)
