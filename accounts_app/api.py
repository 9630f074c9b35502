"""Accounts API: the caller, workspaces, members, invitations, API tokens and credits.

No `from __future__ import annotations` here: ninja reads the annotations at runtime.
"""

from django.http import HttpRequest
from ninja import Query, Router, Status
from ninja.pagination import paginate

from accounts_app import selectors, services
from accounts_app.actor import Actor
from accounts_app.exceptions import NotFoundError
from accounts_app.models import Invitation, Membership, Role
from accounts_app.schemas import (
    BalanceOut,
    InvitationCreatedOut,
    InvitationIn,
    InvitationOut,
    LedgerEntryOut,
    LedgerFilter,
    MemberOut,
    MemberPatch,
    MeOut,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
    WorkspaceIn,
    WorkspaceOut,
)
from config.auth import request_actor
from config.paginators import LimitOffset

me_router = Router(tags=["me"])
workspaces_router = Router(tags=["workspaces"])
tokens_router = Router(tags=["tokens"])
credits_router = Router(tags=["credits"])


def _actor_in(request: HttpRequest, workspace_id: int) -> Actor:
    """Return the caller's Actor in ``workspace_id``; a token only ever reaches its own workspace."""
    actor = request_actor(request)
    if actor.workspace.pk == workspace_id:
        return actor
    if actor.token is not None:
        raise NotFoundError("Workspace not found.")
    return selectors.workspace_get_for_user(user=actor.user, workspace_id=workspace_id)


def _workspace_out(actor: Actor) -> dict[str, object]:
    ws = actor.workspace
    return {
        "id": ws.pk,
        "name": ws.name,
        "is_personal": ws.is_personal,
        "role": actor.role.value,
        "created_at": ws.created_at,
    }


def _member_out(m: Membership) -> dict[str, object]:
    return {"user": m.user, "role": m.role, "joined_at": m.created_at}


# --- me ------------------------------------------------------------------------------------------
@me_router.get("", response=MeOut, summary="Who am I, in which workspace")
def me_get(request: HttpRequest) -> dict[str, object]:
    actor = request_actor(request)
    return {"user": actor.user, "workspace": _workspace_out(actor), "via_token": actor.token is not None}


@me_router.get("/invitations", response=list[InvitationOut], summary="Invitations addressed to me")
def my_invitations(request: HttpRequest) -> list[Invitation]:
    return list(selectors.invitation_list_for_user(user=request_actor(request).user))


@me_router.post("/invitations/{invitation_id}/accept", response=WorkspaceOut, summary="Accept an invitation")
def my_invitation_accept(request: HttpRequest, invitation_id: int) -> dict[str, object]:
    actor = request_actor(request)
    membership = services.invitation_accept(user=actor.user, invitation_id=invitation_id)
    return _workspace_out(Actor(user=actor.user, workspace=membership.workspace, role=Role(membership.role)))


@me_router.post("/invitations/{invitation_id}/decline", response={204: None}, summary="Decline an invitation")
def my_invitation_decline(request: HttpRequest, invitation_id: int) -> Status:
    services.invitation_decline(user=request_actor(request).user, invitation_id=invitation_id)
    return Status(204, None)


# --- workspaces ----------------------------------------------------------------------------------
@workspaces_router.get("", response=list[WorkspaceOut], summary="My workspaces")
def workspace_list(request: HttpRequest) -> list[dict[str, object]]:
    actor = request_actor(request)
    if actor.token is not None:
        return [_workspace_out(actor)]
    return [
        _workspace_out(Actor(user=actor.user, workspace=m.workspace, role=Role(m.role)))
        for m in selectors.workspace_list_for_user(user=actor.user)
    ]


@workspaces_router.post("", response={201: WorkspaceOut}, summary="Create a workspace (you own it)")
def workspace_create(request: HttpRequest, payload: WorkspaceIn) -> Status:
    return Status(201, _workspace_out(services.workspace_create(user=request_actor(request).user, name=payload.name)))


@workspaces_router.get("/{workspace_id}", response=WorkspaceOut)
def workspace_get(request: HttpRequest, workspace_id: int) -> dict[str, object]:
    return _workspace_out(_actor_in(request, workspace_id))


