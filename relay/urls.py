"""Pages of the relay (mounted at the site root by `portal.urls`)."""

from django.urls import path

from relay import views

urlpatterns = [
    path(
        "workspaces/<str:workspace_id>/preview", views.workspace_preview, name="workspace-preview"
    ),
]
