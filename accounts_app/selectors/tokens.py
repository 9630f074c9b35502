"""API token reads: listing for the token pages, and authentication for the API."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.models import ApiToken, Membership, Role, User, Workspace
from config.db import RowModel


def api_token_list(*, actor: Actor) -> QuerySet[ApiToken]:
    """Return the tokens of the actor's workspace that the actor may manage.

    Admins and owners see every member's tokens (to revoke a leaked one); others see their own.
    """
    tokens = ApiToken.objects.filter(workspace=actor.workspace).select_related("user")
    if not actor.can(Role.ADMIN):
        tokens = tokens.filter(user=actor.user)
    return tokens


_TOKEN = RowModel(ApiToken, "t")
_USER = RowModel(User, "u")
_WORKSPACE = RowModel(Workspace, "w")
# Every API call runs this, and the ORM took ten times longer to compile it than Postgres to answer it.
_AUTHENTICATE_SQL = f"""
SELECT {_TOKEN.columns}, {_USER.columns}, {_WORKSPACE.columns},
       (SELECT m.role FROM {Membership._meta.db_table} m
        WHERE m.user_id = t.user_id AND m.workspace_id = t.workspace_id)
FROM {ApiToken._meta.db_table} t
JOIN {User._meta.db_table} u ON u.id = t.user_id
JOIN {Workspace._meta.db_table} w ON w.id = t.workspace_id
WHERE t.token_hash = %s
"""  # noqa: S608 (names come from model metadata; the hash is a parameter)


def api_token_authenticate(*, raw_token: str) -> Actor | None:
    """Return the Actor for a raw bearer token, or None when it is unknown, revoked, expired or orphaned.

    The role comes from the user's current membership, so removing a member disarms their tokens at
    once. Side effect: stamps ``last_used_at``, at most once a minute per token to spare writes.
    """
    if not raw_token.startswith(settings.API_TOKEN_PREFIX) or len(raw_token) > 200:
        return None
    digest = hashlib.sha256(raw_token.encode()).hexdigest()
    # One query: the token, its user and workspace, and the user's current role there.
    with connection.cursor() as cursor:
        cursor.execute(_AUTHENTICATE_SQL, [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    token = _TOKEN.build(row)
    user = _USER.build(row, _TOKEN.width)
    workspace = _WORKSPACE.build(row, _TOKEN.width + _USER.width)
    role = row[-1]
    now = timezone.now()
    if not token.is_active(now=now) or not user.is_active or role is None:
        return None
    token.user, token.workspace = user, workspace
    resolution = timedelta(seconds=settings.API_TOKEN_LAST_USED_RESOLUTION_SECONDS)
    if token.last_used_at is None or now - token.last_used_at > resolution:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return Actor(user=user, workspace=workspace, role=Role(role), token=token)
