"""One-time tickets: uniqueness, binding, expiry, single redemption under any concurrency."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from accounts.tests.factories import UserFactory
from clusters.tests.factories import ClusterFactory
from core.crypto import hash_secret
from workspaces.choices import TicketKind
from workspaces.models import Ticket
from workspaces.services import TICKET_TTL, ticket_issue, ticket_redeem, tickets_purge
from workspaces.tests.factories import TicketFactory

pytestmark = pytest.mark.django_db

SHELL, PREVIEW = TicketKind.SHELL, TicketKind.PREVIEW


@pytest.fixture
def cluster(db):
    return ClusterFactory()


def test_str():
    ticket = TicketFactory(environment_id="env-1", kind=TicketKind.SHELL)
    assert str(ticket) == "shell ticket for env-1"
    assert ticket.token_hash not in str(ticket)


def test_a_preview_ticket_needs_a_port():
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketFactory(kind=TicketKind.PREVIEW, port=None)
    TicketFactory(kind=TicketKind.PREVIEW, port=3000)
    TicketFactory(kind=TicketKind.SHELL, port=None)


def test_ticket_kind_is_constrained():
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketFactory(kind="sftp")


def test_two_tickets_with_the_same_hash_are_refused():
    ticket = TicketFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketFactory(token_hash=ticket.token_hash)


@pytest.mark.django_db
def test_ticket_issue_stores_the_hash_and_a_30_second_expiry(member, cluster):
    ticket, raw = ticket_issue(
        kind=PREVIEW,
        user=member,
        environment_id="env-1",
        cluster=cluster,
        port=3000,
        client_ip="198.51.100.1",
    )
    ticket.refresh_from_db()
    assert ticket.token_hash == hash_secret(raw)
    assert not Ticket.objects.filter(token_hash=raw).exists()
    assert TICKET_TTL - timedelta(seconds=2) < ticket.expires_at - timezone.now() <= TICKET_TTL
    assert (ticket.user, ticket.port, ticket.used_at) == (member, 3000, None)


@pytest.mark.django_db
def test_a_ticket_is_redeemed_once(member, cluster):
    ticket, raw = ticket_issue(kind=SHELL, user=member, environment_id="env-1", cluster=cluster)
    won = ticket_redeem(raw=raw, kind=SHELL, environment_id="env-1")
    assert won.pk == ticket.pk
    assert won.user == member
    assert won.used_at is not None
    assert ticket_redeem(raw=raw, kind=SHELL, environment_id="env-1") is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("redeem", "wins"),
    [
        ({"kind": PREVIEW, "environment_id": "env-1", "port": 3000}, True),
        ({"kind": PREVIEW, "environment_id": "env-1"}, False),
        ({"kind": PREVIEW, "environment_id": "env-2", "port": 3000}, False),
        ({"kind": PREVIEW, "environment_id": "env-1", "port": 3001}, False),
        ({"kind": SHELL, "environment_id": "env-1"}, False),
        ({"kind": SHELL, "environment_id": "env-1", "port": 3000}, False),
    ],
    ids=[
        "exact",
        "preview needs its port",
        "wrong env",
        "wrong port",
        "wrong kind",
        "wrong kind+port",
    ],
)
def test_a_ticket_is_bound_to_environment_kind_and_port(member, cluster, redeem, wins):
    _, raw = ticket_issue(
        kind=PREVIEW, user=member, environment_id="env-1", cluster=cluster, port=3000
    )
    assert (ticket_redeem(raw=raw, **redeem) is not None) is wins
    if not wins:
        # A mismatched attempt does not burn the ticket.
        assert ticket_redeem(raw=raw, kind=PREVIEW, environment_id="env-1", port=3000)


@pytest.mark.django_db
def test_an_expired_ticket_fails(member, cluster):
    ticket, raw = ticket_issue(kind=SHELL, user=member, environment_id="env-1", cluster=cluster)
    Ticket.objects.filter(pk=ticket.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert ticket_redeem(raw=raw, kind=SHELL, environment_id="env-1") is None
    assert Ticket.objects.get(pk=ticket.pk).used_at is None


@pytest.mark.django_db
def test_tickets_purge_deletes_only_long_expired_tickets():
    old = TicketFactory(expires_at=timezone.now() - timedelta(days=2))
    recent = TicketFactory(expires_at=timezone.now() - timedelta(hours=1))
    live = TicketFactory()
    assert tickets_purge() == 1
    assert set(Ticket.objects.values_list("pk", flat=True)) == {recent.pk, live.pk}
    assert not Ticket.objects.filter(pk=old.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_50_concurrent_redemptions_wins():
    user = UserFactory()
    ticket, raw = ticket_issue(
        kind=SHELL, user=user, environment_id="env-race", cluster=ClusterFactory()
    )
    threads = 50
    barrier = threading.Barrier(threads)
    winners: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def redeem() -> None:
        try:
            barrier.wait(timeout=30)
            result = ticket_redeem(raw=raw, kind=SHELL, environment_id="env-race")
            if result is not None:
                with lock:
                    winners.append(result.pk)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=redeem) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert winners == [ticket.pk]
    assert Ticket.objects.get(pk=ticket.pk).used_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["", "unknown-ticket", "x" * 201])
def test_unknown_or_absurd_values_fail(raw, member, cluster):
    ticket_issue(kind=SHELL, user=member, environment_id="env-1", cluster=cluster)
    assert ticket_redeem(raw=raw, kind=SHELL) is None


def test_a_suspended_members_ticket_is_refused_and_stays_unused(cluster):
    user = UserFactory()
    ticket, raw = ticket_issue(kind=SHELL, user=user, environment_id="env-1", cluster=cluster)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert ticket_redeem(raw=raw, kind=SHELL) is None
    ticket.refresh_from_db()
    assert ticket.used_at is None
