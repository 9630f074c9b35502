"""API token authentication: a bearer token to the Actor it stands for, checked on every API call.

Not a selector, because it writes: a token's ``last_used_at`` is stamped, at most once per
API_TOKEN_LAST_USED_RESOLUTION_SECONDS, to spare writes. ``api_token_authenticate`` is for sync code,
``api_token_authenticate_async`` for the event loop (config.adb); both run the same query and rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.models import ApiToken, Membership, Role, User, Workspace
from config import adb
from config.db import RowModel

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
    """``api_token_authenticate`` awaited on the event loop (config.adb): the same checks and side effect."""
    digest = _token_digest(raw_token)
    if digest is None:
        return None
    row = await adb.fetchone(_AUTHENTICATE_SQL, [digest])
    now = timezone.now()
    actor, stamp = _actor_from_row(row, now)
    if actor is not None and stamp:
        await adb.fetchone(_STAMP_SQL, [now, actor.token.pk])  # type: ignore[union-attr]
    return actor
