"""Template context for the workspace switcher in the base layout."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def workspace(request: HttpRequest) -> dict[str, Any]:
    """Return ``current_actor`` and, lazily, ``my_workspaces`` for the navigation bar."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    from accounts_app.selectors import workspace_list_for_user

    actor = getattr(request, "actor", None)
    return {
        "current_actor": actor,
        "my_workspaces": lambda: list(workspace_list_for_user(user=request.user)),
    }
