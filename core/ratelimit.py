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


def _failure_keys(scope: str, ident: str) -> tuple[str, str]:
    key = f"ratelimit:{scope}:{ident}:failures"
    return key, f"{key}:since"


def failure_add(scope: str, ident: str, window: int) -> None:
    """Count one failure; the window opens at the first failure and lasts `window` seconds.

    The increment is atomic, so the count is exact across processes with Redis.
    """
    key, since_key = _failure_keys(scope, ident)
    cache.add(since_key, time.time(), timeout=window)
    cache.add(key, 0, timeout=window)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window)


def failure_wait(scope: str, ident: str, limit: int, window: int) -> int | None:
    """Seconds until the window closes when `limit` failures are counted in it, else None."""
    key, since_key = _failure_keys(scope, ident)
    if cache.get(key, 0) < limit:
        return None
    since = cache.get(since_key, time.time())
    return max(1, int(since + window - time.time() + 0.999))


def failure_reset(scope: str, ident: str) -> None:
    """Forget the failures counted for `ident` (e.g. after a success)."""
    cache.delete_many(list(_failure_keys(scope, ident)))
