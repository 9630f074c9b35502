"""Credit movements: grant, reserve, settle, refund. Each locks the workspace's CreditAccount row.

Every movement updates the balance and appends a ledger entry atomically while holding the account row's
lock, so concurrent movements serialise on the row and the balance can never go below zero (a CHECK
constraint backs this up). Reserve, settle and refund are single statements (see below).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

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
from config.db import insert_cte
from config.errors import ApplicationError, RateLimitedError

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

# Reservations and their settlement are on every run's path, and all of a workspace's runs move the
# same balance row. So each movement of that row is one statement, which commits at once: the row lock is
# held for that statement and its commit only, never across a round trip to the application (which, under
# load, waits for its turn at the GIL). The statements are built as CTEs, so that a caller can do its own
# writes in the same statement (a run's start records the run; its end records the outcome).


def credits_take_ctes(
    *,
    workspace: Workspace,
    amount: Decimal | int | str,
    purpose: str = "",
    reserved_by: User | None = None,
) -> tuple[str, dict[str, Any], Decimal]:
    """Return ``(ctes, params, amount)``: the WITH-clause parts that reserve ``amount`` credits.

    ``credit_account`` takes the amount from the balance only if the balance covers it (concurrent
    reservations re-check the condition against the new balance, so it never goes below zero), and
    ``credit_reservation`` (its ``id``) and ``credit_entry`` record the open reservation and its ledger
    entry only then: when the balance is short, the statement changes nothing and ``credit_reservation``
    is empty. The workspace's run limits (``Workspace.run_limits``) hold too: no more open reservations than its
    concurrency limit, and no more opened in this minute than its rate limit; the account row counts both.
    Raises InvalidInputError for a bad amount.
    """
    value = _clean_amount(amount)
    concurrency, rate = workspace.run_limits()
    reservation = CreditReservation(workspace=workspace, amount=value, purpose=purpose[:200], created_by=reserved_by)
    insert, params = insert_cte(
        reservation, name="credit_reservation", source="credit_account", returning="id, created_at"
    )
    ctes = f"""
credit_account AS (
    UPDATE {_ACCOUNT} SET balance = balance - %(credit_amount)s, updated_at = now(),
        open_reservations = open_reservations + 1,
        rate_count = CASE WHEN rate_minute = %(credit_minute)s THEN rate_count + 1 ELSE 1 END,
        rate_minute = %(credit_minute)s
    WHERE workspace_id = %(credit_workspace)s AND balance >= %(credit_amount)s
        AND (%(credit_concurrency)s = 0 OR open_reservations < %(credit_concurrency)s)
        AND (%(credit_rate)s = 0 OR rate_minute <> %(credit_minute)s OR rate_count < %(credit_rate)s)
    RETURNING balance
), {insert}, credit_entry AS (
    INSERT INTO {_LEDGER} (workspace_id, kind, amount, balance_after, reservation_id, memo, actor_id, created_at)
    SELECT %(credit_workspace)s, 'reserve', -%(credit_amount)s, credit_account.balance, credit_reservation.id,
           %(credit_memo)s, %(credit_actor)s, %(credit_now)s
    FROM credit_account, credit_reservation
    RETURNING id
)"""  # noqa: S608 (table names come from model metadata; values are parameters)
    params |= {
        "credit_amount": value,
        "credit_workspace": workspace.pk,
        "credit_memo": purpose[:200],
        "credit_actor": reserved_by.pk if reserved_by else None,
        "credit_now": timezone.now(),
        "credit_minute": int(time.time() // 60),
        "credit_concurrency": concurrency,
        "credit_rate": rate,
    }
    return ctes, params, value


def credits_refused(*, workspace: Workspace, amount: Decimal) -> ApplicationError:
    """Return the error for a reservation ``credits_take_ctes`` refused: 429 (with ``Retry-After``) when the
    workspace has as much work in flight, or has started as much this minute, as its limits allow; else 402
    with the current balance."""
    account = CreditAccount.objects.filter(workspace=workspace).first()
    concurrency, rate = workspace.run_limits()
    if account is not None and concurrency and account.open_reservations >= concurrency:
        return RateLimitedError(
            f"This workspace already has {account.open_reservations} runs in flight, its limit. Try again when "
            "one has ended, or ask an operator to raise the limit.",
            code="run_concurrency_limit",
            extra={"limit": concurrency},
            headers={"Retry-After": "1"},
        )
    minute = int(time.time() // 60)
    if account is not None and rate and account.rate_minute == minute and account.rate_count >= rate:
        return RateLimitedError(
            f"This workspace has started {account.rate_count} runs this minute, its limit. Try again when the "
            "minute ends.",
            code="run_rate_limit",
            extra={"limit": rate},
            headers={"Retry-After": str(max(1, 60 - int(time.time()) % 60))},
        )
    return insufficient_credits(balance=account.balance if account is not None else Decimal(0), required=amount)


def insufficient_credits(*, balance: Decimal, required: Decimal, what: str = "the run") -> InsufficientCreditsError:
    """Return the 402 for a workspace whose ``balance`` cannot cover the ``required`` credits of ``what``."""
    return InsufficientCreditsError(
        f"This workspace has {balance.normalize():f} credits and {what} needs {required.normalize():f}. "
        "Ask an operator for more credits.",
        extra={"balance": str(balance), "required": str(required)},
    )


def credits_reserve(
    *, workspace: Workspace, amount: Decimal | int | str, purpose: str = "", reserved_by: User | None = None
) -> CreditReservation:
    """Set credits aside before a run, in one statement. Returns the open reservation.

    Raises InsufficientCreditsError (402) when the balance cannot cover ``amount``; nothing changes then.
    """
    ctes, params, value = credits_take_ctes(
        workspace=workspace, amount=amount, purpose=purpose, reserved_by=reserved_by
    )
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} SELECT id, created_at FROM credit_reservation", params)  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        raise credits_refused(workspace=workspace, amount=value)
    reservation = CreditReservation(
        id=row[0], workspace=workspace, amount=value, purpose=purpose[:200], created_by=reserved_by, created_at=row[1]
    )
    reservation._state.adding = False
    return reservation


def credits_close_ctes(
    *,
    reservation_id: int,
    status: ReservationStatus,
    cost: Decimal | int | str = 0,
    memo: str = "",
    only_if: str = "",
) -> tuple[str, dict[str, Any]]:
    """Return ``(ctes, params)``: the WITH-clause parts that close an open reservation.

    Settling charges ``cost`` as far as the reservation plus the balance cover it (the balance never goes
    negative; the uncovered rest is written in the memo) and gives the unused rest back; refunding charges
    nothing. ``credit_closed`` (``workspace_id, amount, charged``), ``credit_moved`` and ``credit_entry``
    (the ledger entry) are empty when the reservation is not open, so closing twice changes nothing.
    ``only_if`` names an earlier CTE of the caller's: nothing happens unless it has a row. Raises
    InvalidInputError for a bad cost.
    """
    real_cost = _clean_amount(cost, field="cost", allow_zero=True)
    kind = LedgerKind.SETTLE if status == ReservationStatus.SETTLED else LedgerKind.REFUND
    guard = f" AND EXISTS (SELECT 1 FROM {only_if})" if only_if else ""  # noqa: S608 (a CTE name of ours)
    ctes = f"""
