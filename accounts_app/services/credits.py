"""Credit movements: grant, reserve, settle, refund. Each locks the workspace's CreditAccount row.

Every movement happens in one transaction that takes ``SELECT ... FOR UPDATE`` on the account row,
checks, updates the balance and appends a ledger entry, so concurrent reservations serialise on the
row and the balance can never go below zero (a CHECK constraint backs this up).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.exceptions import ConflictError, InsufficientCreditsError, InvalidInputError
from accounts_app.models import (
    CreditAccount,
    CreditReservation,
    LedgerEntry,
    LedgerKind,
    ReservationStatus,
    User,
    Workspace,
)

_MAX_AMOUNT = Decimal("1e12")
_QUANTUM = Decimal("0.000001")


def _clean_amount(amount: Decimal | int | str, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    try:
        value = Decimal(str(amount)).quantize(_QUANTUM)
    except ArithmeticError:
        raise InvalidInputError("The amount is not a number.", fields={field: "Enter a number."}) from None
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidInputError("The amount must be positive.", fields={field: "Must be greater than zero."})
    if value >= _MAX_AMOUNT:
        raise InvalidInputError("The amount is too large.", fields={field: "Must be below 1,000,000,000,000."})
    return value


def _locked_account(workspace: Workspace) -> CreditAccount:
    account, _ = CreditAccount.objects.get_or_create(workspace=workspace)
    return CreditAccount.objects.select_for_update().get(pk=account.pk)


def _append(
    *,
    account: CreditAccount,
    kind: LedgerKind,
    amount: Decimal,
    reservation: CreditReservation | None = None,
    memo: str = "",
    actor: User | None = None,
) -> LedgerEntry:
    account.balance += amount
    account.save(update_fields=["balance", "updated_at"])
    entry = LedgerEntry(
        workspace_id=account.workspace_id,
        kind=kind,
        amount=amount,
        balance_after=account.balance,
        reservation=reservation,
        memo=memo[:200],
        actor=actor,
    )
    entry.save()
    return entry


@transaction.atomic
def credits_account_open(*, workspace: Workspace, starting_grant: Decimal | None = None) -> CreditAccount:
    """Create the workspace's account and give it the configured starting grant (CREDITS_STARTING_GRANT).

    Returns the account. Idempotent: an existing account is returned untouched.
    """
    account, created = CreditAccount.objects.get_or_create(workspace=workspace)
    grant = Decimal(settings.CREDITS_STARTING_GRANT) if starting_grant is None else starting_grant
    if created and grant > 0:
        account = CreditAccount.objects.select_for_update().get(pk=account.pk)
        _append(account=account, kind=LedgerKind.GRANT, amount=_clean_amount(grant), memo="Starting grant")
    return account


@transaction.atomic
def credits_grant(
    *, workspace: Workspace, amount: Decimal | int | str, granted_by: User | None, memo: str = ""
) -> LedgerEntry:
    """Add credits to the workspace. Returns the ledger entry; raises InvalidInputError for a bad amount."""
    value = _clean_amount(amount)
    account = _locked_account(workspace)
    return _append(account=account, kind=LedgerKind.GRANT, amount=value, memo=memo or "Grant", actor=granted_by)


@transaction.atomic
def credits_reserve(
    *, workspace: Workspace, amount: Decimal | int | str, purpose: str = "", reserved_by: User | None = None
) -> CreditReservation:
    """Set credits aside before a run. Returns the open reservation.

    Raises InsufficientCreditsError (402) when the balance cannot cover ``amount``; nothing changes then.
    """
    value = _clean_amount(amount)
    account = _locked_account(workspace)
    if account.balance < value:
        raise InsufficientCreditsError(
            f"This workspace has {account.balance.normalize():f} credits and the run needs {value.normalize():f}. "
            "Ask an operator for more credits.",
            extra={"balance": str(account.balance), "required": str(value)},
        )
    reservation = CreditReservation(workspace=workspace, amount=value, purpose=purpose[:200], created_by=reserved_by)
    reservation.full_clean()
    reservation.save()
    _append(
        account=account,
        kind=LedgerKind.RESERVE,
        amount=-value,
        reservation=reservation,
        memo=purpose,
        actor=reserved_by,
    )
    return reservation


def _locked_open_reservation(reservation_id: int) -> CreditReservation:
    reservation = CreditReservation.objects.select_for_update().get(pk=reservation_id)
    if reservation.status != ReservationStatus.OPEN:
        raise ConflictError(f"This reservation is already {reservation.status}.", code="reservation_closed")
    return reservation


@transaction.atomic
def credits_settle(*, reservation: CreditReservation, cost: Decimal | int | str) -> LedgerEntry:
    """Close a reservation with the run's real cost. Returns the settle entry.

    Unused credits go back to the balance. A cost above the reservation takes the difference from
    the balance only as far as it reaches zero; the uncovered rest is written in the entry's memo,
    because the balance never goes negative. Raises ConflictError if the reservation is closed.
    """
    real_cost = _clean_amount(cost, field="cost", allow_zero=True)
    account = _locked_account(reservation.workspace)
    locked = _locked_open_reservation(reservation.pk)
    difference = locked.amount - real_cost
    memo = f"Settled {real_cost.normalize():f} of {locked.amount.normalize():f} reserved"
    if difference < 0:
        extra = min(-difference, account.balance)
        uncovered = -difference - extra
        charged = locked.amount + extra
        difference = -extra
        if uncovered > 0:
            memo += f"; {uncovered.normalize():f} not covered by the balance"
    else:
        charged = real_cost
    locked.status = ReservationStatus.SETTLED
    locked.charged = charged
    locked.closed_at = timezone.now()
    locked.save(update_fields=["status", "charged", "closed_at"])
    reservation.status, reservation.charged, reservation.closed_at = locked.status, locked.charged, locked.closed_at
    return _append(account=account, kind=LedgerKind.SETTLE, amount=difference, reservation=locked, memo=memo)


@transaction.atomic
def credits_refund(*, reservation: CreditReservation, reason: str = "") -> LedgerEntry:
    """Return a reservation's credits in full (the run failed). Raises ConflictError if it is closed."""
    account = _locked_account(reservation.workspace)
    locked = _locked_open_reservation(reservation.pk)
    locked.status = ReservationStatus.REFUNDED
    locked.charged = Decimal("0")
    locked.closed_at = timezone.now()
    locked.save(update_fields=["status", "charged", "closed_at"])
    reservation.status, reservation.charged, reservation.closed_at = locked.status, locked.charged, locked.closed_at
    return _append(
        account=account, kind=LedgerKind.REFUND, amount=locked.amount, reservation=locked, memo=reason or "Refund"
    )


def credits_release_stale_reservations(*, older_than: timedelta | None = None, now: datetime | None = None) -> int:
    """Refund every reservation still open after CREDITS_RESERVATION_TTL_SECONDS (its run died).

    Returns how many were refunded. Each refund is its own transaction, so one failure does not hold
    back the others; a reservation closed meanwhile by its run is skipped.
    """
    ttl = older_than or timedelta(seconds=settings.CREDITS_RESERVATION_TTL_SECONDS)
    cutoff = (now or timezone.now()) - ttl
    stale = CreditReservation.objects.filter(status=ReservationStatus.OPEN, created_at__lt=cutoff).select_related(
        "workspace"
    )
    released = 0
    for reservation in stale.iterator():
        try:
            credits_refund(reservation=reservation, reason="Released: the run did not finish in time")
        except ConflictError:
            continue
        released += 1
    return released
