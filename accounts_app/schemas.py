"""Request and response schemas of the accounts API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from ninja import Field, ModelSchema, Schema
from pydantic import field_validator, validate_email

from accounts_app.models import ApiToken, Invitation, LedgerEntry, User
from config.input import InputSchema, IsoDatetime, QuerySchema

RoleName = Literal["owner", "admin", "member", "viewer"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


class UserOut(ModelSchema):
    class Meta:
        model = User
        fields = ["id", "username", "email"]


class WorkspaceOut(Schema):
    id: int
    name: str
    is_personal: bool
    role: RoleName
    created_at: datetime


class MeOut(Schema):
    user: UserOut
    workspace: WorkspaceOut
    via_token: bool


class WorkspaceIn(InputSchema):
    name: str = Field(min_length=1, max_length=100)

    _strip = field_validator("name")(_not_blank)


class MemberOut(Schema):
    user: UserOut
    role: RoleName
    joined_at: datetime


class MemberPatch(InputSchema):
    role: RoleName


class InvitationIn(InputSchema):
    """Give exactly one of ``username`` or ``email``."""

    username: str = Field("", max_length=150)
    email: str = Field("", max_length=254)
    role: RoleName = "member"

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        value = value.strip()
        if value:
            validate_email(value)
        return value


class InvitationOut(ModelSchema):
    workspace_id: int
    workspace_name: str = Field(alias="workspace.name")
    invited_by: str | None = Field(None, alias="invited_by.username")
    invitee: str | None = Field(None, alias="invitee.username")

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "created_at", "expires_at"]


class InvitationCreatedOut(InvitationOut):
    accept_url: str | None = None


class TokenIn(InputSchema):
    name: str = Field(min_length=1, max_length=100)
    expires_at: IsoDatetime | None = None

    _strip = field_validator("name")(_not_blank)


class TokenOut(ModelSchema):
    prefix: str = Field(alias="display_prefix")
    username: str = Field(alias="user.username")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "created_at", "last_used_at", "expires_at", "revoked_at"]


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The secret. Shown once, never again: store it now.")


class BalanceOut(Schema):
    workspace_id: int
    balance: Decimal


class LedgerEntryOut(ModelSchema):
    reservation_id: int | None = None
    actor: str | None = Field(None, alias="actor.username")

    class Meta:
        model = LedgerEntry
        fields = ["id", "kind", "amount", "balance_after", "memo", "created_at"]


class LedgerFilter(QuerySchema):
    kind: Literal["grant", "reserve", "settle", "refund"] | None = None
