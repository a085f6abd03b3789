"""Form helpers shared by the admin console, chiefly write-only secrets.

A secret (LLM key, token) is never rendered back once stored (DESIGN §7): a form shows
whether it is set and offers an always-empty password box that replaces it when filled.
"""

from __future__ import annotations

from django import forms

KEEP_HELP = "Leave empty to keep the stored value; the stored value is never displayed."


class SecretReplaceField(forms.CharField):
    """A password box that is empty on every render and optional.

    Blank means "keep what is stored"; only a filled box counts as a change.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", True)
        kwargs.setdefault("help_text", KEEP_HELP)
        kwargs.setdefault(
            "widget",
            forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        )
        super().__init__(**kwargs)

    def has_changed(self, initial, data) -> bool:
        return bool(data)


class WriteOnlySecretsForm(forms.ModelForm):
    """A ModelForm whose `secret_fields` are write-only.

    Subclasses declare each secret as a `SecretReplaceField` of the model field's name
    and list it in `Meta.exclude`, so the stored value is neither an initial value nor
    copied back by the ModelForm machinery. A filled box is put on the instance before
    model validation (so `Model.clean()` sees it); `replacement(name)` tells the caller
    what to hand to the service, None meaning "keep".
    """

    secret_fields: tuple[str, ...] = ()

    def clean(self) -> dict:
        cleaned = super().clean()
        for name in self.secret_fields:
            if cleaned.get(name):
                setattr(self.instance, name, cleaned[name])
        return cleaned

    def replacement(self, name: str) -> str | None:
        """The new value of secret `name`, or None when the stored one is kept."""
        return self.cleaned_data.get(name) or None
