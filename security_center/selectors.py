"""Reads of the security centre's records."""

from __future__ import annotations

from django.db.models import QuerySet

from security_center.models import ConnectionSession

TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})


def connection_search(*, active: str | bool | None = None) -> QuerySet[ConnectionSession]:
    """Connection sessions, newest first; `active` keeps only open (or only ended) ones.

    `active` may be a bool or a query-string word (true/1/yes, false/0/no); anything
    else means "all".
    """
    sessions = ConnectionSession.objects.select_related("cluster")
    word = str(active).lower() if active is not None else ""
    if word in TRUE_WORDS:
        return sessions.filter(ended_at__isnull=True)
    if word in FALSE_WORDS:
        return sessions.filter(ended_at__isnull=False)
    return sessions
