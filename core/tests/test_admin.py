"""The console's shell: who reaches it, its title, and the organisation settings page."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from core.models import OrganizationSettings
from core.tests.admin import assert_refused, changeform_data
from core.tests.factories import OrganizationSettingsFactory
from core.tests.users import make_admin, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(client):
    client.force_login(make_admin())
    return client


@pytest.fixture
def member_client(client):
    client.force_login(make_member())
    return client


SETTINGS_CHANGELIST = reverse("admin:core_organizationsettings_changelist")
SETTINGS_CHANGE = reverse(
    "admin:core_organizationsettings_change", args=[OrganizationSettings.SINGLETON_PK]
)


def test_site_header_shows_portal_name(console):
    OrganizationSettingsFactory(portal_name="Acme Builders")
    response = console.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "Acme Builders console" in response.content.decode()


def test_member_and_anonymous_are_refused(client):
    assert_refused(client, reverse("admin:index"))
    client.force_login(make_member())
    assert_refused(client, reverse("admin:index"))
    assert_refused(client, SETTINGS_CHANGELIST)
    assert_refused(client, SETTINGS_CHANGE)
    assert_refused(client, SETTINGS_CHANGE, method="post")


def test_suspended_admin_is_refused(client):
    client.force_login(make_admin(is_active=False))
    assert_refused(client, reverse("admin:index"))


def test_settings_changelist_redirects_to_the_single_row(console):
    OrganizationSettings.objects.all().delete()
    response = console.get(SETTINGS_CHANGELIST)
    assert response.status_code == 302
    assert response.url == SETTINGS_CHANGE
    assert OrganizationSettings.objects.count() == 1
    assert console.get(SETTINGS_CHANGE).status_code == 200


def test_settings_has_no_add_and_no_delete(console):
    OrganizationSettings.load()
    add_url = reverse("admin:core_organizationsettings_add")
    delete_url = reverse(
        "admin:core_organizationsettings_delete", args=[OrganizationSettings.SINGLETON_PK]
    )
    assert console.get(add_url).status_code == 403
    assert console.post(add_url, {"portal_name": "Second"}).status_code == 403
    assert console.get(delete_url).status_code == 403
    assert console.post(delete_url, {"post": "yes"}).status_code == 403
    assert OrganizationSettings.objects.count() == 1


def test_settings_save_goes_through_the_audited_service(console):
    OrganizationSettingsFactory(portal_name="Acme Builders")
    data = changeform_data(console.get(SETTINGS_CHANGE))
    data.update(portal_name="Globex Lab", launch_rate_per_minute="9")
    response = console.post(SETTINGS_CHANGE, data)
    assert response.status_code == 302
    settings_obj = OrganizationSettings.load()
    assert (settings_obj.portal_name, settings_obj.launch_rate_per_minute) == ("Globex Lab", 9)
    event = AuditEvent.objects.get(action="organization_settings.update")
    assert event.details["changed"] == ["launch_rate_per_minute", "portal_name"]
    assert "Globex Lab console" in console.get(reverse("admin:index")).content.decode()


def test_settings_invalid_value_is_a_form_error(console):
    OrganizationSettings.load()
    data = changeform_data(console.get(SETTINGS_CHANGE))
    data["accent_color"] = "red"
    response = console.post(SETTINGS_CHANGE, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not AuditEvent.objects.filter(action="organization_settings.update").exists()


def test_settings_nothing_reads_yet_say_so(console):
    OrganizationSettings.load()
    page = console.get(SETTINGS_CHANGE).content.decode()
    assert "Not applied yet: no workspace is stopped for being idle" in page
    assert "Not applied yet: pages show the light-theme logo" in page
