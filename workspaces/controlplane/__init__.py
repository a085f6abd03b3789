"""The one interface the portal uses for anything that lives in the data plane."""

from workspaces.controlplane.base import (
    ClusterUnavailable,
    ControlPlane,
    Environment,
    EnvironmentNotFound,
    ListResult,
    get_control_plane,
)
from workspaces.controlplane.files import (
    DirectoryListing,
    FileContent,
    FileEntry,
    FileRefused,
    FileVersion,
)

__all__ = [
    "ClusterUnavailable",
    "ControlPlane",
    "DirectoryListing",
    "Environment",
    "EnvironmentNotFound",
    "FileContent",
    "FileEntry",
    "FileRefused",
    "FileVersion",
    "ListResult",
    "get_control_plane",
]
