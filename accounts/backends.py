"""Password sign-in by e-mail (local accounts and the break-glass admin)."""

from django.contrib.auth.backends import ModelBackend


class EmailBackend(ModelBackend):
    """Authenticates an active member by e-mail (case-insensitive) and password.

    Permissions are the role's (see `accounts.User.has_perm`), so the backend grants none.
    """

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        return set()

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        return False
