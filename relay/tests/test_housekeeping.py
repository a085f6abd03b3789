"""Every portal process purges expired tickets and ends idle previews once a minute."""

import asyncio
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.core.management import call_command
from django.utils import timezone

from relay import housekeeping
from relay.tests.asgi import application
from security_center.models import ConnectionSession
from security_center.tests.factories import ConnectionSessionFactory
from workspaces.models import Ticket
from workspaces.tests.factories import TicketFactory


def _old_and_new():
    now = timezone.now()
    old = TicketFactory(expires_at=now - timedelta(days=2))
    recent = TicketFactory(expires_at=now - timedelta(hours=1))
    live = TicketFactory()
    idle = ConnectionSessionFactory(kind="preview", last_activity_at=now - timedelta(hours=1))
    busy = ConnectionSessionFactory(kind="preview", last_activity_at=now)
    return old, recent, live, idle, busy


@pytest.mark.django_db
def test_a_sweep_purges_day_old_tickets_and_ends_idle_previews():
    old, recent, live, idle, busy = _old_and_new()

    assert housekeeping.sweep() == (1, 1)

    assert not Ticket.objects.filter(pk=old.pk).exists()
    assert set(Ticket.objects.values_list("pk", flat=True)) == {recent.pk, live.pk}
    idle.refresh_from_db()
    busy.refresh_from_db()
    assert idle.close_reason == "idle" and idle.ended_at is not None
    assert busy.ended_at is None


@pytest.mark.django_db
def test_the_housekeeping_command_runs_one_sweep():
    _old_and_new()
    out = StringIO()
    call_command("housekeeping", stdout=out)
    assert out.getvalue().strip() == "purged 1 expired ticket(s), ended 1 idle preview session(s)"


@pytest.mark.django_db(transaction=True)
async def test_the_loop_runs_between_lifespan_startup_and_shutdown(monkeypatch):
    monkeypatch.setattr(housekeeping, "EVERY", 0.05)
    old, *_ = await sync_to_async(_old_and_new)()
    server = ApplicationCommunicator(application, {"type": "lifespan"})
    await server.send_input({"type": "lifespan.startup"})
    assert await server.receive_output(5) == {"type": "lifespan.startup.complete"}
    try:
        for _ in range(100):
            if not await sync_to_async(Ticket.objects.filter(pk=old.pk).exists)():
                break
            await asyncio.sleep(0.05)
        assert not await sync_to_async(Ticket.objects.filter(pk=old.pk).exists)()
        ended = await sync_to_async(ConnectionSession.objects.filter(close_reason="idle").count)()
        assert ended == 1
    finally:
        await server.send_input({"type": "lifespan.shutdown"})
        assert await server.receive_output(5) == {"type": "lifespan.shutdown.complete"}
    await server.wait(5)  # the application returned: the loop was cancelled with it
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "portal-housekeeping"]
