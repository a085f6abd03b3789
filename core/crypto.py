"""Encryption of secrets at rest (LLM keys, tokens): AES-256-GCM with versioned keys.

A ciphertext is the text ``enc:<key id>:<base64(nonce | ciphertext+tag)>``. The key id
names the key that sealed it, so several keys coexist: the last key of
``PORTAL_ENCRYPTION_KEYS`` seals, every listed key opens, and
``manage.py rotate_encryption_key`` re-seals everything under the newest one. The
key id is bound into the GCM associated data, so a ciphertext relabelled with another
key id, truncated or altered in any byte raises `DecryptionError` — never garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "enc"
NONCE_BYTES = 12


def hash_secret(raw: str) -> str:
    """SHA-256 hex of a high-entropy secret (API token, agent token, ticket, invitation).

    This is what the database keeps and looks up: the secret itself is never stored. A
    plain hash suffices because every such secret carries at least 256 random bits.
    """
    return hashlib.sha256(raw.encode()).hexdigest()


class DecryptionError(Exception):
    """A stored secret could not be opened: unknown key id, tampering or foreign data."""


@dataclass(frozen=True)
class Keyring:
    """The configured keys, in order; the last one seals new secrets."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def parse(cls, entries: list[str]) -> Keyring:
        keys: dict[str, bytes] = {}
        current = ""
        for entry in entries:
            key_id, sep, encoded = entry.strip().partition(":")
            if not sep or not key_id or not key_id.isalnum():
                raise ImproperlyConfigured(
                    "PORTAL_ENCRYPTION_KEYS entries must look like 'k1:<base64 of 32 bytes>'."
                )
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error as exc:
                raise ImproperlyConfigured(
                    f"PORTAL_ENCRYPTION_KEYS key {key_id!r} is not valid base64."
                ) from exc
            if len(raw) != 32:
                raise ImproperlyConfigured(
                    f"PORTAL_ENCRYPTION_KEYS key {key_id!r} must be 32 bytes (AES-256)."
                )
            if key_id in keys:
                raise ImproperlyConfigured(f"PORTAL_ENCRYPTION_KEYS lists key {key_id!r} twice.")
            keys[key_id] = raw
            current = key_id
        if not keys:
            raise ImproperlyConfigured("PORTAL_ENCRYPTION_KEYS is empty.")
        return cls(keys=keys, current=current)


@lru_cache(maxsize=4)
def _keyring_for(entries: tuple[str, ...]) -> Keyring:
    return Keyring.parse(list(entries))


def keyring() -> Keyring:
    """The keyring of the current settings (parsed once per distinct setting)."""
    return _keyring_for(tuple(settings.PORTAL_ENCRYPTION_KEYS))


def generate_key() -> str:
    """A fresh random key, base64-encoded, for a new ``PORTAL_ENCRYPTION_KEYS`` entry."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def encrypt(plaintext: str, *, ring: Keyring | None = None) -> str:
    """Seal `plaintext` under the newest key."""
    ring = ring or keyring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.keys[ring.current]).encrypt(
        nonce, plaintext.encode(), _associated_data(ring.current)
    )
    return f"{PREFIX}:{ring.current}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt(token: str, *, ring: Keyring | None = None) -> str:
    """Open a value sealed by `encrypt`; raise `DecryptionError` on anything else."""
    ring = ring or keyring()
    key_id, blob = _split(token)
    if key_id not in ring.keys:
        raise DecryptionError(f"secret was sealed with unknown key id {key_id!r}")
    if len(blob) < NONCE_BYTES + 16:
        raise DecryptionError("secret ciphertext is truncated")
    try:
        plain = AESGCM(ring.keys[key_id]).decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], _associated_data(key_id)
        )
    except InvalidTag as exc:
        raise DecryptionError("secret ciphertext failed authentication (tampered?)") from exc
    return plain.decode()


def key_id_of(token: str) -> str:
    """The id of the key that sealed `token` (for rotation)."""
    return _split(token)[0]


def _split(token: str) -> tuple[str, bytes]:
    parts = token.split(":", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise DecryptionError("value is not an Enclave ciphertext")
    try:
        return parts[1], base64.b64decode(parts[2], validate=True)
    except binascii.Error as exc:
        raise DecryptionError("secret ciphertext is not valid base64") from exc


def _associated_data(key_id: str) -> bytes:
    return f"enclave:{key_id}".encode()


class EncryptedTextField(models.TextField):
    """A text column whose value is stored sealed and read back in the clear.

    The empty string means "not set" and is stored as-is. Python code sees plaintext;
    the database only ever holds ciphertext. A value that cannot be opened raises
    `DecryptionError` when the row is loaded, rather than handing out garbage.
    """

    description = "Text encrypted at rest with AES-256-GCM"

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)
