"""The secret environment of a local environment at rest: encrypted, beside its record.

``<env dir>/secret_env.bin`` (0600, written atomically, never under ``home/``) holds the
variables the portal injected at the environment's last (re)launch, so that the shells
opened after an agent restart get the same ones as the running app. It is never
plaintext: one format-version byte, a random 12-byte nonce, then the JSON object sealed
with AES-256-GCM, the environment id as associated data (a file moved to another
environment does not open). The key is derived from the agent token (`key_from_token`):
after a token change old files no longer open, and `load` says so with `SecretUnreadable`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.runtimes.records import EnvRecord

logger = logging.getLogger(__name__)

FILE_NAME: Final = "secret_env.bin"
VERSION: Final = 1
"""The format: ``VERSION`` byte, 12-byte nonce, AES-256-GCM ciphertext and tag."""
KEY_INFO: Final = b"enclave-agent secret-env v1"
_NONCE_BYTES: Final = 12


class SecretUnreadable(Exception):
    """The file is there but does not open with this key (or is damaged)."""


def key_from_token(token: str) -> bytes:
    """The 32-byte key of the secret files, derived from the agent token (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO)
    return hkdf.derive(token.encode())


def save(env_path: Path, env_id: str, secret: Mapping[str, str], key: bytes) -> None:
    """Replace the environment's secret file with ``secret``, sealed (blocking)."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    plaintext = json.dumps(dict(secret), separators=(",", ":")).encode()
    sealed = AESGCM(key).encrypt(nonce, plaintext, env_id.encode())
    _write_atomic(env_path / FILE_NAME, bytes([VERSION]) + nonce + sealed)


def load(env_path: Path, env_id: str, key: bytes) -> dict[str, str] | None:
    """The environment's saved secret env; None without a file (blocking).

    Raises `SecretUnreadable` when the file does not open with ``key`` or is not a
    secret env, and ``OSError`` when it cannot be read at all.
    """
    try:
        data = (env_path / FILE_NAME).read_bytes()
    except FileNotFoundError:
        return None
    if len(data) <= 1 + _NONCE_BYTES or data[0] != VERSION:
        raise SecretUnreadable("unknown format")
    nonce, sealed = data[1 : 1 + _NONCE_BYTES], data[1 + _NONCE_BYTES :]
    try:
        value = json.loads(AESGCM(key).decrypt(nonce, sealed, env_id.encode()))
    except (InvalidTag, ValueError) as exc:
        raise SecretUnreadable(type(exc).__name__) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SecretUnreadable("not a secret environment")
    return value


def load_all(envs: Iterable[EnvRecord], key: bytes) -> dict[str, dict[str, str]]:
    """The saved secret env of each environment that has one, by id (blocking).

    One that does not open is left out with a warning naming the environment, never a
    value: the portal sends it again at the workspace's next restart.
    """
    result = {}
    for env in envs:
        try:
            secret = load(env.path, env.id, key)
        except SecretUnreadable:
            logger.warning(
                "secret environment of %s unreadable (agent token changed?); it returns at "
                "the workspace's next restart from the portal",
                env.id,
            )
            continue
        except OSError as exc:
            logger.warning("secret environment of %s not read: %s", env.id, exc.strerror)
            continue
        if secret is not None:
            result[env.id] = secret
    return result


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (0600): readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
