"""Template context shared by the portal's own pages."""

from django.db import DatabaseError

from core.models import OrganizationSettings


def organization(request) -> dict:
    """Branding of the organisation (name, accent colour) for page chrome."""
    try:
        org = OrganizationSettings.load()
    except DatabaseError:
        return {"portal_name": "Enclave", "accent_color": "#4f46e5"}
    return {"portal_name": org.portal_name, "accent_color": org.accent_color}
