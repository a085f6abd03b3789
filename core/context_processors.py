"""Template context shared by the portal's own pages."""

from urllib.parse import quote

from django.db import DatabaseError
from django.utils.html import escape

from core.branding import on_colour, palette, palette_css
from core.models import OrganizationSettings

DEFAULT_ACCENT = "#4f46e5"


def organization(request) -> dict:
    """Branding of the organisation on every page: name, logos, the accent palette.

    `branding.palette_css` holds the CSS custom properties of both themes, derived from
    the accent colour (`core.branding`); the dark logo falls back to the light one.
    """
    try:
        org = OrganizationSettings.load()
    except DatabaseError:
        org = None
    accent = org.accent_color if org else DEFAULT_ACCENT
    light_logo = org.logo_light_url if org else ""
    name = org.portal_name if org else "Enclave"
    return {
        "portal_name": org.portal_name if org else "Enclave",
        "accent_color": accent,
        "branding": {
            "name": org.portal_name if org else "Enclave",
            "logo_light": light_logo,
            "logo_dark": (org.logo_dark_url if org else "") or light_logo,
            "palette_css": palette_css(accent),
            "favicon": light_logo or _initial_icon(name, accent),
        },
    }


def _initial_icon(name: str, accent: str) -> str:
    """A favicon without a logo: the name's initial on the accent colour (an SVG data URL)."""
    button = palette(accent)["light"]["--accent"]
    initial = escape((name.strip()[:1] or "E").upper())
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
        f'<rect width="32" height="32" rx="7" fill="{button}"/>'
        f'<text x="16" y="22.5" font-family="system-ui,sans-serif" font-size="18" '
        f'font-weight="700" text-anchor="middle" fill="{on_colour(button)}">{initial}</text></svg>'
    )
    return "data:image/svg+xml," + quote(svg)
