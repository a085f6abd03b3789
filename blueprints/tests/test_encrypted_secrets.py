"""Blueprint AI keys at rest: ciphertext in the column, tamper detection, key rotation."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from audit.models import AuditEvent
from audit.services import audit_record, audit_verify_chain
from blueprints.models import AIProvider
from blueprints.tests.factories import AIProviderFactory
from core.crypto import DecryptionError, decrypt
from core.tests.keyrings import K1, K2, K3, OTHER_K1, flip, rewrap

SECRET = "sk-ant-very-secret-value"


def raw_api_key(pk: int) -> str:
    """The api_key column exactly as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT api_key FROM {AIProvider._meta.db_table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


# --- round trip --------------------------------------------------------------------------


# --- refusals ------------------------------------------------------------------------------


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
    tampered = rewrap(raw_api_key(provider.pk), flip(20))
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
        audit_record(action="before.rotation")  # linked under k1
    before = raw_api_key(sealed.pk)
    assert before.startswith("enc:k1:")

    with override_settings(PORTAL_ENCRYPTION_KEYS=[K1, K2]):
        call_command("rotate_encryption_key", stdout=(out := io.StringIO()))
        assert "re-encrypted 1 secret(s) under key 'k2'" in out.getvalue()
        after = raw_api_key(sealed.pk)
        assert after.startswith("enc:k2:")
        assert AIProvider.objects.get(pk=sealed.pk).api_key == SECRET
        assert raw_api_key(empty.pk) == ""
        assert "re-linked" in out.getvalue()  # the audit chain, under k2 too
    # Once rotated, the old key can be dropped: secrets open, the audit chain verifies.
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K2]):
        assert AIProvider.objects.get(pk=sealed.pk).api_key == SECRET
        assert audit_verify_chain() is None
        assert AuditEvent.objects.exists()
        assert set(AuditEvent.objects.values_list("key_id", flat=True)) == {"k2"}


@pytest.mark.django_db
def test_a_broken_audit_chain_is_not_relinked_by_a_rotation():
    with override_settings(PORTAL_ENCRYPTION_KEYS=[K1]):
        first = audit_record(action="one")
        audit_record(action="two")
    AuditEvent.objects.filter(pk=first.pk).update(details={"forged": True})
    before = list(AuditEvent.objects.order_by("id").values_list("hash", flat=True))
    with (
        override_settings(PORTAL_ENCRYPTION_KEYS=[K1, K2]),
        pytest.raises(CommandError, match=rf"entry #{first.pk}.*not re-linked"),
    ):
        call_command("rotate_encryption_key", stdout=io.StringIO())
    assert list(AuditEvent.objects.order_by("id").values_list("hash", flat=True)) == before


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
