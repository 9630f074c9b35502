"""Writes for accounts, workspaces, tokens and credits. Every interface calls these; none writes the ORM itself."""

from accounts_app.services.authentication import api_token_authenticate, api_token_authenticate_async
from accounts_app.services.credits import (
    credits_account_open,
    credits_grant,
    credits_refund,
    credits_release_stale_reservations,
    credits_reserve,
    credits_settle,
)
from accounts_app.services.tokens import IssuedToken, api_token_create, api_token_revoke, operator_token_issue
from accounts_app.services.workspaces import (
    invitation_accept,
    invitation_cancel,
    invitation_create,
    invitation_decline,
    membership_remove,
    membership_role_change,
    milestone_reach,
    signup_check,
    user_signup,
    workspace_create,
    workspace_delete,
    workspace_ensure_personal,
    workspace_rename,
)

__all__ = [
    "IssuedToken",
    "api_token_authenticate",
    "api_token_authenticate_async",
    "api_token_create",
    "api_token_revoke",
    "credits_account_open",
    "credits_grant",
    "credits_refund",
    "credits_release_stale_reservations",
    "credits_reserve",
    "credits_settle",
    "invitation_accept",
    "invitation_cancel",
    "invitation_create",
    "invitation_decline",
    "membership_remove",
    "membership_role_change",
    "milestone_reach",
    "operator_token_issue",
    "signup_check",
    "user_signup",
    "workspace_create",
    "workspace_delete",
    "workspace_ensure_personal",
    "workspace_rename",
]