@workspaces_router.patch("/{workspace_id}", response=WorkspaceOut, summary="Rename (admins)")
def workspace_rename(request: HttpRequest, workspace_id: int, payload: WorkspaceIn) -> dict[str, object]:
    actor = _actor_in(request, workspace_id)
    workspace = services.workspace_rename(actor=actor, name=payload.name)
    return _workspace_out(Actor(user=actor.user, workspace=workspace, role=actor.role))


@workspaces_router.delete("/{workspace_id}", response={204: None}, summary="Delete with everything in it (owners)")
def workspace_delete(request: HttpRequest, workspace_id: int) -> Status:
    services.workspace_delete(actor=_actor_in(request, workspace_id))
    return Status(204, None)


@workspaces_router.get("/{workspace_id}/members", response=list[MemberOut])
def member_list(request: HttpRequest, workspace_id: int) -> list[dict[str, object]]:
    return [_member_out(m) for m in selectors.membership_list(actor=_actor_in(request, workspace_id))]


@workspaces_router.patch("/{workspace_id}/members/{user_id}", response=MemberOut, summary="Change a role")
def member_update(request: HttpRequest, workspace_id: int, user_id: int, payload: MemberPatch) -> dict[str, object]:
    actor = _actor_in(request, workspace_id)
    return _member_out(services.membership_role_change(actor=actor, user_id=user_id, role=payload.role))


@workspaces_router.delete("/{workspace_id}/members/{user_id}", response={204: None}, summary="Remove a member or leave")
def member_remove(request: HttpRequest, workspace_id: int, user_id: int) -> Status:
    services.membership_remove(actor=_actor_in(request, workspace_id), user_id=user_id)
    return Status(204, None)


@workspaces_router.get("/{workspace_id}/invitations", response=list[InvitationOut])
def invitation_list(request: HttpRequest, workspace_id: int) -> list[Invitation]:
    actor = _actor_in(request, workspace_id)
    actor.require(Role.ADMIN, "see invitations")
    return list(selectors.invitation_list_for_workspace(actor=actor))


@workspaces_router.post(
    "/{workspace_id}/invitations", response={201: InvitationCreatedOut}, summary="Invite by username or email"
)
def invitation_create(request: HttpRequest, workspace_id: int, payload: InvitationIn) -> Status:
    created = services.invitation_create(
        actor=_actor_in(request, workspace_id), username=payload.username, email=payload.email, role=payload.role
    )
    created.invitation.accept_url = created.accept_url  # type: ignore[attr-defined]
    return Status(201, created.invitation)


@workspaces_router.delete("/{workspace_id}/invitations/{invitation_id}", response={204: None})
def invitation_cancel(request: HttpRequest, workspace_id: int, invitation_id: int) -> Status:
    services.invitation_cancel(actor=_actor_in(request, workspace_id), invitation_id=invitation_id)
    return Status(204, None)


# --- tokens --------------------------------------------------------------------------------------
@tokens_router.get("", response=list[TokenOut], summary="Tokens of this workspace you can manage")
@paginate(LimitOffset)
def token_list(request: HttpRequest):  # type: ignore[no-untyped-def]
    return selectors.api_token_list(actor=request_actor(request))


@tokens_router.post("", response={201: TokenCreatedOut}, summary="Create a token (the secret is shown once)")
def token_create(request: HttpRequest, payload: TokenIn) -> Status:
    issued = services.api_token_create(actor=request_actor(request), name=payload.name, expires_at=payload.expires_at)
    issued.token.token = issued.raw  # type: ignore[attr-defined]  # shown in this response only
    return Status(201, issued.token)


@tokens_router.delete("/{token_id}", response={204: None}, summary="Revoke a token (refused from now on)")
def token_revoke(request: HttpRequest, token_id: int) -> Status:
    services.api_token_revoke(actor=request_actor(request), token_id=token_id)
    return Status(204, None)


# --- credits -------------------------------------------------------------------------------------
@credits_router.get("", response=BalanceOut, summary="This workspace's credit balance")
def credits_balance(request: HttpRequest) -> dict[str, object]:
    actor = request_actor(request)
    return {"workspace_id": actor.workspace.pk, "balance": selectors.credit_balance_get(actor=actor)}


@credits_router.get("/ledger", response=list[LedgerEntryOut], summary="The usage ledger, newest first")
@paginate(LimitOffset)
def credits_ledger(request: HttpRequest, filters: Query[LedgerFilter]):  # type: ignore[no-untyped-def]
    return selectors.ledger_list(actor=request_actor(request), kind=filters.kind)
