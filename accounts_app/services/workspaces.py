"""Sign-up, workspaces, memberships and invitations."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.exceptions import (
    ConflictError,
    InvalidInputError,
    LastOwnerError,
    NotFoundError,
    PermissionDeniedError,
)
from accounts_app.models import Invitation, InvitationStatus, Membership, Role, User, Workspace
from accounts_app.services.credits import credits_account_open

logger = logging.getLogger(__name__)

INVITATION_TTL = timedelta(days=7)


def _fields_from(exc: ValidationError) -> dict[str, str]:
    if hasattr(exc, "error_dict"):
        return {field: " ".join(str(m) for e in errors for m in e.messages) for field, errors in exc.error_dict.items()}
    return {"__all__": " ".join(exc.messages)}


@transaction.atomic
def signup_check(*, invitation_token: str = "") -> None:
    """Raise PermissionDeniedError when SIGNUP_MODE does not let someone create an account now: "closed", or
    "invitation" without the secret link of a pending, unexpired invitation."""
    mode = settings.SIGNUP_MODE
    if mode == "closed":
        raise PermissionDeniedError(
            "Sign-up is closed on this platform: an operator creates accounts.", code="signup_closed"
        )
    if mode == "invitation":
        from accounts_app.selectors import invitation_get_by_token

        try:
            invitation_get_by_token(token=invitation_token)
        except NotFoundError:
            raise PermissionDeniedError(
                "Sign-up is by invitation: open the link of your invitation email, then create your account.",
                code="signup_needs_invitation",
            ) from None


def user_signup(
    *, username: str, email: str, password: str, invitation_token: str = "", by_operator: bool = False
) -> User:
    """Create a user with a personal workspace (owner) and its starting credits. Returns the user.

    Unless ``by_operator``, SIGNUP_MODE must allow it (``signup_check``). Raises PermissionDeniedError when it
    does not, InvalidInputError with per-field messages for a taken username or email, or a weak password.
    """
    if not by_operator:
        signup_check(invitation_token=invitation_token)
    username, email = username.strip(), email.strip()
    fields: dict[str, str] = {}
    if User.objects.filter(username__iexact=username).exists():
        fields["username"] = "This username is taken."
    if email and User.objects.filter(email__iexact=email).exists():
        fields["email"] = "An account with this email already exists."
    user = User(username=username, email=email)
    try:
        user.full_clean(exclude=["password"], validate_constraints=False)
    except ValidationError as exc:
        fields = {**_fields_from(exc), **fields}
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        fields["password"] = " ".join(exc.messages)
    if not email:
        fields.setdefault("email", "This field is required.")
    if fields:
        raise InvalidInputError("The account could not be created.", fields=fields)
    user.set_password(password)
    user.save()
    workspace_ensure_personal(user=user)
    return user


@transaction.atomic
def workspace_create(*, user: User, name: str, is_personal: bool = False) -> Actor:
    """Create a workspace owned by ``user``, open its credit account with the starting grant.

    Returns the owner's Actor in it. Raises InvalidInputError for an empty or too long name.
    """
    name = name.strip()
    workspace = Workspace(name=name, is_personal=is_personal, created_by=user)
    try:
        workspace.full_clean()
    except ValidationError as exc:
        raise InvalidInputError("The workspace could not be created.", fields=_fields_from(exc)) from None
    workspace.save()
    Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    credits_account_open(workspace=workspace)
    return Actor(user=user, workspace=workspace, role=Role.OWNER)


@transaction.atomic
def workspace_ensure_personal(*, user: User) -> Actor:
    """Return the user's Actor in their personal workspace, creating the workspace if they have none.

    Used at sign-up and for users made by operators (createsuperuser, issue_token).
    """
    membership = (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__is_personal=True, workspace__created_by=user)
        .first()
    )
    if membership is not None:
        return Actor(user=user, workspace=membership.workspace, role=Role(membership.role))
    # Lock the user row so two first requests in parallel make one personal workspace, not two.
    User.objects.select_for_update().filter(pk=user.pk).first()
    if Membership.objects.filter(user=user, workspace__is_personal=True, workspace__created_by=user).exists():
        return workspace_ensure_personal(user=user)
    return workspace_create(user=user, name=f"{user.username}'s workspace"[:100], is_personal=True)


@transaction.atomic
def workspace_rename(*, actor: Actor, name: str) -> Workspace:
    """Rename the actor's workspace (admins and owners). Returns it; raises InvalidInputError for a bad name."""
    actor.require(Role.ADMIN, "rename the workspace")
    workspace = Workspace.objects.select_for_update().get(pk=actor.workspace.pk)
    workspace.name = name.strip()
    try:
        workspace.full_clean()
    except ValidationError as exc:
        raise InvalidInputError("The workspace could not be renamed.", fields=_fields_from(exc)) from None
    workspace.save(update_fields=["name", "updated_at"])
    return workspace


