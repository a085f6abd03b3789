"""Console forms of blueprints."""

from __future__ import annotations

from blueprints.models import AIProvider
from core.forms import SecretReplaceField, WriteOnlySecretsForm


class AIProviderForm(WriteOnlySecretsForm):
    """An AI provider with a write-only API key (see `WriteOnlySecretsForm`)."""

    secret_fields = ("api_key",)

    api_key = SecretReplaceField(label="Replace API key")

    class Meta:
        model = AIProvider
        # Excluded, not merely omitted: the admin passes its own field list, and only an
        # exclusion keeps the stored key from being an initial value or overwritten.
        exclude = ["api_key"]
