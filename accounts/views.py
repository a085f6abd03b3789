"""Sign-in pages for every member, the console's (admins only) sign-in view, and the
member's account page (builder profile, personal secrets)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods

from accounts import selectors, services
from accounts.forms import (
    ApiTokenForm,
    BuilderSecretForm,
    ConsoleLoginForm,
    InvitationPasswordForm,
    LoginForm,
    ProfileForm,
)
from accounts.models import User
from accounts.services import login_failure_record, login_refusal_record, login_success_record
from core.client_ip import request_client_ip
from core.errors import ApplicationError


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


@login_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """The member's own page: builder profile, API tokens (each shown once, at creation)
    and personal secrets (names only shown).

    One POST action per form (`action=profile|token_create|token_revoke|secret_set|
    secret_clear`), each through the
    audited service, then a redirect (so a reload never repeats it).
    """
    user = request.user
    ip = request_client_ip(request)
    profile_form = ProfileForm(instance=user)
    secret_form = BuilderSecretForm()
    token_form = ApiTokenForm()
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "profile":
            profile_form = ProfileForm(request.POST, instance=User.objects.get(pk=user.pk))
            if profile_form.is_valid():
                changes = {f: profile_form.cleaned_data[f] for f in ProfileForm.Meta.fields}
                services.profile_update(user=user, changes=changes, ip=ip)
                messages.success(
                    request, "Profile saved. It reaches your workspaces at their next restart."
                )
                return redirect("account")
        elif action == "secret_set":
            secret_form = BuilderSecretForm(request.POST)
            if secret_form.is_valid():
                try:
                    secret = services.builder_secret_set(
                        user=user,
                        name=secret_form.cleaned_data["name"],
                        value=secret_form.cleaned_data["value"],
                        ip=ip,
                    )
                except ApplicationError as exc:
                    for field, errors in (exc.extra or {}).get("errors", {}).items():
                        for error in errors:
                            secret_form.add_error(
                                field if field in ("name", "value") else None, error
                            )
                    if not exc.extra:
                        secret_form.add_error(None, exc.detail)
                else:
                    messages.success(
                        request,
                        f"{secret.name} saved. It reaches your workspaces at their next restart.",
                    )
                    return redirect("account")
        elif action == "token_create":
            token_form = ApiTokenForm(request.POST)
            if token_form.is_valid():
                try:
                    token, raw = services.api_token_issue(
                        user=user,
                        name=token_form.cleaned_data["name"],
                        days=token_form.cleaned_data["days"],
                        actor=user,
                    )
                except ApplicationError as exc:
                    token_form.add_error(None, exc.detail)
                else:
                    messages.success(
                        request,
                        format_html(
                            "Token “{}” created. Copy it now, it will not be shown again: "
                            '<code class="new-token">{}</code>',
                            token.name,
                            raw,
                        ),
                    )
                    return redirect("account")
        elif action == "token_revoke":
            pk = request.POST.get("token", "")
            tokens = selectors.api_tokens_for(user)
            token = tokens.filter(pk=int(pk)).first() if pk.isdigit() else None
            if token is None or not token.is_usable:
                messages.error(request, "You have no such active token.")
            else:
                services.api_token_revoke(token=token, actor=user)
                messages.success(request, f"Token “{token.name}” revoked.")
            return redirect("account")
        elif action == "secret_clear":
            name = request.POST.get("name", "")
            if services.builder_secret_clear(user=user, name=name, ip=ip):
                messages.success(request, f"{name} deleted. Restart your workspaces to drop it.")
            else:
                messages.error(request, "You have no secret of that name.")
            return redirect("account")
        else:
            return HttpResponse("Unknown action.", status=400)
    context = {
        "profile_form": profile_form,
        "secret_form": secret_form,
        "secrets": selectors.builder_secrets_for(user),
        "token_form": token_form,
        "tokens": selectors.api_tokens_for(user)[:50],
    }
    return render(request, "account.html", context, status=400 if request.method == "POST" else 200)


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """An invited member's one-time link: sign in with SSO, or choose a password (when
    the organisation allows local passwords for them), then the dashboard.

    A link that is unknown (404), used, replaced or expired (410) gets a page saying to
    ask an administrator for a new one. The page is never cached: it names the member.
    """
    try:
        found = services.invitation_find(token)
    except ApplicationError as exc:
        return _invitation_refused(request, exc)
    user = found.user
    form = InvitationPasswordForm()
    if request.method == "POST":
        form = InvitationPasswordForm(request.POST)
        if form.is_valid():
            try:
                user = services.invitation_accept(
                    raw=token,
                    password=form.cleaned_data["password1"],
                    ip=request_client_ip(request),
                )
            except ApplicationError as exc:
                if exc.code != "invalid":
                    return _invitation_refused(request, exc)
                for error in exc.extra["errors"]["password"]:
                    form.add_error("password1", error)
            else:
                login(request, user, backend="accounts.backends.EmailBackend")
                login_success_record(user=user, ip=request_client_ip(request), via="invitation")
                messages.success(request, "Welcome! Your account is ready.")
                return redirect("home")
    context = {
        "invited": user,
        "form": form,
        "password_allowed": services.local_password_allowed(user),
    }
    response = render(
        request, "registration/invitation.html", context, status=400 if form.errors else 200
    )
    response["Cache-Control"] = "no-store"
    return response


def _invitation_refused(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    response = render(
        request,
        "registration/invitation_refused.html",
        {"message": exc.detail, "code": exc.code},
        status=exc.status,
    )
    response["Cache-Control"] = "no-store"
    return response
