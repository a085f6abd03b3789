"""Console pieces shared by every app's admin, and the organisation settings page.

The admin is another client of the services (STYLE rule 7): every write goes through a
service, so it is validated and audited exactly like an API call. A service refusal
(`ApplicationError`) becomes an error message on the page, never a server error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from core.errors import ApplicationError
from core.models import OrganizationSettings
from core.services import organization_settings_update

# A scheme-less URL typed in the console means https (Django 6's default, opted into now).
URL_FIELDS_HTTPS = {models.URLField: {"assume_scheme": "https"}}


def error_text(exc: ApplicationError | ValidationError) -> str:
    """What a refused write tells the admin (never contains a secret)."""
    if isinstance(exc, ApplicationError):
        return exc.detail
    return " ".join(exc.messages)


def adopt(target: models.Model, created: models.Model) -> None:
    """Make the admin's unsaved form instance stand for the row a service created.

    The admin logs and redirects with the object it built from the form; a creating
    service builds its own, so the saved values are copied onto the form's one.
    """
    for field in created._meta.concrete_fields:
        setattr(target, field.attname, getattr(created, field.attname))
    target._state.adding = False
    target._state.db = created._state.db


class ServiceAdmin(admin.ModelAdmin):
    """A ModelAdmin whose writes go through services.

    Bulk delete is off (it would skip the services and their audit entries); a service
    refusal while saving or deleting rolls the whole request back and is shown as an
    error message.
    """

    formfield_overrides = URL_FIELDS_HTTPS
    not_applied: dict[str, str] = {}
    """Fields stored but not yet honoured by any page or runtime, with what to tell the
    admin; the form says so under the field, so no setting pretends to work."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        note = self.not_applied.get(db_field.name)
        if field is not None and note:
            field.help_text = " ".join(
                filter(None, [str(field.help_text), f"Not applied yet: {note}"])
            )
        return field

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ApplicationError, ValidationError) as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except (ApplicationError, ValidationError) as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def run_service(
        self,
        request: HttpRequest,
        objects: Iterable[models.Model],
        call: Callable[[models.Model], object],
        *,
        done: str,
    ) -> list[tuple[models.Model, object]]:
        """Apply `call` to each object and report ONE summary message.

        `done` is formatted with `count`. Refusals are listed in the same message; the
        objects that succeeded are returned with what the service returned.
        """
        results: list[tuple[models.Model, object]] = []
        refused: list[str] = []
        for obj in objects:
            try:
                results.append((obj, call(obj)))
            except ApplicationError as exc:
                refused.append(f"{obj}: {exc.detail}")
        text = done.format(count=len(results))
        if refused:
            text += f" Refused ({len(refused)}): " + "; ".join(refused)
        self.message_user(request, text, messages.WARNING if refused else messages.SUCCESS)
        return results


class ReadOnlyAdmin(admin.ModelAdmin):
    """A view-only record (audit trails, tickets): nothing is added, changed or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class GrantRevokeAdmin(ServiceAdmin):
    """Records that are created through a form of their own and then only revoked.

    Subclasses set `add_form` and `add_fields`; the change page is read-only, nothing is
    deleted (revoking keeps the history), and the `revoke` action is for admins.
    """

    add_form = None
    add_fields: list[str] = []

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.is_admin


@admin.register(OrganizationSettings)
class OrganizationSettingsAdmin(ServiceAdmin):
    """The organisation singleton: one page, saved through `organization_settings_update`."""

    not_applied = {
        "logo_dark_url": "pages show the light-theme logo in both themes.",
        "idle_auto_stop_minutes": "no workspace is stopped for being idle in this version.",
    }

    fieldsets = [
        (
            "Branding",
            {"fields": ["portal_name", "logo_light_url", "logo_dark_url", "accent_color"]},
        ),
        ("Welcome screen", {"fields": ["welcome_title", "welcome_description", "welcome_cta"]}),
        (
            "Limits",
            {
                "fields": [
                    "max_running_workspaces_per_user",
                    "launch_rate_per_minute",
                    "api_rate_per_minute",
                    "idle_auto_stop_minutes",
                ],
                "description": "Take effect on the next request; no restart needed.",
            },
        ),
        ("Record", {"fields": ["updated_at"]}),
    ]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None) -> HttpResponse:
        singleton = OrganizationSettings.load()
        opts = self.opts
        return HttpResponseRedirect(
            reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                args=[singleton.pk],
            )
        )

    def save_model(self, request, obj, form, change) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        organization_settings_update(actor=request.user, changes=changes, instance=obj)
