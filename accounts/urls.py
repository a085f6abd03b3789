"""Member pages (mounted at the site root by `portal.urls`)."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    path("invitation/<str:token>/", views.invitation, name="invitation"),
]