credit_lock AS (
    SELECT balance FROM {_ACCOUNT}
    WHERE workspace_id = (SELECT workspace_id FROM {_RESERVATION} WHERE id = %(credit_reservation)s){guard}
    FOR UPDATE
), credit_closed AS (
    UPDATE {_RESERVATION} AS r
    SET status = %(credit_status)s, closed_at = now(), charged = LEAST(%(credit_cost)s, r.amount + credit_lock.balance)
    FROM credit_lock
    WHERE r.id = %(credit_reservation)s AND r.status = 'open'
    RETURNING r.workspace_id, r.amount, r.charged
), credit_moved AS (
    UPDATE {_ACCOUNT} AS a
    SET balance = credit_lock.balance + credit_closed.amount - credit_closed.charged, updated_at = now(),
        open_reservations = GREATEST(a.open_reservations - 1, 0)
    FROM credit_lock, credit_closed
    WHERE a.workspace_id = credit_closed.workspace_id
    RETURNING a.workspace_id, a.balance, credit_closed.amount AS reserved, credit_closed.charged
), credit_entry AS (
    INSERT INTO {_LEDGER} (workspace_id, kind, amount, balance_after, reservation_id, memo, actor_id, created_at)
    SELECT workspace_id, %(credit_kind)s, reserved - charged, balance, %(credit_reservation)s,
           left(CASE WHEN %(credit_kind)s = 'settle'
                THEN 'Settled ' || trim_scale(%(credit_cost)s::numeric) || ' of ' || trim_scale(reserved)
                     || ' reserved' || CASE WHEN %(credit_cost)s > charged
                     THEN '; ' || trim_scale(%(credit_cost)s - charged) || ' not covered by the balance' ELSE '' END
                ELSE %(credit_memo)s END, 200),
           NULL, %(credit_now)s
    FROM credit_moved
    RETURNING id, workspace_id, kind, amount, balance_after, memo, created_at
)"""  # noqa: S608 (table names come from model metadata; values are parameters)
    params: dict[str, Any] = {
        "credit_reservation": reservation_id,
        "credit_status": status.value,
        "credit_cost": real_cost,
        "credit_kind": kind.value,
        "credit_memo": memo[:200],
        "credit_now": timezone.now(),
    }
    return ctes, params


def _close(
    reservation: CreditReservation, *, status: ReservationStatus, cost: Decimal | int | str, memo: str = ""
) -> LedgerEntry:
    """Close an open reservation in one statement; return the ledger entry it wrote.

    Raises ConflictError when it is not open (settled or refunded already), so closing twice is harmless.
    """
    ctes, params = credits_close_ctes(reservation_id=reservation.pk, status=status, cost=cost, memo=memo)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH {ctes} SELECT credit_entry.*, credit_moved.charged FROM credit_entry, credit_moved",  # noqa: S608
            params,
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
    """Close a reservation with the run's real cost, in one statement. Returns the settle entry.

    Unused credits go back to the balance. A cost above the reservation takes the difference from
    the balance only as far as it reaches zero; the uncovered rest is written in the entry's memo,
    because the balance never goes negative. Raises ConflictError if the reservation is closed.
    """
    return _close(reservation, status=ReservationStatus.SETTLED, cost=cost)


def credits_refund(*, reservation: CreditReservation, reason: str = "") -> LedgerEntry:
    """Return a reservation's credits in full (the run failed). Raises ConflictError if it is closed."""
    return _close(reservation, status=ReservationStatus.REFUNDED, cost=0, memo=reason or "Refund")


def credits_release_stale_reservations(*, older_than: timedelta | None = None, now: datetime | None = None) -> int:
    """Refund every reservation still open after CREDITS_RESERVATION_TTL_SECONDS (its run died).

    Returns how many were refunded. Each refund is its own transaction, so one failure does not hold
    back the others; a reservation closed meanwhile by its run is skipped.
    """
    ttl = older_than if older_than is not None else timedelta(seconds=settings.CREDITS_RESERVATION_TTL_SECONDS)
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
