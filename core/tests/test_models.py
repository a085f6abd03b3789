"""Organisation settings: the singleton row, its validation, its update service; rate counters."""

import time
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from audit.models import AuditEvent
from core import ratelimit
from core.models import OrganizationSettings
from core.services import organization_settings_update
from core.tests.factories import OrganizationSettingsFactory

pytestmark = pytest.mark.django_db


def test_load_creates_the_singleton_with_defaults_once():
    first = OrganizationSettings.load()
    second = OrganizationSettings.load()
    assert first.pk == second.pk == OrganizationSettings.SINGLETON_PK
    assert OrganizationSettings.objects.count() == 1
    assert first.portal_name == "Enclave"
    assert first.launch_rate_per_minute == 5
    assert first.api_rate_per_minute == 200


def test_factory_reuses_the_singleton():
    OrganizationSettingsFactory()
    OrganizationSettingsFactory()
    assert OrganizationSettings.objects.count() == 1
    assert OrganizationSettings.load().portal_name == "Acme Builders"


def test_a_second_row_is_refused_by_the_check_constraint():
    OrganizationSettings.load()
    with pytest.raises(IntegrityError), transaction.atomic():
        OrganizationSettings.objects.create(id=2)
    assert OrganizationSettings.objects.count() == 1


def test_full_clean_of_a_second_row_names_the_singleton_constraint():
    with pytest.raises(ValidationError, match="organization_settings_singleton"):
        OrganizationSettings(id=2).full_clean()


@pytest.mark.parametrize("colour", ["#4f46e5", "#FFF", "#000000", "#AbCdEf"])
def test_valid_accent_colours(colour):
    OrganizationSettings(accent_color=colour).full_clean()


@pytest.mark.parametrize("colour", ["4f46e5", "#4f46e", "#ggg", "red", "#12345678", ""])
def test_bad_accent_colour_is_refused_naming_the_field(colour):
    with pytest.raises(ValidationError) as excinfo:
        OrganizationSettings(accent_color=colour).full_clean()
    assert "accent_color" in excinfo.value.message_dict


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("launch_rate_per_minute", 0),
        ("launch_rate_per_minute", 1001),
        ("api_rate_per_minute", 0),
        ("max_running_workspaces_per_user", 101),
        ("logo_light_url", "not a url"),
        ("portal_name", ""),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_field(field, value):
    obj = OrganizationSettings(**{field: value})
    with pytest.raises(ValidationError) as excinfo:
        obj.full_clean()
    assert field in excinfo.value.message_dict


def test_str_names_the_portal():
    assert str(OrganizationSettingsFactory()) == "Settings of Acme Builders"


# --- organization_settings_update ----------------------------------------------------------


def test_organization_settings_update_applies_changes_and_audits(admin_member):
    updated = organization_settings_update(
        actor=admin_member, changes={"api_rate_per_minute": 50, "portal_name": "Acme"}
    )
    fresh = OrganizationSettings.load()
    assert updated.pk == fresh.pk == 1
    assert (fresh.api_rate_per_minute, fresh.portal_name) == (50, "Acme")
    event = AuditEvent.objects.get(action="organization_settings.update")
    assert event.actor_email == admin_member.email
    assert event.details == {"changed": ["api_rate_per_minute", "portal_name"]}


def test_organization_settings_update_refuses_invalid_changes_and_writes_nothing(admin_member):
    with pytest.raises(ValidationError) as excinfo:
        organization_settings_update(actor=admin_member, changes={"accent_color": "blue"})
    assert "accent_color" in excinfo.value.message_dict
    assert OrganizationSettings.load().accent_color == "#4f46e5"
    assert not AuditEvent.objects.exists()


def test_organization_settings_update_saves_an_edited_instance(admin_member):
    instance = OrganizationSettings.load()
    instance.welcome_title = "Hello"
    organization_settings_update(actor=admin_member, instance=instance)
    assert OrganizationSettings.load().welcome_title == "Hello"
    assert AuditEvent.objects.get().details == {"changed": []}


# --- core.ratelimit ----------------------------------------------------------------------


def _mid_window(window: int = 60) -> None:
    """Avoid a test straddling a fixed-window boundary."""
    if time.time() % window > window - 2:
        time.sleep(2.5)


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_ratelimit_hit_allows_limit_calls_then_returns_retry_seconds(limit):
    _mid_window()
    results = [ratelimit.hit("launch", "user-1", limit) for _ in range(limit)]
    assert results == [None] * limit
    retry = ratelimit.hit("launch", "user-1", limit)
    assert retry is not None
    assert 1 <= retry <= 60


def test_ratelimit_counters_are_per_scope_and_identity():
    _mid_window()
    assert ratelimit.hit("api", "a", 1) is None
    assert ratelimit.hit("api", "b", 1) is None
    assert ratelimit.hit("launch", "a", 1) is None
    assert ratelimit.hit("api", "a", 1) is not None


def test_ratelimit_failures_refuse_at_the_limit_until_reset():
    for _ in range(3):
        assert ratelimit.failure_wait("login", "a", 3, 900) is None
        ratelimit.failure_add("login", "a", 900)
    assert 899 <= ratelimit.failure_wait("login", "a", 3, 900) <= 900
    assert ratelimit.failure_wait("login", "b", 3, 900) is None
    ratelimit.failure_reset("login", "a")
    assert ratelimit.failure_wait("login", "a", 3, 900) is None


def test_ratelimit_failure_window_opens_at_the_first_failure(monkeypatch):
    clock = SimpleNamespace(time=lambda: 1_700_000_000.0)
    monkeypatch.setattr(ratelimit, "time", clock)
    ratelimit.failure_add("login", "a", 900)
    clock.time = lambda: 1_700_000_600.0
    ratelimit.failure_add("login", "a", 900)
    assert ratelimit.failure_wait("login", "a", 2, 900) == 300
