"""Helpers for every app's console tests."""

from __future__ import annotations

from django import forms
from django.contrib.messages import get_messages
from django.urls import reverse


def changeform_data(response) -> dict:
    """The POST body a browser would send back from a rendered admin change/add page."""
    form_list = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        form_list += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in form_list:
        for bound in form:
            value = bound.value()
            if isinstance(bound.field, forms.BooleanField):
                if value:
                    data[bound.html_name] = "on"
            elif value is not None:
                data[bound.html_name] = value
    return data


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def assert_refused(client, url: str, method: str = "get") -> None:
    """A non-admin is sent to the console login (or forbidden), never served the page."""
    response = getattr(client, method)(url)
    assert response.status_code in (302, 403)
    if response.status_code == 302:
        assert response.url.startswith(reverse("admin:login"))
