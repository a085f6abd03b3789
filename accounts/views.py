"""Sign-in pages for every member (the console's own login is for admins only)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views

from accounts.services import member_mark_active
from audit.services import audit_record
from core.client_ip import request_client_ip


class LoginView(auth_views.LoginView):
    """E-mail + password sign-in; the first sign-in turns an invited member active.

    Every successful sign-in is audited with the client IP. Wrong credentials get the
    form's generic error (it never says which of the two was wrong).
    """

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.get_user()
        member_mark_active(user=user)
        audit_record(
            action="member.login",
            actor=user,
            target_type="user",
            target_id=user.pk,
            ip=request_client_ip(self.request),
        )
        return response


class LogoutView(auth_views.LogoutView):
    """POST-only sign-out, back to the sign-in page."""

    next_page = "login"
