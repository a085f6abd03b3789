"""Secrets at rest: AES-256-GCM with versioned keys and tamper detection."""

import base64

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.crypto import DecryptionError, Keyring, decrypt, encrypt, generate_key, key_id_of
from core.tests.keyrings import K1, K2, OTHER_K1, flip, rewrap, ring

SECRET = "sk-ant-very-secret-value"


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
        ("flip a nonce byte", lambda t: rewrap(t, flip(0))),
        ("flip a ciphertext byte", lambda t: rewrap(t, flip(14))),
        ("flip a tag byte", lambda t: rewrap(t, flip(-1))),
        ("relabel the key id", lambda t: t.replace("enc:k1:", "enc:k2:", 1)),
        ("truncate one byte", lambda t: rewrap(t, lambda b: b[:-1])),
        ("truncate below nonce+tag", lambda t: rewrap(t, lambda b: b[:20])),
        ("drop the payload", lambda t: t.rsplit(":", 1)[0] + ":"),
        ("append a byte", lambda t: rewrap(t, lambda b: b + b"\x00")),
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


# --- rotation ------------------------------------------------------------------------------
