"""Template context for the workspace switcher in the base layout, and the sign-up mode for the sign-in page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def workspace(request: HttpRequest) -> dict[str, Any]:
    """Return ``active_section``, ``current_actor`` and, lazily, ``my_workspaces`` for the navigation bar."""
    match = getattr(request, "resolver_match", None)  # None on 404 pages
    active_section = (match.namespace or match.url_name) if match else ""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"active_section": active_section, "signup_mode": settings.SIGNUP_MODE}
    from accounts_app.selectors import workspace_list_for_user

    actor = getattr(request, "actor", None)
    return {
        "active_section": active_section,
        "current_actor": actor,
        "my_workspaces": lambda: list(workspace_list_for_user(user=request.user)),
    }
