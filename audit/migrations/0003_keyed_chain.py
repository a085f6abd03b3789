"""The audit chain becomes keyed: each link an HMAC-SHA256 under a key derived from the
configured encryption keys (see `audit.keys`). Existing entries are re-linked once, in
order, under the current key; they were plain SHA-256 links, which anyone with the
database could have recomputed."""

import hashlib
import hmac
import json

from django.db import migrations, models

from audit.keys import chain_keys

GENESIS_HASH = "0" * 64


def _link(key: bytes, key_id: str, event, prev_hash: str) -> str:
    payload = json.dumps(
        {
            "key": key_id,
            "prev": prev_hash,
            "at": event.created_at.isoformat(timespec="microseconds"),
            "actor": event.actor_id,
            "email": event.actor_email,
            "action": event.action,
            "type": event.target_type,
            "id": event.target_id,
            "ip": event.ip,
            "outcome": event.outcome,
            "details": event.details,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def relink(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    keys, key_id = chain_keys()
    prev = GENESIS_HASH
    events = list(AuditEvent.objects.order_by("id"))
    # Two passes keep the unique columns unique at every step: park, then write.
    for event in events:
        AuditEvent.objects.filter(pk=event.pk).update(
            prev_hash=f"relink-p-{event.pk}", hash=f"relink-h-{event.pk}"
        )
    for event in events:
        digest = _link(keys[key_id], key_id, event, prev)
        AuditEvent.objects.filter(pk=event.pk).update(key_id=key_id, prev_hash=prev, hash=digest)
        prev = digest


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_own_table")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(default="", editable=False, max_length=32),
        ),
        migrations.RunPython(relink, migrations.RunPython.noop),
    ]
