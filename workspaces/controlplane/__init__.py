"""The one interface the portal uses for anything that lives in the data plane."""

from workspaces.controlplane.base import (
    ClusterUnavailable,
    ControlPlane,
    Environment,
    EnvironmentNotFound,
    ListResult,
    get_control_plane,
)

__all__ = [
    "ClusterUnavailable",
    "ControlPlane",
    "Environment",
    "EnvironmentNotFound",
    "ListResult",
    "get_control_plane",
]
