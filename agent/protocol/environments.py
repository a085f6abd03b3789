"""The vocabulary of environments that both sides speak: metadata tags, statuses, phases,
isolation mechanisms.

A workspace is an environment in the data plane carrying these tags (DESIGN §2, named
exactly as in the reference product); the agent reports one of `STATUSES` and, while
provisioning, one of `PHASES`, and says in its `hello` how its runtime isolates
workspaces (`ISOLATION`). The portal and the agent import these names from here and
nowhere else.
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
ENV_DIGEST_TAG: Final = "RDE_ENV_DIGEST"
"""A keyed digest of the variables the portal injected at the last (re)start (never the
variables): the portal compares it with today's to say "restart to apply"."""
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

# -- isolation -------------------------------------------------------------------------------

SANDBOX_NONE: Final = "none"
"""The `sandbox` an agent reports when workspaces run as plain processes of one user."""
ISOLATION: Final = {
    "sandbox": frozenset({"bubblewrap", SANDBOX_NONE}),
    "network": frozenset({"private", "shared"}),
    "limits": frozenset({"cgroup", "prlimit", "none"}),
}
"""What the agent's `hello` may say of how its runtime keeps workspaces apart: each
mechanism and the values it may take (`agent.runtimes.base.Runtime.isolation`)."""


def known_isolation(report: object) -> dict[str, str]:
    """The known mechanisms of an isolation report with their known values.

    Anything else (an unknown key, a value outside `ISOLATION`, a report that is not an
    object) is dropped, so a newer or misbehaving agent can never make the portal show
    a mechanism it does not know as a protection.
    """
    if not isinstance(report, dict):
        return {}
    return {
        key: value
        for key, values in ISOLATION.items()
        if isinstance(value := report.get(key), str) and value in values
    }


__all__ = [
    "ACTIVE_STATUSES",
    "BLUEPRINT_ID_TAG",
    "BLUEPRINT_TAG",
    "DELETING",
    "DEPLOYING",
    "ENV_DIGEST_TAG",
    "ERROR",
    "ISOLATION",
    "NAME_TAG",
    "OWNER_TAG",
    "PHASES",
    "PUBLISHED_FROM_TAG",
    "PUBLISHED_SUBDOMAIN_TAG",
    "RUNNING",
    "SANDBOX_NONE",
    "STATUSES",
    "STOPPED",
    "STOPPING",
    "known_isolation",
]
