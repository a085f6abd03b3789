"""Logging filters of the portal."""

from __future__ import annotations

import logging
import re

_QUERY = re.compile(r"\?[^\s\"']*")


class RedactQueryStrings(logging.Filter):
    """Cut the query string off every path a record carries.

    uvicorn logs each WebSocket it accepts or refuses with its full path, and terminal
    sockets carry their one-time ticket in the query string (`/ws/terminal/?ticket=…`):
    no ticket may reach a log, used or not.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _QUERY.sub("?…", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = _QUERY.sub("?…", record.msg)
        return True