@transaction.atomic
def workspace_delete(*, actor: Actor) -> None:
    """Delete the actor's workspace and everything in it (owners only).

    Raises PermissionDeniedError for non-owners and ConflictError for a personal workspace.
    """
    actor.require(Role.OWNER, "delete the workspace")
    if actor.workspace.is_personal:
        raise ConflictError("A personal workspace cannot be deleted.", code="personal_workspace")
    Workspace.objects.filter(pk=actor.workspace.pk).delete()


def _owner_count(workspace: Workspace) -> int:
    return Membership.objects.filter(workspace=workspace, role=Role.OWNER).count()


def _check_may_manage(actor: Actor, membership: Membership, new_role: Role | None) -> None:
    """Owners manage everyone; admins manage non-owners and cannot hand out ownership; others nobody."""
    is_self = membership.user_id == actor.user.pk
    if is_self and new_role is None:
        return  # anyone may leave, subject to the last-owner rule
    actor.require(Role.ADMIN, "manage members")
    touches_owner = membership.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and not actor.can(Role.OWNER):
        raise PermissionDeniedError("Only an owner can change an owner or make someone an owner.")


@transaction.atomic
def membership_role_change(*, actor: Actor, user_id: int, role: Role | str) -> Membership:
    """Change a member's role. Returns the membership.

    Raises NotFoundError for a non-member, InvalidInputError for an unknown role,
    PermissionDeniedError when the actor may not, LastOwnerError when no owner would be left.
    """
    try:
        new_role = Role(role)
    except ValueError:
        raise InvalidInputError("Unknown role.", fields={"role": f"Choose one of: {', '.join(Role.values)}."}) from None
    # Lock every membership of the workspace: two concurrent demotions must not remove the last owner.
    list(Membership.objects.select_for_update().filter(workspace=actor.workspace))
    membership = Membership.objects.filter(workspace=actor.workspace, user_id=user_id).select_related("user").first()
    if membership is None:
        raise NotFoundError("Member not found.")
    _check_may_manage(actor, membership, new_role)
    if membership.role == Role.OWNER and new_role != Role.OWNER and _owner_count(actor.workspace) == 1:
        raise LastOwnerError("The workspace needs at least one owner; make someone else an owner first.")
    membership.role = new_role
    membership.full_clean()
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, actor: Actor, user_id: int) -> None:
    """Remove a member (or let the actor leave). Their API tokens in this workspace are revoked.

    Raises NotFoundError, PermissionDeniedError, or LastOwnerError when no owner would be left.
    """
    list(Membership.objects.select_for_update().filter(workspace=actor.workspace))
    membership = Membership.objects.filter(workspace=actor.workspace, user_id=user_id).first()
    if membership is None:
        raise NotFoundError("Member not found.")
    _check_may_manage(actor, membership, None)
    if membership.role == Role.OWNER and _owner_count(actor.workspace) == 1:
        raise LastOwnerError("The workspace needs at least one owner; make someone else an owner first.")
    membership.delete()
    from accounts_app.models import ApiToken

    ApiToken.objects.filter(workspace=actor.workspace, user_id=user_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


@dataclass(frozen=True)
class CreatedInvitation:
    """An invitation and, for email invitations, its secret accept link (shown once to the inviter)."""

    invitation: Invitation
    accept_url: str | None


@transaction.atomic
def invitation_create(
    *, actor: Actor, username: str = "", email: str = "", role: Role | str = Role.MEMBER
) -> CreatedInvitation:
    """Invite someone by username (they see it in the app) or by email (they get a secret link).

    Returns the CreatedInvitation. Side effect: an email invitation is mailed after commit.
    Raises InvalidInputError (neither or both targets, unknown user, bad role or email),
    PermissionDeniedError (not an admin, or an admin inviting an owner) and ConflictError
    (already a member, or already invited).
    """
    actor.require(Role.ADMIN, "invite people")
    username, email = username.strip(), email.strip()
    if bool(username) == bool(email):
        raise InvalidInputError(
            "Invite by username or by email, not both.",
            fields={"username": "Give a username or an email.", "email": "Give a username or an email."},
        )
    try:
        new_role = Role(role)
    except ValueError:
        raise InvalidInputError("Unknown role.", fields={"role": f"Choose one of: {', '.join(Role.values)}."}) from None
    if new_role == Role.OWNER and not actor.can(Role.OWNER):
        raise PermissionDeniedError("Only an owner can invite another owner.")
    invitee = None
    if username:
        invitee = User.objects.filter(username__iexact=username, is_active=True).first()
        if invitee is None:
            raise InvalidInputError("No user has this username.", fields={"username": "No user has this username."})
        if Membership.objects.filter(workspace=actor.workspace, user=invitee).exists():
            raise ConflictError(f"{invitee.username} is already a member.", code="already_member")
    raw_token = secrets.token_urlsafe(32) if email else ""
    invitation = Invitation(
        workspace=actor.workspace,
        invited_by=actor.user,
        invitee=invitee,
        email=email if not invitee else invitee.email,
        role=new_role,
        token_hash=hashlib.sha256(raw_token.encode()).hexdigest() if raw_token else "",
        expires_at=timezone.now() + INVITATION_TTL,
    )
    try:
        invitation.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise InvalidInputError("The invitation could not be created.", fields=_fields_from(exc)) from None
    # Expired pending invitations would block a new one through the unique constraint: close them.
    Invitation.objects.filter(
        workspace=actor.workspace, status=InvitationStatus.PENDING, expires_at__lte=timezone.now()
    ).update(status=InvitationStatus.CANCELLED, responded_at=timezone.now())
    try:
        with transaction.atomic():
            invitation.save()
    except IntegrityError:
        raise ConflictError("There is already a pending invitation for this person.", code="already_invited") from None
    accept_url = None
    if raw_token:
        accept_url = settings.SITE_URL.rstrip("/") + reverse("accounts:invitation_accept_link", args=[raw_token])
        _mail_invitation(invitation=invitation, accept_url=accept_url)
    return CreatedInvitation(invitation=invitation, accept_url=accept_url)


def _mail_invitation(*, invitation: Invitation, accept_url: str) -> None:
    inviter = invitation.invited_by.username if invitation.invited_by else "Someone"
    subject = f"{inviter} invited you to {invitation.workspace.name}"
    body = (
        f'{inviter} invited you to join the workspace "{invitation.workspace.name}" '
        f"as {invitation.get_role_display()}.\n\n"
        f"Accept within 7 days: {accept_url}\n"
    )

    def send() -> None:
        try:
            send_mail(subject, body, None, [invitation.email])
        except Exception:
            # The inviter still has the link; a mail outage must not lose the invitation.
            logger.exception("Could not email invitation %s", invitation.pk)

    transaction.on_commit(send)


def _close(invitation: Invitation, status: InvitationStatus) -> None:
    invitation.status = status
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])


