"""Credit movements: grant, reserve, settle, refund. Each locks the workspace's CreditAccount row.

Every movement happens in one transaction that takes ``SELECT ... FOR UPDATE`` on the account row,
checks, updates the balance and appends a ledger entry, so concurrent reservations serialise on the
row and the balance can never go below zero (a CHECK constraint backs this up).
"""

from __future__ import annotations

from collections.abc import Callable
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
_LEDGER = LedgerEntry._meta.db_table

# Reservations and their settlement are the hot path of every run, and all of a workspace's runs move
# the same balance row. Each movement of that row is therefore one statement, the last one of its
# transaction: the row lock is held for that statement and the commit only, never across a round trip
# to the application (which, under load, waits for its turn at the GIL). Measured in bench/run_overhead.py.

_TAKE_SQL = f"""
WITH account AS (
    UPDATE {_ACCOUNT} SET balance = balance - %(amount)s, updated_at = now()
    WHERE workspace_id = %(workspace)s AND balance >= %(amount)s
    RETURNING balance
), entry AS (
    INSERT INTO {_LEDGER} (workspace_id, kind, amount, balance_after, reservation_id, memo, actor_id, created_at)
    SELECT %(workspace)s, 'reserve', -%(amount)s, account.balance, %(reservation)s, %(memo)s, %(actor)s, %(now)s
    FROM account
    RETURNING id
)
SELECT account.balance FROM account
"""  # noqa: S608 (table names come from model metadata; values are parameters)

# Closes an open reservation, charging ``cost`` (0 for a refund) as far as the reservation plus the
# balance cover it, gives the rest back to the balance and writes the ledger entry, in one statement.
_CLOSE_SQL = f"""
WITH account AS (
    SELECT balance FROM {_ACCOUNT}
    WHERE workspace_id = (SELECT workspace_id FROM {_RESERVATION} WHERE id = %(reservation)s)
    FOR UPDATE
), closed AS (
    UPDATE {_RESERVATION} AS r
    SET status = %(status)s, closed_at = now(), charged = LEAST(%(cost)s, r.amount + account.balance)
    FROM account
    WHERE r.id = %(reservation)s AND r.status = 'open'
    RETURNING r.workspace_id, r.amount, r.charged
), moved AS (
    UPDATE {_ACCOUNT} AS a
    SET balance = account.balance + closed.amount - closed.charged, updated_at = now()
    FROM account, closed
    WHERE a.workspace_id = closed.workspace_id
    RETURNING a.workspace_id, a.balance, closed.amount AS reserved, closed.charged
), entry AS (
    INSERT INTO {_LEDGER} (workspace_id, kind, amount, balance_after, reservation_id, memo, actor_id, created_at)
    SELECT workspace_id, %(kind)s, reserved - charged, balance, %(reservation)s,
           left(CASE WHEN %(kind)s = 'settle'
                THEN 'Settled ' || trim_scale(%(cost)s::numeric) || ' of ' || trim_scale(reserved) || ' reserved'
                     || CASE WHEN %(cost)s > charged
                        THEN '; ' || trim_scale(%(cost)s - charged) || ' not covered by the balance' ELSE '' END
                ELSE %(memo)s END, 200),
           NULL, %(now)s
    FROM moved
    RETURNING id, workspace_id, kind, amount, balance_after, memo, created_at
)
SELECT entry.id, entry.workspace_id, entry.kind, entry.amount, entry.balance_after, entry.memo, entry.created_at,
       moved.charged
FROM entry, moved
"""  # noqa: S608 (table names come from model metadata; values are parameters)


# No savepoint when nested in the caller's transaction (a run's preparation): a refusal propagates and
# rolls the caller back as well, and a savepoint would cost two more round trips on every run.
@transaction.atomic(savepoint=False)
def credits_reserve(
    *,
    workspace: Workspace,
    amount: Decimal | int | str,
    purpose: str = "",
    reserved_by: User | None = None,
    attach: Callable[[CreditReservation], None] | None = None,
) -> CreditReservation:
    """Set credits aside before a run. Returns the open reservation.

    ``attach``, if given, is called with the saved reservation before any credit moves, in the same
    transaction: the place to record what the reservation is for (the run) without holding the balance's
    lock meanwhile. Then one conditional UPDATE takes the credits only if the balance covers them and
    writes the ledger entry; concurrent reservations re-check the condition against the new balance, so
    the balance never goes below zero. Raises InsufficientCreditsError (402) when it cannot cover
    ``amount``; nothing changes then: the reservation and whatever ``attach`` wrote are rolled back, with
    the caller's transaction when there is one (it has no savepoint of its own: let the error propagate).
    """
    value = _clean_amount(amount)
    reservation = CreditReservation(workspace=workspace, amount=value, purpose=purpose[:200], created_by=reserved_by)
    reservation.save()
    if attach is not None:
        attach(reservation)
    with connection.cursor() as cursor:
        cursor.execute(
            _TAKE_SQL,
            {
                "amount": value,
                "workspace": workspace.pk,
                "reservation": reservation.pk,
                "memo": purpose[:200],
                "actor": reserved_by.pk if reserved_by else None,
                "now": timezone.now(),
            },
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
    return reservation


def _close(reservation: CreditReservation, *, status: ReservationStatus, cost: Decimal, memo: str = "") -> LedgerEntry:
    """Close an open reservation in one statement (atomic on its own: no transaction needed); return the
    ledger entry it wrote.

    Raises ConflictError when it is not open (settled or refunded already), so closing twice is harmless.
    """
    kind = LedgerKind.SETTLE if status == ReservationStatus.SETTLED else LedgerKind.REFUND
    with connection.cursor() as cursor:
        cursor.execute(
            _CLOSE_SQL,
            {
                "reservation": reservation.pk,
                "status": status.value,
                "cost": cost,
                "kind": kind.value,
                "memo": memo,
                "now": timezone.now(),
            },
        )
        row = cursor.fetchone()
    if row is None:
        current = CreditReservation.objects.filter(pk=reservation.pk).values_list("status", flat=True).first()
        raise ConflictError(f"This reservation is already {current or 'gone'}.", code="reservation_closed")
    entry_id, workspace_id, kind_value, amount, balance_after, entry_memo, created_at, charged = row
    reservation.status, reservation.charged = status, Decimal(charged)
    entry = LedgerEntry(
        id=entry_id,
        workspace_id=workspace_id,
        kind=kind_value,
        amount=Decimal(amount),
        balance_after=Decimal(balance_after),
        reservation_id=reservation.pk,
        memo=entry_memo,
        created_at=created_at,
    )
    entry._state.adding = False
    return entry


def credits_settle(*, reservation: CreditReservation, cost: Decimal | int | str) -> LedgerEntry:
    """Close a reservation with the run's real cost. Returns the settle entry.

    Unused credits go back to the balance. A cost above the reservation takes the difference from
    the balance only as far as it reaches zero; the uncovered rest is written in the entry's memo,
    because the balance never goes negative. Raises ConflictError if the reservation is closed.
    """
    real_cost = _clean_amount(cost, field="cost", allow_zero=True)
    return _close(reservation, status=ReservationStatus.SETTLED, cost=real_cost)


def credits_refund(*, reservation: CreditReservation, reason: str = "") -> LedgerEntry:
    """Return a reservation's credits in full (the run failed). Raises ConflictError if it is closed."""
    return _close(reservation, status=ReservationStatus.REFUNDED, cost=Decimal(0), memo=(reason or "Refund")[:200])


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
