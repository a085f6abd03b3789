"""Keys and ciphertext surgery for the secrets-at-rest tests."""

from __future__ import annotations

import base64

from core.crypto import Keyring

K1 = "k1:" + base64.b64encode(b"\x01" * 32).decode()
K2 = "k2:" + base64.b64encode(b"\x02" * 32).decode()
K3 = "k3:" + base64.b64encode(b"\x03" * 32).decode()
OTHER_K1 = "k1:" + base64.b64encode(b"\x09" * 32).decode()


def ring(*entries: str) -> Keyring:
    return Keyring.parse(list(entries))


def rewrap(token: str, transform) -> str:
    """`token` with its decoded payload passed through `transform(bytearray)`."""
    prefix, key_id, payload = token.split(":", 2)
    blob = transform(bytearray(base64.b64decode(payload)))
    return f"{prefix}:{key_id}:{base64.b64encode(bytes(blob)).decode()}"


def flip(index: int):
    """A transform that flips one bit of byte `index`."""

    def transform(blob: bytearray) -> bytearray:
        blob[index] ^= 0x01
        return blob

    return transform
