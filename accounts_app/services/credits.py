"""Credit movements: grant, reserve, settle, refund. Each locks the workspace's CreditAccount row.

Every movement happens in one transaction that takes ``SELECT ... FOR UPDATE`` on the account row,
checks, updates the balance and appends a ledger entry, so concurrent reservations serialise on the
row and the balance can never go below zero (a CHECK constraint backs this up).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
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


_ACCOUNT = CreditAccount._meta.db_table
_RESERVATION = CreditReservation._meta.db_table


def _add_to_balance(workspace_id: int, amount: Decimal) -> Decimal:
    """Add ``amount`` (>= 0) to the balance in one statement; return the new balance."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_ACCOUNT} SET balance = balance + %s, updated_at = now() WHERE workspace_id = %s "  # noqa: S608
            "RETURNING balance",
            [amount, workspace_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise ConflictError("This workspace has no credit account.", code="no_credit_account")
    return Decimal(row[0])


def _ledger(
    *,
    workspace_id: int,
    kind: LedgerKind,
    amount: Decimal,
    balance_after: Decimal,
    reservation_id: int | None,
    memo: str,
    actor: User | None = None,
) -> LedgerEntry:
    entry = LedgerEntry(
        workspace_id=workspace_id,
        kind=kind,
        amount=amount,
        balance_after=balance_after,
        reservation_id=reservation_id,
        memo=memo[:200],
        actor=actor,
    )
    entry.save()
    return entry


@transaction.atomic
def credits_reserve(
    *, workspace: Workspace, amount: Decimal | int | str, purpose: str = "", reserved_by: User | None = None
) -> CreditReservation:
    """Set credits aside before a run. Returns the open reservation.

    One conditional UPDATE takes the credits only if the balance covers them; it holds the row lock
    until commit, and concurrent reservations re-check the condition against the new balance, so the
    balance never goes below zero. Raises InsufficientCreditsError (402) when it cannot cover ``amount``;
    nothing changes then.
    """
    value = _clean_amount(amount)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_ACCOUNT} SET balance = balance - %s, updated_at = now() "  # noqa: S608
            "WHERE workspace_id = %s AND balance >= %s RETURNING balance",
            [value, workspace.pk, value],
        )
        row = cursor.fetchone()
    if row is None:
        balance = CreditAccount.objects.filter(workspace=workspace).values_list("balance", flat=True).first()
        balance = balance if balance is not None else Decimal(0)
        raise InsufficientCreditsError(
            f"This workspace has {balance.normalize():f} credits and the run needs {value.normalize():f}. "
            "Ask an operator for more credits.",
            extra={"balance": str(balance), "required": str(value)},
        )
    reservation = CreditReservation(workspace=workspace, amount=value, purpose=purpose[:200], created_by=reserved_by)
    reservation.save()
    _ledger(
        workspace_id=workspace.pk,
        kind=LedgerKind.RESERVE,
        amount=-value,
        balance_after=Decimal(row[0]),
        reservation_id=reservation.pk,
        memo=purpose,
        actor=reserved_by,
    )
    return reservation


def _close_reservation(
    reservation_id: int, status: ReservationStatus, charged: Decimal | None = None
) -> tuple[int, Decimal]:
    """Mark an open reservation closed in one statement; return (workspace id, amount reserved).

    Raises ConflictError when it is not open (settled or refunded already), so closing twice is harmless.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_RESERVATION} SET status = %s, charged = %s, closed_at = now() "  # noqa: S608
            "WHERE id = %s AND status = 'open' RETURNING workspace_id, amount",
            [status.value, charged, reservation_id],
        )
        row = cursor.fetchone()
    if row is None:
        current = CreditReservation.objects.filter(pk=reservation_id).values_list("status", flat=True).first()
        raise ConflictError(f"This reservation is already {current or 'gone'}.", code="reservation_closed")
    return int(row[0]), Decimal(row[1])


@transaction.atomic
def credits_settle(*, reservation: CreditReservation, cost: Decimal | int | str) -> LedgerEntry:
    """Close a reservation with the run's real cost. Returns the settle entry.

    Unused credits go back to the balance. A cost above the reservation takes the difference from
    the balance only as far as it reaches zero; the uncovered rest is written in the entry's memo,
    because the balance never goes negative. Raises ConflictError if the reservation is closed.
    """
    real_cost = _clean_amount(cost, field="cost", allow_zero=True)
    # Most runs cost less than they reserved: then the charge is known now and set in the same statement.
    workspace_id, reserved = _close_reservation(reservation.pk, ReservationStatus.SETTLED, charged=real_cost)
    memo = f"Settled {real_cost.normalize():f} of {reserved.normalize():f} reserved"
    difference = reserved - real_cost
    if difference >= 0:
        balance = _add_to_balance(workspace_id, difference)
        charged = real_cost
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH old AS (SELECT balance FROM {_ACCOUNT} WHERE workspace_id = %s FOR UPDATE) "  # noqa: S608
                f"UPDATE {_ACCOUNT} AS a SET balance = old.balance - LEAST(%s, old.balance), updated_at = now() "
                "FROM old WHERE a.workspace_id = %s RETURNING a.balance, old.balance",
                [workspace_id, -difference, workspace_id],
            )
            new_balance, old_balance = cursor.fetchone()
        balance = Decimal(new_balance)
        taken = Decimal(old_balance) - balance
        charged = reserved + taken
        uncovered = -difference - taken
        difference = -taken
        if uncovered > 0:
            memo += f"; {uncovered.normalize():f} not covered by the balance"
    if charged != real_cost:
        CreditReservation.objects.filter(pk=reservation.pk).update(charged=charged)
    reservation.status, reservation.charged = ReservationStatus.SETTLED, charged
    return _ledger(
        workspace_id=workspace_id,
        kind=LedgerKind.SETTLE,
        amount=difference,
        balance_after=balance,
        reservation_id=reservation.pk,
        memo=memo,
    )


@transaction.atomic
def credits_refund(*, reservation: CreditReservation, reason: str = "") -> LedgerEntry:
    """Return a reservation's credits in full (the run failed). Raises ConflictError if it is closed."""
    workspace_id, reserved = _close_reservation(reservation.pk, ReservationStatus.REFUNDED, charged=Decimal(0))
    reservation.status, reservation.charged = ReservationStatus.REFUNDED, Decimal(0)
    balance = _add_to_balance(workspace_id, reserved)
    return _ledger(
        workspace_id=workspace_id,
        kind=LedgerKind.REFUND,
        amount=reserved,
        balance_after=balance,
        reservation_id=reservation.pk,
        memo=reason or "Refund",
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
