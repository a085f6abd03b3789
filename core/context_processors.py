"""Template context shared by the portal's own pages."""

from django.db import DatabaseError

from core.branding import palette_css
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
    return {
        "portal_name": org.portal_name if org else "Enclave",
        "accent_color": accent,
        "branding": {
            "name": org.portal_name if org else "Enclave",
            "logo_light": light_logo,
            "logo_dark": (org.logo_dark_url if org else "") or light_logo,
            "palette_css": palette_css(accent),
        },
    }
