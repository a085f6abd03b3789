"""One housekeeping sweep: purge day-old expired tickets, end idle preview sessions, log
the audit chain's head."""

from django.core.management.base import BaseCommand

from relay import housekeeping


class Command(BaseCommand):
    help = (
        "Run one housekeeping sweep (purge tickets expired for a day, end preview sessions "
        "idle for the preview idle timeout, log the audit chain head). `python -m portal` "
        "does this every minute; run it from cron under a server without ASGI lifespan "
        "support (daphne)."
    )

    def handle(self, *args, **options) -> None:
        purged, ended = housekeeping.sweep()
        self.stdout.write(
            f"purged {purged} expired ticket(s), ended {ended} idle preview session(s)"
        )
