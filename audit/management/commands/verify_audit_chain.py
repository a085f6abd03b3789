"""Check the audit log's keyed chain; exit non-zero naming the first broken entry."""

import re

from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditEvent
from audit.services import audit_verify_chain

HEAD = re.compile(r"(\d+):([0-9a-f]{64})")


class Command(BaseCommand):
    help = (
        "Verify that no audit entry was altered, removed or re-linked without the key "
        "(exit 1 and name the first break). With --head SEQ:HASH (a head the portal "
        "logged as 'audit chain head SEQ HASH'), also that the log was not cut after it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--head",
            metavar="SEQ:HASH",
            help="a chain head kept outside the database, from the portal's log stream",
        )

    def handle(self, *args, head: str | None = None, **options) -> None:
        expected = None
        if head is not None:
            match = HEAD.fullmatch(head.strip())
            if match is None:
                raise CommandError("--head must be SEQ:HASH (a number, a colon, 64 hex digits)")
            expected = (int(match.group(1)), match.group(2))
        broken = audit_verify_chain(head=expected)
        if broken is not None:
            raise CommandError(f"audit chain broken at entry #{broken.event_id}: {broken.reason}")
        latest = AuditEvent.objects.order_by("-id").only("id", "hash").first()
        tail = f"; head {latest.id}:{latest.hash}" if latest is not None else ""
        self.stdout.write(f"audit chain intact ({AuditEvent.objects.count()} entries){tail}")
