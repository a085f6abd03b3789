"""Member pages (mounted at the site root by `portal.urls`)."""

from django.urls import path

from accounts import oidc, views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    # Sign-out ends the portal session, and an SSO session at the provider too.
    path("logout/", oidc.SignOutView.as_view(), name="logout"),
    path("oidc/authenticate/", oidc.SignInView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc.CallbackView.as_view(), name="oidc_authentication_callback"),
    path("account/", views.account, name="account"),
    path("invitation/<str:token>/", views.invitation, name="invitation"),
]
