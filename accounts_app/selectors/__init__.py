"""Reads for accounts, workspaces, tokens and credits. Each takes the acting user or actor and scopes by it."""

from accounts_app.selectors.credits import credit_balance_get, ledger_list
from accounts_app.selectors.onboarding import TRACE_OPENED, Step, getting_started
from accounts_app.selectors.tokens import api_token_list
from accounts_app.selectors.usage import PERIODS, Usage, usage_get
from accounts_app.selectors.workspaces import (
    actor_for_user,
    invitation_get_by_token,
    invitation_list_for_user,
    invitation_list_for_workspace,
    membership_get,
    membership_list,
    workspace_get_for_user,
    workspace_list_for_user,
)

__all__ = [
    "PERIODS",
    "TRACE_OPENED",
    "Step",
    "Usage",
    "actor_for_user",
    "api_token_list",
    "credit_balance_get",
    "getting_started",
    "invitation_get_by_token",
    "invitation_list_for_user",
    "invitation_list_for_workspace",
    "ledger_list",
    "membership_get",
    "membership_list",
    "usage_get",
    "workspace_get_for_user",
    "workspace_list_for_user",
]
