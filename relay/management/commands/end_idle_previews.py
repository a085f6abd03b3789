"""End preview sessions idle for longer than the preview idle timeout (default 30 min)."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from relay.consumers.preview.sessions import IDLE_TIMEOUT
from security_center.services import preview_sessions_end_idle


class Command(BaseCommand):
    help = (
        "End preview sessions with no traffic for --minutes (default: the preview idle "
        "timeout). Portal processes already do this every minute; run it from cron when "
        "no portal process is up, or to apply a shorter limit."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--minutes",
            type=float,
            default=IDLE_TIMEOUT.total_seconds() / 60,
            help="Inactivity after which a session ends.",
        )

    def handle(self, *args, **options) -> None:
        ended = preview_sessions_end_idle(idle_for=timedelta(minutes=options["minutes"]))
        self.stdout.write(f"ended {ended} idle preview session(s)")
