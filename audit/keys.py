"""The keys of the audit chain: HMAC-SHA256 keys derived from the portal's configured
encryption keys (``PORTAL_ENCRYPTION_KEYS``, "key-id:base64"), never stored in the
database. The last key signs new entries; every configured key verifies, so the chain
survives a key rotation as long as the old key stays listed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

INFO = b"enclave audit chain v1"
"""Separates the audit keys from the encryption keys they are derived from."""


@lru_cache(maxsize=4)
def _parse(entries: tuple[str, ...]) -> tuple[dict[str, bytes], str]:
    keys: dict[str, bytes] = {}
    current = ""
    for entry in entries:
        key_id, sep, encoded = entry.strip().partition(":")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ImproperlyConfigured(
                f"PORTAL_ENCRYPTION_KEYS key {key_id!r} is not base64."
            ) from exc
        if not sep or not key_id:
            raise ImproperlyConfigured("PORTAL_ENCRYPTION_KEYS entries look like 'k1:<base64>'.")
        keys[key_id] = hmac.new(raw, INFO, hashlib.sha256).digest()
        current = key_id
    if not keys:
        raise ImproperlyConfigured("PORTAL_ENCRYPTION_KEYS is empty: the audit chain has no key.")
    return keys, current


def chain_keys() -> tuple[dict[str, bytes], str]:
    """(every audit key by id, the id of the one that signs new entries)."""
    return _parse(tuple(settings.PORTAL_ENCRYPTION_KEYS))
