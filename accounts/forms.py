"""The password sign-in forms of the member pages and of the console; the account page's
profile and personal-secret forms."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator

from accounts.models import MAX_SECRET_VALUE, User
from accounts.services import local_password_allowed, login_wait
from core.client_ip import request_client_ip

# One message for every wrong credential: it never tells whether the account exists.
LOGIN_ERROR = "That email and password do not match an active account."


class LoginForm(AuthenticationForm):
    """E-mail + password, refused unchecked (code `throttled`, `retry_after` set) while
    the account or the client IP is over its failure limit."""

    error_messages = {"invalid_login": LOGIN_ERROR, "inactive": LOGIN_ERROR}
    retry_after: int | None = None

    def clean(self):
        email = self.cleaned_data.get("username") or ""
        self.retry_after = login_wait(email=email, ip=request_client_ip(self.request))
        if self.retry_after is not None:
            minutes = -(-self.retry_after // 60)
            raise ValidationError(
                f"Too many sign-in attempts. Try again in {minutes} "
                f"minute{'' if minutes == 1 else 's'}.",
                code="throttled",
            )
        return super().clean()

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        if not local_password_allowed(user):
            raise ValidationError(
                "Your organisation signs you in with its single sign-on, not a password: "
                "use “Sign in with your organisation account”.",
                code="sso_only",
            )


class ApiTokenForm(forms.Form):
    """A new personal API token: what it is for, and for how many days (capped by the
    organisation's ``API_TOKEN_MAX_DAYS``)."""

    name = forms.CharField(max_length=80, label="Name", help_text="What it is for, e.g. “CI”.")
    days = forms.IntegerField(min_value=1, label="Valid for (days)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cap = settings.API_TOKEN_MAX_DAYS
        self.fields["days"].max_value = cap
        self.fields["days"].validators.append(MaxValueValidator(cap))
        self.fields["days"].widget.attrs["max"] = cap
        self.fields["days"].initial = min(settings.API_TOKEN_DEFAULT_DAYS, cap)
        self.fields["days"].help_text = f"At most {cap} days."


class InvitationPasswordForm(forms.Form):
    """An invited member's first password, typed twice (validated by the service)."""

    password1 = forms.CharField(
        label="Choose a password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "autofocus": True}),
    )
    password2 = forms.CharField(
        label="Type it again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data


class ConsoleLoginForm(LoginForm, AdminAuthenticationForm):
    """The console's form: the same, and only for members allowed in the console."""


class ProfileForm(forms.ModelForm):
    """The builder profile, as the member edits it on their account page."""

    class Meta:
        model = User
        fields = ["experience_level", "preferred_language", "role_title", "timezone"]
        labels = {
            "experience_level": "How technical are you?",
            "preferred_language": "Language the AI answers in",
            "role_title": "Your role",
            "timezone": "Time zone",
        }
        help_texts = {
            "experience_level": "The AI tools adapt their explanations to it.",
            "preferred_language": "e.g. English, Français, Deutsch.",
            "role_title": "e.g. Finance analyst, Product manager.",
            "timezone": "An IANA name such as Europe/Paris.",
        }


class BuilderSecretForm(forms.Form):
    """Add or replace one personal secret; the value box is never filled back in."""

    name = forms.CharField(
        max_length=100,
        widget=forms.TextInput(
            attrs={"placeholder": "GITHUB_TOKEN", "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="An environment variable name: letters, digits and _.",
    )
    value = forms.CharField(
        max_length=MAX_SECRET_VALUE,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
        help_text="Stored encrypted; nobody can read it back, you included.",
    )
