"""The palette derived from the accent colour: readable in both themes, whatever the accent."""

import pytest
from django.urls import reverse

from core.branding import (
    AA_NON_TEXT,
    AA_TEXT,
    DARK_PAGE,
    LIGHT_PAGE,
    contrast,
    luminance,
    palette,
    palette_css,
)
from core.tests.factories import OrganizationSettingsFactory

ACCENTS = [
    "#4f46e5", "#ffff00", "#00ff00", "#000000", "#ffffff", "#777777",
    "#e11d48", "#0ea5e9", "#f59e0b", "#14b8a6", "#808000", "#ff00ff",
]  # fmt: skip


def test_luminance_and_contrast_follow_wcag():
    assert luminance("#000000") == 0 and luminance("#ffffff") == pytest.approx(1)
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("accent", ACCENTS)
@pytest.mark.parametrize(("theme", "page"), [("light", LIGHT_PAGE), ("dark", DARK_PAGE)])
def test_every_text_colour_reaches_aa_contrast(accent, theme, page):
    colours = palette(accent)[theme]
    for background in ("--accent", "--accent-hover", "--accent-active"):
        assert contrast(colours["--on-accent"], colours[background]) >= AA_TEXT, background
    assert contrast(colours["--accent-text"], page) >= AA_TEXT
    assert contrast(colours["--focus-ring"], page) >= AA_NON_TEXT


def test_a_readable_accent_is_kept_as_it_is():
    assert palette("#4f46e5")["light"]["--accent"] == "#4f46e5"
    assert palette("#4f46e5")["light"]["--on-accent"] == "#ffffff"
    assert palette("#ffff00")["light"]["--on-accent"] == "#111318"


def test_the_stylesheet_has_both_themes():
    css = palette_css("#4F46E5")
    assert css.startswith(":root { --accent: #4f46e5;")
    assert "@media (prefers-color-scheme: dark)" in css


@pytest.mark.django_db
def test_every_page_carries_the_branding_sign_in_included(client):
    OrganizationSettingsFactory(
        portal_name="Acme Builders",
        accent_color="#e11d48",
        logo_light_url="https://cdn.example.com/light.svg",
        logo_dark_url="",
    )
    page = client.get(reverse("login")).content.decode()
    assert "<title>Sign in · Acme Builders</title>" in page
    assert "--accent: #e11d48;" in page
    # No dark logo: the light one serves both themes.
    assert 'srcset="https://cdn.example.com/light.svg" media="(prefers-color-scheme: dark)"' in page
    for name in ('for="id_username">Email<', 'for="id_password">Password<', ">Sign in</button>"):
        assert name in page