def _locked_pending(invitation_id: int) -> Invitation:
    invitation = Invitation.objects.select_for_update().filter(pk=invitation_id).first()
    if invitation is None or invitation.status != InvitationStatus.PENDING or invitation.is_expired():
        raise NotFoundError("This invitation is not valid any more.")
    return invitation


@transaction.atomic
def invitation_accept(*, user: User, invitation_id: int, via_link: bool = False) -> Membership:
    """Accept an invitation and join the workspace with its role. Returns the membership.

    Username invitations may be accepted only by their invitee; email invitations only through the
    secret link (``via_link``). Raises NotFoundError otherwise or when it is closed or expired.
    """
    invitation = _locked_pending(invitation_id)
    allowed = invitation.invitee_id == user.pk if invitation.invitee_id else via_link
    if not allowed:
        raise NotFoundError("This invitation is not valid any more.")
    _close(invitation, InvitationStatus.ACCEPTED)
    membership, _ = Membership.objects.get_or_create(
        workspace_id=invitation.workspace_id, user=user, defaults={"role": invitation.role}
    )
    return membership


@transaction.atomic
def invitation_decline(*, user: User, invitation_id: int) -> Invitation:
    """Decline an invitation addressed to ``user``. Returns it; raises NotFoundError if not theirs or closed."""
    invitation = _locked_pending(invitation_id)
    if invitation.invitee_id != user.pk:
        raise NotFoundError("This invitation is not valid any more.")
    _close(invitation, InvitationStatus.DECLINED)
    return invitation


@transaction.atomic
def invitation_cancel(*, actor: Actor, invitation_id: int) -> Invitation:
    """Withdraw a pending invitation of the actor's workspace (admins). Raises NotFoundError if there is none."""
    actor.require(Role.ADMIN, "cancel invitations")
    invitation = (
        Invitation.objects.select_for_update()
        .filter(pk=invitation_id, workspace=actor.workspace, status=InvitationStatus.PENDING)
        .first()
    )
    if invitation is None:
        raise NotFoundError("Invitation not found.")
    _close(invitation, InvitationStatus.CANCELLED)
    return invitation


def milestone_reach(*, actor: Actor, name: str) -> None:
    """Record that the actor did a first-run step (once; one statement, no write when already recorded)."""
    import json

    from django.db import connection

    item = json.dumps([name])
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_app_membership SET milestones = milestones || %s::jsonb "
            "WHERE workspace_id = %s AND user_id = %s AND NOT milestones @> %s::jsonb",
            [item, actor.workspace.pk, actor.user.pk, item],
        )
