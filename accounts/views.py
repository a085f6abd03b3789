"""Sign-in pages for every member, and the console's (admins only) sign-in view."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.core.exceptions import NON_FIELD_ERRORS

from accounts.forms import ConsoleLoginForm, LoginForm
from accounts.services import login_failure_record, login_refusal_record, login_success_record
from core.client_ip import request_client_ip


class _ProtectedLoginView(auth_views.LoginView):
    """Password sign-in with throttling and audit (see `accounts.services.login_wait`).

    Every success, failure and refusal is audited with the client IP. Wrong credentials
    get one generic error; a refused attempt gets HTTP 429 with `Retry-After`.
    """

    via = "portal"

    def form_valid(self, form):
        response = super().form_valid(form)
        login_success_record(user=form.get_user(), ip=request_client_ip(self.request), via=self.via)
        return response

    def form_invalid(self, form):
        response = super().form_invalid(form)
        email = form.cleaned_data.get("username") or form.data.get("username", "")
        ip = request_client_ip(self.request)
        if form.has_error(NON_FIELD_ERRORS, "throttled"):
            login_refusal_record(email=email, ip=ip, via=self.via, retry_after=form.retry_after)
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        elif form.has_error(NON_FIELD_ERRORS, "invalid_login") or form.has_error(
            NON_FIELD_ERRORS, "inactive"
        ):
            login_failure_record(email=email, ip=ip, via=self.via)
        return response


class LoginView(_ProtectedLoginView):
    """The member sign-in page; the first sign-in turns an invited member active."""

    template_name = "registration/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class ConsoleLoginView(_ProtectedLoginView):
    """The console's sign-in page (mounted by the admin site), for admins only."""

    template_name = "admin/login.html"
    authentication_form = ConsoleLoginForm
    via = "console"


class LogoutView(auth_views.LogoutView):
    """POST-only sign-out, back to the sign-in page."""

    next_page = "login"
