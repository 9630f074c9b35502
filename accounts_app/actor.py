"""The acting identity for a request: a user, in one workspace, with a role, maybe through an API token."""

from __future__ import annotations

from dataclasses import dataclass

from accounts_app.exceptions import PermissionDeniedError
from accounts_app.models import ApiToken, Role, User, Workspace


@dataclass(frozen=True)
class Actor:
    """Who is acting and where. Selectors scope every query by ``workspace``; services check ``role``."""

    user: User
    workspace: Workspace
    role: Role
    token: ApiToken | None = None

    def can(self, role: Role) -> bool:
        """Return whether the actor's role is at least ``role``."""
        return self.role.at_least(role)

    def require(self, role: Role, action: str = "do this") -> None:
        """Raise PermissionDeniedError unless the actor's role is at least ``role``."""
        if not self.can(role):
            raise PermissionDeniedError(
                f"Your role in this workspace ({self.role.label.lower()}) does not allow you to {action}; "
                f"it needs {role.label.lower()} or above."
            )

    def require_write(self) -> None:
        """Raise PermissionDeniedError for viewers, who may read but never change anything."""
        self.require(Role.MEMBER, "make changes")
