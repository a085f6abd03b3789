"""Check the audit log's hash chain; exit non-zero naming the first broken entry."""

from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditEvent
from audit.services import audit_verify_chain


class Command(BaseCommand):
    help = "Verify that no audit entry was altered or removed (exit 1 and name the first break)."

    def handle(self, *args, **options) -> None:
        broken = audit_verify_chain()
        if broken is not None:
            raise CommandError(f"audit chain broken at entry #{broken.event_id}: {broken.reason}")
        self.stdout.write(f"audit chain intact ({AuditEvent.objects.count()} entries)")
