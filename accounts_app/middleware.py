"""Attach the signed-in user's current workspace to every browser request as ``request.actor``."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts_app.actor import Actor
from config.middleware import BothModesMiddleware

SESSION_KEY = "workspace_id"


def session_actor(request: HttpRequest) -> Actor | None:
    """Return the Actor for the session's current workspace, or None for anonymous users.

    Falls back to the personal workspace when the remembered one is gone (the user was removed),
    and creates a personal workspace for a user who has none (one made by an operator).
    """
    from accounts_app.selectors import actor_for_user
    from accounts_app.services import workspace_ensure_personal

    user = request.user
    if not user.is_authenticated:
        return None
    preferred = request.session.get(SESSION_KEY)
    actor = actor_for_user(user=user, preferred_workspace_id=preferred if isinstance(preferred, int) else None)
    if actor is None:
        actor = workspace_ensure_personal(user=user)
    if preferred != actor.workspace.pk:
        request.session[SESSION_KEY] = actor.workspace.pk
    return actor


class CurrentWorkspaceMiddleware(BothModesMiddleware):
    """Sets ``request.actor`` lazily, so requests that never look at it cost no query.

    Sync and async capable: an async view (a streamed run) is not pushed through a thread for it.
    """

    def process_request(self, request: HttpRequest) -> None:
        request.actor = SimpleLazyObject(lambda: session_actor(request))  # type: ignore[attr-defined]
