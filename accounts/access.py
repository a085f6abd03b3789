"""How a suspended member's live access ends at once: enders the higher apps register.

Suspending a member must close their open terminals and preview sessions in whichever
portal process holds them, but connections belong to the security centre and the relay,
above this app. So those apps register an ender here in their `AppConfig.ready()` and this
app never imports them; `accounts.services.member_set_active` calls `member_access_end`
inside the suspending transaction, so the connection rows and their audit entries commit
with the suspension (an ender defers anything outside the database to `on_commit`).
Without an ender nothing is closed here, and each connection's own check of the member
(at redemption, at revalidation) still refuses them.
"""

from __future__ import annotations

from collections.abc import Callable

AccessEnder = Callable[..., None]
"""`ender(user_id=…, actor=…)`, from synchronous code inside the suspending transaction."""

_enders: list[AccessEnder] = []


def register_access_ender(ender: AccessEnder) -> None:
    """Install an app's ender (once per process; registering the same one twice is a no-op)."""
    if ender not in _enders:
        _enders.append(ender)


def member_access_end(*, user_id: int, actor) -> None:
    """Ask every registered app to end the live connections of the member `user_id`."""
    for ender in _enders:
        ender(user_id=user_id, actor=actor)
