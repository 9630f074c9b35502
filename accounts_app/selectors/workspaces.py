"""Workspace, membership and invitation reads, scoped to what the acting user may see."""

from __future__ import annotations

import hashlib

from django.db.models import Count, QuerySet
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.exceptions import NotFoundError
from accounts_app.models import Invitation, InvitationStatus, Membership, Role, User, Workspace


def workspace_list_for_user(*, user: User) -> QuerySet[Membership]:
    """Return the user's memberships with their workspaces, annotated with the member count."""
    return (
        Membership.objects.filter(user=user)
        .select_related("workspace")
        .annotate(member_count=Count("workspace__memberships"))
        .order_by("-workspace__is_personal", "workspace__name", "workspace_id")
    )


def workspace_get_for_user(*, user: User, workspace_id: int) -> Actor:
    """Return the user's Actor in that workspace.

    Raises NotFoundError when the workspace does not exist or the user is not a member: the two look
    the same so that outsiders learn nothing.
    """
    membership = Membership.objects.select_related("workspace").filter(user=user, workspace_id=workspace_id).first()
    if membership is None:
        raise NotFoundError("Workspace not found.")
    return Actor(user=user, workspace=membership.workspace, role=Role(membership.role))


def actor_for_user(*, user: User, preferred_workspace_id: int | None) -> Actor | None:
    """Return the user's Actor in the preferred workspace, else in their personal one, else in any.

    Returns None when the user belongs to no workspace at all.
    """
    memberships = Membership.objects.select_related("workspace").filter(user=user)
    membership = None
    if preferred_workspace_id is not None:
        membership = memberships.filter(workspace_id=preferred_workspace_id).first()
    if membership is None:
        membership = memberships.order_by("-workspace__is_personal", "workspace_id").first()
    if membership is None:
        return None
    return Actor(user=user, workspace=membership.workspace, role=Role(membership.role))


def membership_list(*, actor: Actor) -> QuerySet[Membership]:
    """Return the members of the actor's workspace, owners first."""
    return Membership.objects.filter(workspace=actor.workspace).select_related("user").order_by("user__username")


def membership_get(*, actor: Actor, user_id: int) -> Membership:
    """Return one membership of the actor's workspace; raises NotFoundError if there is none."""
    membership = (
        Membership.objects.select_related("user", "workspace")
        .filter(workspace=actor.workspace, user_id=user_id)
        .first()
    )
    if membership is None:
        raise NotFoundError("Member not found.")
    return membership


def invitation_list_for_workspace(*, actor: Actor) -> QuerySet[Invitation]:
    """Return the pending invitations of the actor's workspace, newest first."""
    return Invitation.objects.filter(workspace=actor.workspace, status=InvitationStatus.PENDING).select_related(
        "invitee", "invited_by"
    )


def invitation_list_for_user(*, user: User) -> QuerySet[Invitation]:
    """Return the pending, unexpired invitations addressed to the user by username."""
    return Invitation.objects.filter(
        invitee=user, status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
    ).select_related("workspace", "invited_by")


def invitation_get_by_token(*, token: str) -> Invitation:
    """Return the pending email invitation whose secret link holds ``token``.

    Raises NotFoundError when no pending, unexpired invitation matches.
    """
    digest = hashlib.sha256(token.encode()).hexdigest()
    invitation = (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(token_hash=digest, status=InvitationStatus.PENDING, expires_at__gt=timezone.now())
        .first()
    )
    if invitation is None or not token:
        raise NotFoundError("This invitation link is not valid any more.")
    return invitation


def workspace_role(*, user: User, workspace: Workspace) -> Role | None:
    """Return the user's role in the workspace, or None if they are not a member."""
    role = Membership.objects.filter(user=user, workspace=workspace).values_list("role", flat=True).first()
    return Role(role) if role else None
