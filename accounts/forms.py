"""The password sign-in forms of the member pages and of the console."""

from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts.services import login_wait
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


class ConsoleLoginForm(LoginForm, AdminAuthenticationForm):
    """The console's form: the same, and only for members allowed in the console."""
