"""API token writes: create (the raw token is returned once), revoke, and the operator bootstrap."""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.exceptions import ConflictError, InvalidInputError, NotFoundError
from accounts_app.models import ApiToken, Membership, Role, User, Workspace
from accounts_app.services.workspaces import workspace_create

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
MAX_TOKENS_PER_USER_AND_WORKSPACE = 50


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: ``raw`` is shown to its owner once and never stored."""

    token: ApiToken
    raw: str


def _new_raw_token() -> tuple[str, str]:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    return prefix, f"{settings.API_TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


@transaction.atomic
def api_token_create(*, actor: Actor, name: str, expires_at: datetime | None = None) -> IssuedToken:
    """Create a token acting for the actor's user in the actor's workspace.

    Returns the IssuedToken whose ``raw`` value must be shown once. Raises InvalidInputError for an
    empty name or a past expiry, ConflictError past MAX_TOKENS_PER_USER_AND_WORKSPACE active tokens.
    """
    name = name.strip()
    if not name:
        raise InvalidInputError("Give the token a name.", fields={"name": "This field is required."})
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInputError("The expiry must be in the future.", fields={"expires_at": "Must be in the future."})
    active = ApiToken.objects.filter(user=actor.user, workspace=actor.workspace, revoked_at__isnull=True).count()
    if active >= MAX_TOKENS_PER_USER_AND_WORKSPACE:
        raise ConflictError("You have too many active tokens here; revoke some first.", code="too_many_tokens")
    prefix, raw = _new_raw_token()
    token = ApiToken(
        user=actor.user,
        workspace=actor.workspace,
        name=name,
        prefix=prefix,
        token_hash=hashlib.sha256(raw.encode()).hexdigest(),
        expires_at=expires_at,
    )
    token.full_clean()
    token.save()
    return IssuedToken(token=token, raw=raw)


@transaction.atomic
def api_token_revoke(*, actor: Actor, token_id: int) -> ApiToken:
    """Revoke a token; it is refused from the next request on. Returns the token.

    Members revoke their own tokens, admins and owners any token in the workspace. Raises
    NotFoundError for a token the actor cannot manage. Revoking twice is harmless.
    """
    tokens = ApiToken.objects.select_for_update().filter(workspace=actor.workspace)
    if not actor.can(Role.ADMIN):
        tokens = tokens.filter(user=actor.user)
    token = tokens.filter(pk=token_id).first()
    if token is None:
        raise NotFoundError("Token not found.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


@transaction.atomic
def operator_token_issue(
    *,
    username: str,
    workspace_name: str | None = None,
    role: Role = Role.OWNER,
    token_name: str = "operator",  # noqa: S107
) -> IssuedToken:
    """Bootstrap access for an operator: create the user and the workspace if needed and issue a token.

    Without ``workspace_name`` the user's personal workspace is used. A new workspace makes the user
    its owner; an existing one the user is not in adds them with ``role``. Returns the IssuedToken.
    Raises InvalidInputError for an empty username.
    """
    from accounts_app.services.workspaces import workspace_ensure_personal

    username = username.strip()
    if not username:
        raise InvalidInputError("A username is required.", fields={"username": "This field is required."})
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username)
        user.set_unusable_password()
        user.full_clean()
        user.save()
    if workspace_name:
        workspace = Workspace.objects.filter(name=workspace_name, memberships__user=user).first()
        workspace = workspace or Workspace.objects.filter(name=workspace_name).order_by("id").first()
        if workspace is None:
            # The creator of a new workspace is always its owner, whatever role was asked for.
            workspace = workspace_create(user=user, name=workspace_name).workspace
        elif not Membership.objects.filter(workspace=workspace, user=user).exists():
            Membership.objects.create(workspace=workspace, user=user, role=role)
    else:
        workspace = workspace_ensure_personal(user=user).workspace
    membership = Membership.objects.get(workspace=workspace, user=user)
    actor = Actor(user=user, workspace=workspace, role=Role(membership.role))
    return api_token_create(actor=actor, name=token_name)
