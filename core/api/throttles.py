"""The organisation's API rate limit (requests per member per minute), read live."""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle

from core import ratelimit
from core.models import OrganizationSettings


class OrganizationApiRateThrottle(BaseThrottle):
    """Counts each authenticated member's API requests per minute against the setting.

    Over the limit: 429 `rate_limited` with `Retry-After`. The limit is read from the
    organisation settings on every request, so a change applies without a restart.
    """

    def allow_request(self, request, view) -> bool:
        self._wait = None
        user = request.user
        if not (user and user.is_authenticated):
            return True
        limit = OrganizationSettings.load().api_rate_per_minute
        self._wait = ratelimit.hit("api", str(user.pk), limit)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
