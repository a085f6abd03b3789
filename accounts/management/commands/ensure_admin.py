"""Create the first admin account if there is none (used by `make run`)."""

import os
import secrets
import sys

from django.core.management.base import BaseCommand

from accounts.choices import Role
from accounts.models import User, normalize_email


class Command(BaseCommand):
    help = (
        "Create an admin with a generated password when no admin exists, printing the "
        "password once. Does nothing (but say who can sign in) when an admin exists."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", default="admin@portal.localhost")

    def handle(self, *args, email: str, **options) -> None:
        python = os.path.relpath(sys.executable)
        if python.startswith(".."):
            python = sys.executable
        existing = User.objects.filter(role=Role.ADMIN, is_active=True).order_by("pk").first()
        if existing is not None:
            self.stdout.write(
                f"Sign in as {existing.email} (password printed when it was created; "
                f"reset it with: {python} manage.py changepassword {existing.email})"
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(normalize_email(email), password)
        self.stdout.write(f"Created admin {email} with password: {password}")
        self.stdout.write("This password is shown only now.")
