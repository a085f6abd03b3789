"""Print a new personal API token for a member (for scripts and CI)."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User, normalize_email
from accounts.services import api_token_issue
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Issue a personal API token for EMAIL and print it once (only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="cli", help="A label to tell tokens apart.")
        parser.add_argument("--days", type=int, default=None, help="Lifetime in days.")

    def handle(self, *args, email: str, name: str, days: int | None, **options) -> None:
        user = User.objects.filter(email=normalize_email(email), is_active=True).first()
        if user is None:
            raise CommandError(f"No active member with e-mail {email}.")
        try:
            _, raw = api_token_issue(user=user, name=name, days=days)
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(raw)
