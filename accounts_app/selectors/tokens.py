"""API token reads: listing for the token pages, and authentication for the API."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.models import ApiToken, Membership, Role, User, Workspace
from config import adb
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


def _token_digest(raw_token: str) -> str | None:
    if not raw_token.startswith(settings.API_TOKEN_PREFIX) or len(raw_token) > 200:
        return None
    return hashlib.sha256(raw_token.encode()).hexdigest()


def _actor_from_row(row: Sequence[Any] | None, now: datetime) -> tuple[Actor | None, bool]:
    """Return the Actor for a row of _AUTHENTICATE_SQL (None when the token is not usable now), and
    whether its ``last_used_at`` is due to be stamped."""
    if row is None:
        return None, False
    token = _TOKEN.build(row)
    user = _USER.build(row, _TOKEN.width)
    workspace = _WORKSPACE.build(row, _TOKEN.width + _USER.width)
    role = row[-1]
    if not token.is_active(now=now) or not user.is_active or role is None:
        return None, False
    token.user, token.workspace = user, workspace
    resolution = timedelta(seconds=settings.API_TOKEN_LAST_USED_RESOLUTION_SECONDS)
    stamp = token.last_used_at is None or now - token.last_used_at > resolution
    if stamp:
        token.last_used_at = now
    return Actor(user=user, workspace=workspace, role=Role(role), token=token), stamp


_STAMP_SQL = f"UPDATE {ApiToken._meta.db_table} SET last_used_at = %s WHERE id = %s"  # noqa: S608


def api_token_authenticate(*, raw_token: str) -> Actor | None:
    """Return the Actor for a raw bearer token, or None when it is unknown, revoked, expired or orphaned.

    The role comes from the user's current membership, so removing a member disarms their tokens at
    once. Side effect: stamps ``last_used_at``, at most once a minute per token to spare writes.
    """
    digest = _token_digest(raw_token)
    if digest is None:
        return None
    # One query: the token, its user and workspace, and the user's current role there.
    with connection.cursor() as cursor:
        cursor.execute(_AUTHENTICATE_SQL, [digest])
        now = timezone.now()
        actor, stamp = _actor_from_row(cursor.fetchone(), now)
        if actor is not None and stamp:
            cursor.execute(_STAMP_SQL, [now, actor.token.pk])  # type: ignore[union-attr]
    return actor


async def api_token_authenticate_async(*, raw_token: str) -> Actor | None:
    """``api_token_authenticate`` awaited on the event loop (config.adb): the same checks and side effect.

    Also remembers the actor for ``api_token_recent_actor`` (in this process, for this event loop's callers).
    """
    digest = _token_digest(raw_token)
    if digest is None:
        return None
    row = await adb.fetchone(_AUTHENTICATE_SQL, [digest])
    now = timezone.now()
    actor, stamp = _actor_from_row(row, now)
    if actor is not None:
        if stamp:
            await adb.fetchone(_STAMP_SQL, [now, actor.token.pk])  # type: ignore[union-attr]
        _recent[digest] = actor
        _recent.move_to_end(digest)
        if len(_recent) > _RECENT_MAX:
            _recent.popitem(last=False)
    return actor


# The run hot path's actors, by token digest: a token check costs a round trip and a 30-column row, so a
# run whose token was checked lately folds the check into its own first statement instead (token_guard_cte).
# Only the event loop's thread touches this (no lock); bounded, least recently used first out.
_recent: OrderedDict[str, Actor] = OrderedDict()
_RECENT_MAX = 1024


def api_token_recent_actor(*, raw_token: str) -> Actor | None:
    """Return the actor ``api_token_authenticate_async`` gave for this token, while its ``last_used_at``
    stamp is not yet due again (so skipping the check skips no write); else None.

    Not an authentication: the token may have been revoked, or the member removed, since. The caller must
    act only through a statement that includes ``token_guard_cte(actor)``, which confirms it, and call
    ``api_token_forget`` when that statement did nothing.
    """
    digest = _token_digest(raw_token)
    actor = _recent.get(digest) if digest is not None else None
    if actor is None or actor.token is None or actor.token.last_used_at is None:
        return None
    resolution = timedelta(seconds=settings.API_TOKEN_LAST_USED_RESOLUTION_SECONDS)
    if timezone.now() - actor.token.last_used_at > resolution:
        return None
    return actor


def api_token_forget(*, raw_token: str) -> None:
    """Drop what ``api_token_recent_actor`` would return for this token (its next use checks it afresh)."""
    digest = _token_digest(raw_token)
    if digest is not None:
        _recent.pop(digest, None)


# The token check of _AUTHENTICATE_SQL, as a CTE with a row only if its answer would still be this actor
# (same user, workspace and role; token not revoked nor expired; user active) and the workspace's
# configuration has not changed (the actor's cached agent definitions are keyed by its version).
_GUARD_CTE = f"""token_guard AS (
    SELECT 1 FROM {ApiToken._meta.db_table} t
    JOIN {User._meta.db_table} u ON u.id = t.user_id
    JOIN {Workspace._meta.db_table} w ON w.id = t.workspace_id
    JOIN {Membership._meta.db_table} m ON m.user_id = t.user_id AND m.workspace_id = t.workspace_id
    WHERE t.id = %(guard_token)s AND t.user_id = %(guard_user)s AND t.workspace_id = %(guard_workspace)s
      AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > %(guard_now)s)
      AND u.is_active AND m.role = %(guard_role)s AND w.config_version = %(guard_version)s
)"""  # noqa: S608 (names come from model metadata; values are parameters)


def token_guard_cte(actor: Actor) -> tuple[str, dict[str, Any]]:
    """Return ``(cte, params)``: a ``token_guard`` CTE that has a row only if a token check now would give
    ``actor`` again (for a statement that acts for an actor from ``api_token_recent_actor``)."""
    if actor.token is None:
        raise ValueError("token_guard_cte needs a token's actor")
    return _GUARD_CTE, {
        "guard_token": actor.token.pk,
        "guard_user": actor.user.pk,
        "guard_workspace": actor.workspace.pk,
        "guard_now": timezone.now(),
        "guard_role": actor.role.value,
        "guard_version": actor.workspace.config_version,
    }
