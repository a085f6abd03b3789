"""Pagination shared by the record listings of every app."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class NewestFirstPagination(CursorPagination):
    """100 records a page, newest first; stable while new records arrive."""

    page_size = 100
    ordering = "-pk"
