"""The security suite runs against the in-memory control plane, like the workspace tests."""

from workspaces.tests.conftest import (  # noqa: F401 - fixtures
    blueprint,
    cluster,
    control_plane,
    member_api,
    stranger,
)
