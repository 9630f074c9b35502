"""API token reads: the tokens listed on the token pages (authentication is accounts_app/services/authentication.py)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts_app.actor import Actor
from accounts_app.models import ApiToken, Role


def api_token_list(*, actor: Actor) -> QuerySet[ApiToken]:
    """Return the tokens of the actor's workspace that the actor may manage.

    Admins and owners see every member's tokens (to revoke a leaked one); others see their own.
    """
    tokens = ApiToken.objects.filter(workspace=actor.workspace).select_related("user")
    if not actor.can(Role.ADMIN):
        tokens = tokens.filter(user=actor.user)
    return tokens
