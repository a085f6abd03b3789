"""Validators shared by several apps."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

hex_colour = RegexValidator(
    r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$",
    message="Enter a hex colour such as #4f46e5 or #fff.",
    code="invalid_colour",
)

DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def dns_label(value: str) -> None:
    """A single lowercase DNS label (a subdomain or host prefix)."""
    if not DNS_LABEL.match(value or ""):
        raise ValidationError(
            "Use 1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen.",
            code="invalid_subdomain",
        )
