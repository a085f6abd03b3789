"""Fixed-window rate counters in the cache (Redis in production, shared by every process)."""

from __future__ import annotations

import time

from django.core.cache import cache


def hit(scope: str, ident: str, limit: int, window: int = 60) -> int | None:
    """Count one event; return seconds until the window resets when over `limit`, else None.

    One atomic increment per call: counters are exact across processes with Redis.
    """
    now = time.time()
    bucket = int(now // window)
    key = f"ratelimit:{scope}:{ident}:{bucket}"
    cache.add(key, 0, timeout=window + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window + 5)
        count = 1
    if count > limit:
        return max(1, int((bucket + 1) * window - now + 0.999))
    return None
