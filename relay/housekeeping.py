"""Background work every portal process does once a minute, whatever it serves.

* expired one-time tickets are deleted a day after they expired
  (`workspaces.services.tickets_purge`), so the table only holds recent ones;
* preview sessions idle for `IDLE_TIMEOUT` are ended in the database
  (`security_center.services.preview_sessions_end_idle`); a process that holds one of
  them notices at its next request;
* the audit chain's head is written to the log stream (`audit_publish_head`), so an
  operator's log keeps a head at least every minute to check the chain against.

Both are single statements that are safe to run from many processes at once. The loop
runs for the life of the server: it starts on the ASGI lifespan `startup` event and is
cancelled on `shutdown` (`lifespan`, routed by `relay.routing`; `python -m portal` runs
uvicorn with lifespan on). A failing sweep is logged and retried at the next tick. A
server without lifespan support (daphne) does not run it: `manage.py housekeeping`
does one sweep, from cron.
"""

from __future__ import annotations

import asyncio
import logging

from audit.services import audit_publish_head
from relay.consumers.base import db_async
from relay.consumers.preview.sessions import IDLE_TIMEOUT
from security_center.services import preview_sessions_end_idle
from workspaces.services import tickets_purge

logger = logging.getLogger(__name__)

EVERY = 60.0


def sweep() -> tuple[int, int]:
    """One pass: (tickets deleted, preview sessions ended); the audit head is logged."""
    purged, ended = tickets_purge(), preview_sessions_end_idle(idle_for=IDLE_TIMEOUT)
    audit_publish_head()
    return purged, ended


async def _run() -> None:
    while True:
        await asyncio.sleep(EVERY)
        try:
            purged, ended = await db_async(sweep)()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("portal housekeeping failed; retrying in %g s", EVERY)
        else:
            if purged or ended:
                logger.info(
                    "housekeeping: %d expired tickets purged, %d idle previews ended", purged, ended
                )


async def lifespan(scope, receive, send) -> None:
    """The ASGI lifespan protocol: the loop runs between `startup` and `shutdown`."""
    task: asyncio.Task[None] | None = None
    try:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                task = asyncio.get_running_loop().create_task(_run(), name="portal-housekeeping")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
