"""Re-encrypt every stored secret under the newest key of PORTAL_ENCRYPTION_KEYS."""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast

from audit.services import ChainBroken, audit_relink
from core.crypto import DecryptionError, EncryptedTextField, decrypt, key_id_of, keyring


class Command(BaseCommand):
    help = (
        "Re-seal every encrypted field under the newest key (the last entry of "
        "PORTAL_ENCRYPTION_KEYS) and re-link the audit chain under it (after verifying it). "
        "Add the new key at the end, run this, then drop old keys."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would change; write nothing."
        )

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        ring = keyring()
        total = 0
        for model in apps.get_models():
            for field in model._meta.get_fields():
                if isinstance(field, EncryptedTextField):
                    total += self._rotate(model, field, ring, dry_run)
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        self.stdout.write(f"{verb} {total} secret(s) under key {ring.current!r}")
        if dry_run:
            return
        try:
            relinked = audit_relink()
        except ChainBroken as exc:
            raise CommandError(
                f"{exc}; the audit chain was not re-linked (keep the old key listed)."
            ) from exc
        self.stdout.write(f"re-linked {relinked} audit entr(ies) under key {ring.current!r}")

    def _rotate(self, model, field, ring, dry_run: bool) -> int:
        raw_values = (
            model._default_manager.exclude(**{field.attname: ""})
            .exclude(**{f"{field.attname}__isnull": True})
            .annotate(_raw=Cast(field.attname, output_field=TextField()))
            .values_list("pk", "_raw")
        )
        count = 0
        with transaction.atomic():
            for pk, raw in raw_values:
                try:
                    if key_id_of(raw) == ring.current:
                        continue
                    plain = decrypt(raw, ring=ring)
                except DecryptionError as exc:
                    raise CommandError(
                        f"{model._meta.label} #{pk} {field.name}: {exc}; nothing was changed."
                    ) from exc
                count += 1
                if not dry_run:
                    model._default_manager.filter(pk=pk).update(**{field.attname: plain})
        return count
