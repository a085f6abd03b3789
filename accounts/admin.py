"""Console pages for members, their tags and their personal API tokens.

Members are invited (never given a password here), promoted, demoted, suspended and
reactivated through the account services, so each change is audited and the last active
admin can never lock the console out. Tokens are issued and revoked through services;
the raw token is shown once to the admin who issued it, the hash never.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.choices import MemberStatus, Role
from accounts.models import ApiToken, User, UserTag
from accounts.services import (
    api_token_issue,
    api_token_revoke,
    invitation_issue,
    member_invite,
    member_set_active,
    member_set_role,
    member_update,
)
from core.admin import GrantRevokeAdmin, ReadOnlyAdmin, ServiceAdmin, adopt
from core.errors import ApplicationError

# Authorisation is the member's role, not Django groups or per-object permissions.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


class MemberInviteForm(forms.ModelForm):
    """An invitation: e-mail and role only; the member sets no password here."""

    class Meta:
        model = User
        fields = ["email", "role"]


class UserTagInline(admin.TabularInline):
    """The member's own tags, shown for context; members manage them themselves."""

    model = UserTag
    fields = ["name", "color", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class UserAdmin(ServiceAdmin):
    """Members: invite, edit name/role/activity, promote, demote, suspend, reactivate."""

    list_display = [
        "email",
        "full_name",
        "role",
        "status",
        "is_active",
        "invited_at",
        "date_joined",
        "last_login",
    ]
    list_filter = ["role", "status", "is_active"]
    search_fields = ["email", "full_name"]
    ordering = ["email"]
    readonly_fields = [
        "email",
        "status",
        "invitation",
        "invited_at",
        "invited_by",
        "date_joined",
        "last_login",
    ]
    fieldsets = [
        (None, {"fields": ["email", "full_name"]}),
        ("Access", {"fields": ["role", "is_active", "status", "invitation"]}),
        ("History", {"fields": ["invited_at", "invited_by", "date_joined", "last_login"]}),
    ]
    add_fieldsets = [
        (
            None,
            {
                "fields": ["email", "role"],
                "description": "The member gets an invitation e-mail with a one-time link "
                "(valid for the organisation's invitation days) to sign in with the "
                "organisation account or, where allowed, to choose a password; no "
                "password is set here. Until then the member is pending.",
            },
        )
    ]
    inlines = [UserTagInline]

    class Media:
        js = ["js/console-copy.js"]  # the invitation link's Copy button

    actions = ["resend_invitation", "promote", "demote", "suspend", "reactivate"]

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MemberInviteForm
        return super().get_form(request, obj, change=change, **kwargs)

    def has_delete_permission(self, request, obj=None) -> bool:
        # Members are suspended, not deleted: their audit trail and requests stay whole.
        return False

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            invited = member_invite(
                email=form.cleaned_data["email"], role=form.cleaned_data["role"], actor=request.user
            )
            adopt(obj, invited)
            if not invited.invitation_emailed:
                self.message_user(
                    request,
                    f"The invitation e-mail to {invited.email} could not be sent (see the "
                    "portal's log): use “Copy invitation link” on the member's page "
                    "and send it yourself.",
                    messages.WARNING,
                )
            return
        stored = User.objects.get(pk=obj.pk)
        member_update(
            user=stored,
            actor=request.user,
            full_name=form.cleaned_data.get("full_name"),
            role=form.cleaned_data.get("role"),
            is_active=form.cleaned_data.get("is_active"),
        )
        adopt(obj, stored)

    @admin.display(description="Invitation")
    def invitation(self, obj: User) -> str:
        """For a pending member: where the invitation stands, and the two buttons."""
        if obj.pk is None or obj.status != MemberStatus.PENDING:
            return "Accepted" if obj.pk is not None else ""
        latest = obj.invitations.order_by("-created_at").first()
        if latest is None:
            state = "No link yet."
        else:
            how = "e-mailed" if latest.emailed else "created"
            state = f"Last link {how} {latest.created_at:%Y-%m-%d %H:%M}, valid until " + (
                f"{latest.expires_at:%Y-%m-%d %H:%M} UTC."
            )
        url = reverse("admin:accounts_user_invitation", args=[obj.pk])
        return format_html(
            '<span class="invitation-state">{}</span><br>'
            '<button type="submit" class="button" style="margin: 0.5rem 0.4rem 0 0" '
            'name="invitation" value="resend" '
            'formaction="{}" formnovalidate>Resend invitation</button> '
            '<button type="submit" class="button" style="margin: 0.5rem 0 0" '
            'name="invitation" value="link" '
            'formaction="{}" formnovalidate>Copy invitation link</button>',
            state,
            url,
            url,
        )

    def get_urls(self):
        extra = [
            path(
                "<path:object_id>/invitation/",
                self.admin_site.admin_view(self.invitation_view),
                name="accounts_user_invitation",
            )
        ]
        return extra + super().get_urls()

    def invitation_view(self, request, object_id) -> HttpResponse:
        """POST: e-mail a new invitation (``invitation=resend``) or show a new link once
        (``invitation=link``, for the admin to copy); either replaces the previous link."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        user = self.get_object(request, object_id)
        if user is None:
            raise Http404("No such member.")
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        send = request.POST.get("invitation") != "link"
        back = HttpResponseRedirect(reverse("admin:accounts_user_change", args=[user.pk]))
        try:
            _, url, emailed = invitation_issue(user=user, actor=request.user, send=send)
        except ApplicationError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return back
        if not send:
            self.message_user(
                request,
                format_html(
                    "New invitation link for {} (earlier links no longer work); it is not "
                    'shown again: <code>{}</code> <button type="button" class="button" '
                    'data-copy="{}">Copy</button>',
                    user.email,
                    url,
                    url,
                ),
                messages.SUCCESS,
            )
        elif emailed:
            self.message_user(request, f"Invitation e-mailed to {user.email}.", messages.SUCCESS)
        else:
            self.message_user(
                request,
                f"The e-mail to {user.email} could not be sent (see the portal's log): use "
                "“Copy invitation link” and send it yourself.",
                messages.WARNING,
            )
        return back

    @admin.action(description="Resend invitation e-mail", permissions=["change"])
    def resend_invitation(self, request, queryset) -> None:
        results = self.run_service(
            request,
            queryset,
            lambda user: invitation_issue(user=user, actor=request.user),
            done="Sent {count} invitation(s).",
        )
        failed = [user.email for user, (_, _, emailed) in results if not emailed]
        if failed:
            self.message_user(
                request,
                "Not e-mailed (see the portal's log): " + ", ".join(failed),
                messages.WARNING,
            )

    @admin.action(description="Promote to admin", permissions=["change"])
    def promote(self, request, queryset) -> None:
        self.run_service(
            request,
            queryset,
            lambda user: member_set_role(user=user, role=Role.ADMIN, actor=request.user),
            done="Promoted {count} member(s) to admin.",
        )

    @admin.action(description="Demote to user", permissions=["change"])
    def demote(self, request, queryset) -> None:
        self.run_service(
            request,
            queryset,
            lambda user: member_set_role(user=user, role=Role.USER, actor=request.user),
            done="Demoted {count} member(s) to user.",
        )

    @admin.action(description="Suspend", permissions=["change"])
    def suspend(self, request, queryset) -> None:
        self.run_service(
            request,
            queryset,
            lambda user: member_set_active(user=user, active=False, actor=request.user),
            done="Suspended {count} member(s).",
        )

    @admin.action(description="Reactivate", permissions=["change"])
    def reactivate(self, request, queryset) -> None:
        self.run_service(
            request,
            queryset,
            lambda user: member_set_active(user=user, active=True, actor=request.user),
            done="Reactivated {count} member(s).",
        )


@admin.register(UserTag)
class UserTagAdmin(ReadOnlyAdmin):
    """Members' tags, view only: each member manages their own."""

    list_display = ["name", "user", "color", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "user__email"]
    ordering = ["user__email", "name"]
    list_select_related = ["user"]
    fields = ["user", "name", "color", "created_at"]


class ApiTokenIssueForm(forms.ModelForm):
    """Issue a token for a member: who, what for, and for how many days."""

    days = forms.IntegerField(
        min_value=1,
        initial=min(settings.API_TOKEN_DEFAULT_DAYS, settings.API_TOKEN_MAX_DAYS),
        help_text=f"Lifetime in days (1 to {settings.API_TOKEN_MAX_DAYS}, the organisation's "
        "limit).",
    )

    class Meta:
        model = ApiToken
        fields = ["user", "name"]


@admin.register(ApiToken)
class ApiTokenAdmin(GrantRevokeAdmin):
    """Personal API tokens: issue (shown once) and revoke; the hash is never displayed."""

    list_display = [
        "name",
        "user",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "expires_at", "created_at"]
    search_fields = ["name", "prefix", "user__email"]
    ordering = ["-created_at"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    fields = ["user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    add_form = ApiTokenIssueForm
    add_fields = ["user", "name", "days"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change) -> None:
        token, raw = api_token_issue(
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            days=form.cleaned_data["days"],
            actor=request.user,
        )
        adopt(obj, token)
        obj.issued_raw = raw

    def response_add(self, request, obj, post_url_continue=None) -> HttpResponse:
        self.message_user(
            request,
            format_html(
                "Token “{}” issued for {}. Copy it now, it will not be shown again: "
                "<code>{}</code>",
                obj.name,
                obj.user,
                obj.issued_raw,
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:accounts_apitoken_changelist"))

    @admin.action(description="Revoke", permissions=["revoke"])
    def revoke(self, request, queryset) -> None:
        self.run_service(
            request,
            queryset.filter(revoked_at__isnull=True).select_related("user"),
            lambda token: api_token_revoke(token=token, actor=request.user),
            done="Revoked {count} token(s).",
        )
