"""API token reads: listing for the token pages, and authentication for the API."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.models import ApiToken, Membership, Role


def api_token_list(*, actor: Actor) -> QuerySet[ApiToken]:
    """Return the tokens of the actor's workspace that the actor may manage.

    Admins and owners see every member's tokens (to revoke a leaked one); others see their own.
    """
    tokens = ApiToken.objects.filter(workspace=actor.workspace).select_related("user")
    if not actor.can(Role.ADMIN):
        tokens = tokens.filter(user=actor.user)
    return tokens


def api_token_authenticate(*, raw_token: str) -> Actor | None:
    """Return the Actor for a raw bearer token, or None when it is unknown, revoked, expired or orphaned.

    The role comes from the user's current membership, so removing a member disarms their tokens at
    once. Side effect: stamps ``last_used_at``, at most once a minute per token to spare writes.
    """
    if not raw_token.startswith(settings.API_TOKEN_PREFIX) or len(raw_token) > 200:
        return None
    digest = hashlib.sha256(raw_token.encode()).hexdigest()
    # One query: the token, its user and workspace, and the user's current role there.
    role_in_workspace = Membership.objects.filter(
        user_id=OuterRef("user_id"), workspace_id=OuterRef("workspace_id")
    ).values("role")[:1]
    token = (
        ApiToken.objects.select_related("user", "workspace")
        .annotate(member_role=Subquery(role_in_workspace))
        .filter(token_hash=digest)
        .first()
    )
    now = timezone.now()
    if token is None or not token.is_active(now=now) or not token.user.is_active:
        return None
    role = token.member_role
    if role is None:
        return None
    resolution = timedelta(seconds=settings.API_TOKEN_LAST_USED_RESOLUTION_SECONDS)
    if token.last_used_at is None or now - token.last_used_at > resolution:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return Actor(user=token.user, workspace=token.workspace, role=Role(role), token=token)
