"""The vocabulary of environments that both sides speak: metadata tags, statuses, phases.

A workspace is an environment in the data plane carrying these tags (DESIGN §2, named
exactly as in the reference product); the agent reports one of `STATUSES` and, while
provisioning, one of `PHASES`. The portal and the agent import these names from here
and nowhere else.
"""

from __future__ import annotations

from typing import Final

# -- metadata tags ---------------------------------------------------------------------------

BLUEPRINT_ID_TAG: Final = "BLUEPRINT_PROJECT_ID"
"""Primary key of the blueprint the workspace was launched from."""
BLUEPRINT_TAG: Final = "BLUEPRINT_KEY"
"""Key of that blueprint (immutable once created)."""
OWNER_TAG: Final = "RDE_OWNER_EMAIL"
"""E-mail of the owning member; matched case-insensitively."""
NAME_TAG: Final = "RDE_DISPLAY_NAME"
"""The name the builder sees."""
PUBLISHED_SUBDOMAIN_TAG: Final = "RDE_PUBLISHED_SUBDOMAIN"
"""On a published app: its subdomain under the apps domain."""
PUBLISHED_FROM_TAG: Final = "RDE_PUBLISHED_FROM"
"""On a published app: the workspace and commit it was built from."""

# -- statuses and phases ---------------------------------------------------------------------

DEPLOYING: Final = "deploying"
RUNNING: Final = "running"
STOPPING: Final = "stopping"
STOPPED: Final = "stopped"
ERROR: Final = "error"
DELETING: Final = "deleting"

STATUSES: Final = (DEPLOYING, RUNNING, STOPPING, STOPPED, ERROR, DELETING)
ACTIVE_STATUSES: Final = (RUNNING, DEPLOYING)
"""Statuses that count against a member's running-workspace limit."""

PHASES: Final = ("validating", "creating", "cloning", "configuring", "deploying", "finalizing")
"""Provisioning phases, in order, reported while the status is `deploying`."""

__all__ = [
    "ACTIVE_STATUSES",
    "BLUEPRINT_ID_TAG",
    "BLUEPRINT_TAG",
    "DELETING",
    "DEPLOYING",
    "ERROR",
    "NAME_TAG",
    "OWNER_TAG",
    "PHASES",
    "PUBLISHED_FROM_TAG",
    "PUBLISHED_SUBDOMAIN_TAG",
    "RUNNING",
    "STATUSES",
    "STOPPED",
    "STOPPING",
]
