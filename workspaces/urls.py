"""Pages of workspaces (mounted at the site root by `portal.urls`)."""

from django.urls import path

from workspaces import dashboard, views

urlpatterns = [
    path("workspaces/launch", dashboard.launch, name="workspace-launch"),
    path(
        "workspaces/<str:workspace_id>/actions/<str:operation>",
        dashboard.operate,
        name="workspace-operate",
    ),
    path("workspaces/<str:workspace_id>/", views.editor, name="workspace-editor"),
    path("workspaces/<str:workspace_id>/terminal", views.terminal, name="workspace-terminal"),
    path(
        "workspaces/<str:workspace_id>/terminal/status",
        views.terminal_status,
        name="workspace-terminal-status",
    ),
]
