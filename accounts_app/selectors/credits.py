"""Credit balance and ledger reads for the actor's workspace."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet

from accounts_app.actor import Actor
from accounts_app.models import CreditAccount, LedgerEntry


def credit_balance_get(*, actor: Actor) -> Decimal:
    """Return the workspace's current balance (zero if it never had an account)."""
    balance = CreditAccount.objects.filter(workspace=actor.workspace).values_list("balance", flat=True).first()
    return balance if balance is not None else Decimal("0")


def ledger_list(*, actor: Actor, kind: str | None = None) -> QuerySet[LedgerEntry]:
    """Return the workspace's ledger, newest first, optionally of one kind."""
    entries = LedgerEntry.objects.filter(workspace=actor.workspace).select_related("actor")
    if kind:
        entries = entries.filter(kind=kind)
    return entries.order_by("-created_at", "-id")
