"""Live logs over ``logs`` streams: a workspace's last lines, then its output as written.

The sub-protocol (OPEN payload, log records) is documented in :mod:`agent.protocol`
("logs streams"). Guarantees:

* The first records are the tail — the last ``tail`` lines (1 to 2000, default 200) — then
  ``live``; after it, each record holds output written since the previous one (a burst
  is one record, or a few once it passes 64 KiB), until the portal closes the stream.
* Credit is respected end to end: the log is read again only once the previous burst
  was sent, and a send waits for credit, so a chatty workspace is never read faster
  than the portal reads, and memory per stream stays bounded by one read.
* When the environment is deleted (or the agent shuts down) the stream receives an
  ``end`` record with the reason, then CLOSE; a stream for an environment that does not
  exist, or on a runtime that cannot follow output, receives an ``error`` record and
  `CLOSE_REFUSED`. A stream the portal closes stops its follower at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from agent import protocol as p
from agent.multiplex import Stream
from agent.runtimes.base import LogsEnded, Runtime, RuntimeFailure

logger = logging.getLogger(__name__)

END_TIMEOUT: Final = 5.0
"""Seconds the ``end`` record may wait for credit before the stream is closed anyway."""


class LogService:
    """The ``logs`` stream handler."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle_stream(self, stream: Stream, request: dict[str, Any]) -> None:
        """Serve one ``logs`` stream until the portal closes it or the output ends."""
        try:
            params = p.parse_logs_open(request)
        except p.ProtocolError as exc:
            await stream.close(exc.code, exc.reason)
            return
        try:
            follower = self.runtime.follow_logs(params["environment"])
        except RuntimeFailure as exc:
            await self._refuse(stream, exc.code, exc.message)
            return
        forget = stream.call_on_end(follower.close)
        try:
            tail = await follower.tail(params["tail"])
            live = p.log_control_record({"type": "live"})
            await stream.write(p.log_lines_records(tail) + live)
            while True:
                await stream.write(p.log_lines_records(await follower.next()))
        except LogsEnded as end:
            if not stream.closed:
                await self._end(stream, end)
        finally:
            forget()
            follower.close()

    @staticmethod
    async def _end(stream: Stream, end: LogsEnded) -> None:
        logger.info("logs stream %d ended: %s", stream.id, end.code)
        record = p.log_control_record({"type": "end", "code": end.code, "detail": end.detail})
        # A reader that grants no credit gets the CLOSE without the record.
        with contextlib.suppress(p.StreamClosed, TimeoutError):
            await asyncio.wait_for(stream.write(record), END_TIMEOUT)
        await stream.close(p.CLOSE_NORMAL, end.code)

    @staticmethod
    async def _refuse(stream: Stream, code: str, detail: str) -> None:
        logger.info("refusing logs stream %d: %s", stream.id, code)
        record = p.log_control_record({"type": "error", "code": code, "detail": detail})
        with contextlib.suppress(p.StreamClosed):
            await stream.write(record)
        await stream.close(p.CLOSE_REFUSED, code)
