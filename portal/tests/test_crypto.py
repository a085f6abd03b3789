"""Secrets at rest: AES-256-GCM with versioned keys, tamper detection and key rotation."""

import base64
import io

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from blueprints.models import AIProvider
from blueprints.tests.factories import AIProviderFactory
from portal.crypto import DecryptionError, Keyring, decrypt, encrypt, generate_key, key_id_of

K1 = "k1:" + base64.b64encode(b"\x01" * 32).decode()
K2 = "k2:" + base64.b64encode(b"\x02" * 32).decode()
K3 = "k3:" + base64.b64encode(b"\x03" * 32).decode()
OTHER_K1 = "k1:" + base64.b64encode(b"\x09" * 32).decode()

SECRET = "sk-ant-very-secret-value"


def raw_api_key(pk: int) -> str:
    """The api_key column exactly as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT api_key FROM {AIProvider._meta.db_table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def ring(*entries: str) -> Keyring:
    return Keyring.parse(list(entries))


def _rewrap(token: str, transform) -> str:
    prefix, key_id, payload = token.split(":", 2)
    blob = transform(bytearray(base64.b64decode(payload)))
    return f"{prefix}:{key_id}:{base64.b64encode(bytes(blob)).decode()}"


def _flip(index: int):
    def transform(blob: bytearray) -> bytearray:
        blob[index] ^= 0x01
        return blob

    return transform


# --- round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", ["x", SECRET, "ünïcødé 🔑", "a" * 5000])
def test_encrypt_then_decrypt_returns_the_plaintext(plaintext):
    keys = ring(K1)
    token = encrypt(plaintext, ring=keys)
    assert token.startswith("enc:k1:")
    if len(plaintext) >= 8:  # a 1-character plaintext can occur in base64 by chance
        assert plaintext not in token
    assert decrypt(token, ring=keys) == plaintext


def test_ciphertext_differs_each_time_random_nonce():
    keys = ring(K1)
    tokens = {encrypt(SECRET, ring=keys) for _ in range(20)}
    assert len(tokens) == 20
    assert {decrypt(t, ring=keys) for t in tokens} == {SECRET}


def test_the_last_key_seals_and_every_key_opens():
    token_k1 = encrypt(SECRET, ring=ring(K1))
    both = ring(K1, K2)
    token_k2 = encrypt(SECRET, ring=both)
    assert key_id_of(token_k2) == "k2"
    assert decrypt(token_k1, ring=both) == SECRET
    assert decrypt(token_k2, ring=both) == SECRET


def test_generate_key_makes_a_usable_ring_entry():
    keys = ring("k7:" + generate_key())
    assert decrypt(encrypt(SECRET, ring=keys), ring=keys) == SECRET


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "tamper"),
    [
        ("flip a nonce byte", lambda t: _rewrap(t, _flip(0))),
        ("flip a ciphertext byte", lambda t: _rewrap(t, _flip(14))),
        ("flip a tag byte", lambda t: _rewrap(t, _flip(-1))),
        ("relabel the key id", lambda t: t.replace("enc:k1:", "enc:k2:", 1)),
        ("truncate one byte", lambda t: _rewrap(t, lambda b: b[:-1])),
        ("truncate below nonce+tag", lambda t: _rewrap(t, lambda b: b[:20])),
        ("drop the payload", lambda t: t.rsplit(":", 1)[0] + ":"),
        ("append a byte", lambda t: _rewrap(t, lambda b: b + b"\x00")),
    ],
)
def test_tampered_ciphertext_raises_decryption_error(label, tamper):
    keys = ring(K1, K2)
    token = encrypt(SECRET, ring=ring(K1))
    with pytest.raises(DecryptionError):
        decrypt(tamper(token), ring=keys)


@pytest.mark.parametrize(
    "value",
    [
        "",
        SECRET,
        "enc:k1",
        "enc:k1:not base64!!",
        "gcm:k1:" + base64.b64encode(b"\x00" * 40).decode(),
        "enc:k9:" + base64.b64encode(b"\x00" * 40).decode(),
    ],
)
def test_a_value_not_sealed_by_enclave_raises_decryption_error(value):
    with pytest.raises(DecryptionError):
        decrypt(value, ring=ring(K1))


def test_a_ciphertext_opened_with_the_wrong_key_raises_decryption_error():
    token = encrypt(SECRET, ring=ring(K1))
    with pytest.raises(DecryptionError, match="authentication"):
        decrypt(token, ring=ring(OTHER_K1))


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "empty"),
        (["k1:%%%notbase64"], "not valid base64"),
        (["k1:" + base64.b64encode(b"\x01" * 16).decode()], "32 bytes"),
        (["k1:" + base64.b64encode(b"\x01" * 33).decode()], "32 bytes"),
        ([K1, K1], "twice"),
        (["no-separator"], "must look like"),
        ([":" + K1.split(":", 1)[1]], "must look like"),
        (["k-1:" + K1.split(":", 1)[1]], "must look like"),
    ],
)
def test_keyring_parse_rejects_bad_configuration(entries, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        Keyring.parse(entries)


def test_keyring_parse_keeps_order_and_the_last_key_is_current():
    keys = Keyring.parse([K1, " " + K2 + " "])
    assert list(keys.keys) == ["k1", "k2"]
    assert keys.current == "k2"


# --- the encrypted model field -----------------------------------------------------------


@pytest.mark.django_db
def test_the_column_holds_ciphertext_and_the_attribute_plaintext():
    provider = AIProviderFactory(api_key=SECRET)
    raw = raw_api_key(provider.pk)
    assert raw.startswith("enc:")
    assert SECRET not in raw
    assert AIProvider.objects.get(pk=provider.pk).api_key == SECRET
    assert decrypt(raw) == SECRET


@pytest.mark.django_db
def test_an_empty_secret_is_stored_as_empty():
    provider = AIProviderFactory(api_key="", enabled=False)
    assert raw_api_key(provider.pk) == ""
    assert AIProvider.objects.get(pk=provider.pk).api_key == ""


@pytest.mark.django_db
def test_two_saves_of_the_same_secret_store_different_ciphertexts():
    first = AIProviderFactory(api_key=SECRET)
    second = AIProviderFactory(api_key=SECRET)
    assert raw_api_key(first.pk) != raw_api_key(second.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("wrong_keys", [[OTHER_K1], [K2]], ids=["same id other key", "unknown id"])
def test_loading_with_the_wrong_key_raises_decryption_error(wrong_keys):
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K1]):
        provider = AIProviderFactory(api_key=SECRET)
    with override_settings(PORTAL_ENCRYPTION_KEYS=wrong_keys), pytest.raises(DecryptionError):
        AIProvider.objects.get(pk=provider.pk)


@pytest.mark.django_db
def test_a_tampered_column_raises_on_load_instead_of_returning_garbage():
    provider = AIProviderFactory(api_key=SECRET)
    tampered = _rewrap(raw_api_key(provider.pk), _flip(20))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AIProvider._meta.db_table} SET api_key = %s WHERE id = %s",  # noqa: S608
            [tampered, provider.pk],
        )
    with pytest.raises(DecryptionError):
        AIProvider.objects.get(pk=provider.pk)


# --- rotation ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rotate_encryption_key_reseals_under_the_newest_key():
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K1]):
        sealed = AIProviderFactory(api_key=SECRET)
        empty = AIProviderFactory(api_key="", enabled=False)
    before = raw_api_key(sealed.pk)
    assert before.startswith("enc:k1:")

    with override_settings(PORTAL_ENCRYPTION_KEYS=[K1, K2]):
        call_command("rotate_encryption_key", stdout=(out := io.StringIO()))
        assert "re-encrypted 1 secret(s) under key 'k2'" in out.getvalue()
        after = raw_api_key(sealed.pk)
        assert after.startswith("enc:k2:")
        assert AIProvider.objects.get(pk=sealed.pk).api_key == SECRET
        assert raw_api_key(empty.pk) == ""
    # Once rotated, the old key can be dropped.
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K2]):
        assert AIProvider.objects.get(pk=sealed.pk).api_key == SECRET


@pytest.mark.django_db
def test_rotate_encryption_key_is_idempotent():
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K1, K2]):
        provider = AIProviderFactory(api_key=SECRET)
        before = raw_api_key(provider.pk)
        call_command("rotate_encryption_key", stdout=(out := io.StringIO()))
    assert "re-encrypted 0 secret(s)" in out.getvalue()
    assert raw_api_key(provider.pk) == before


@pytest.mark.django_db
def test_rotate_encryption_key_dry_run_changes_nothing():
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K1]):
        provider = AIProviderFactory(api_key=SECRET)
    before = raw_api_key(provider.pk)
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K1, K2]):
        out = io.StringIO()
        call_command("rotate_encryption_key", "--dry-run", stdout=out)
    assert "would re-encrypt 1 secret(s) under key 'k2'" in out.getvalue()
    assert raw_api_key(provider.pk) == before


@pytest.mark.django_db
def test_rotate_with_a_key_missing_from_the_ring_fails_and_changes_nothing():
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K1]):
        first = AIProviderFactory(api_key=SECRET)
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K3]):
        second = AIProviderFactory(api_key="another-secret")
    before = {first.pk: raw_api_key(first.pk), second.pk: raw_api_key(second.pk)}
    # k1 is no longer configured: first cannot be opened.
    with (
        override_settings(PORTAL_ENCRYPTION_KEYS=[K2, K3]),
        pytest.raises(CommandError, match=rf"#{first.pk} api_key: .*unknown key id 'k1'"),
    ):
        call_command("rotate_encryption_key")
    assert {pk: raw_api_key(pk) for pk in before} == before
