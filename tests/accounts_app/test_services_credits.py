from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from accounts_app.exceptions import ConflictError, InsufficientCreditsError, InvalidInputError
from accounts_app.models import CreditAccount, CreditReservation, LedgerEntry, LedgerKind, ReservationStatus
from accounts_app.services import (
    credits_grant,
    credits_refund,
    credits_release_stale_reservations,
    credits_reserve,
    credits_settle,
)
from tests.factories import make_user, make_workspace


def balance(workspace) -> Decimal:
    return CreditAccount.objects.get(workspace=workspace).balance


def ledger_sum(workspace) -> Decimal:
    return sum((e.amount for e in LedgerEntry.objects.filter(workspace=workspace)), Decimal(0))


@pytest.mark.django_db
@override_settings(CREDITS_STARTING_GRANT=25)
def test_new_workspace_gets_the_configured_starting_grant():
    actor = make_workspace(owner=make_user())
    assert balance(actor.workspace) == Decimal(25)
    entry = LedgerEntry.objects.get(workspace=actor.workspace)
    assert (entry.kind, entry.amount, entry.balance_after, entry.memo) == ("grant", 25, 25, "Starting grant")


@pytest.mark.django_db
@override_settings(CREDITS_STARTING_GRANT=0)
def test_zero_starting_grant_writes_no_entry():
    actor = make_workspace(owner=make_user())
    assert balance(actor.workspace) == 0
    assert not LedgerEntry.objects.filter(workspace=actor.workspace).exists()


def test_grant_adds_and_records_who(team):
    entry = credits_grant(workspace=team.workspace, amount="12.5", granted_by=team.user, memo="Top-up")
    assert entry.kind == LedgerKind.GRANT
    assert entry.actor == team.user
    assert balance(team.workspace) == Decimal(100) + Decimal("12.5")


@pytest.mark.parametrize("amount", ["0", "-1", "abc", "1e13"])
def test_grant_rejects_bad_amounts(team, amount):
    before = balance(team.workspace)
    with pytest.raises(InvalidInputError):
        credits_grant(workspace=team.workspace, amount=amount, granted_by=None)
    assert balance(team.workspace) == before


def test_reserve_takes_from_balance(team):
    reservation = credits_reserve(workspace=team.workspace, amount=30, purpose="run 1")
    assert reservation.status == ReservationStatus.OPEN
    assert balance(team.workspace) == 70
    entry = LedgerEntry.objects.get(reservation=reservation)
    assert (entry.kind, entry.amount, entry.balance_after) == ("reserve", -30, 70)


def test_reserve_more_than_balance_is_refused_and_changes_nothing(team):
    with pytest.raises(InsufficientCreditsError) as info:
        credits_reserve(workspace=team.workspace, amount=101)
    assert info.value.status_code == 402
    assert "100" in info.value.message
    assert balance(team.workspace) == 100
    assert not CreditReservation.objects.filter(workspace=team.workspace).exists()


def test_settle_returns_unused_credits(team):
    reservation = credits_reserve(workspace=team.workspace, amount=10)
    entry = credits_settle(reservation=reservation, cost="3.25")
    assert entry.amount == Decimal("6.75")
    assert balance(team.workspace) == Decimal("96.75")
    reservation.refresh_from_db()
    assert (reservation.status, reservation.charged) == ("settled", Decimal("3.25"))


def test_settle_above_reservation_takes_the_rest_from_balance(team):
    reservation = credits_reserve(workspace=team.workspace, amount=10)
    credits_settle(reservation=reservation, cost=15)
    assert balance(team.workspace) == 85
    reservation.refresh_from_db()
    assert reservation.charged == 15


def test_settle_never_drives_balance_below_zero(team):
    reservation = credits_reserve(workspace=team.workspace, amount=90)
    entry = credits_settle(reservation=reservation, cost=150)
    assert balance(team.workspace) == 0
    assert "50 not covered" in entry.memo
    reservation.refresh_from_db()
    assert reservation.charged == 100


def test_settle_or_refund_twice_is_a_conflict(team):
    reservation = credits_reserve(workspace=team.workspace, amount=5)
    credits_settle(reservation=reservation, cost=1)
    with pytest.raises(ConflictError):
        credits_settle(reservation=reservation, cost=1)
    with pytest.raises(ConflictError):
        credits_refund(reservation=reservation)
    assert balance(team.workspace) == 99


def test_refund_returns_everything(team):
    reservation = credits_reserve(workspace=team.workspace, amount=40)
    entry = credits_refund(reservation=reservation, reason="provider failed")
    assert (entry.kind, entry.amount, entry.memo) == ("refund", 40, "provider failed")
    assert balance(team.workspace) == 100


def test_the_ledger_alone_rebuilds_the_balance(team):
    r1 = credits_reserve(workspace=team.workspace, amount=10)
    r2 = credits_reserve(workspace=team.workspace, amount=20)
    credits_settle(reservation=r1, cost=4)
    credits_refund(reservation=r2)
    credits_grant(workspace=team.workspace, amount=5, granted_by=None)
    assert ledger_sum(team.workspace) == balance(team.workspace) == 101
    latest = LedgerEntry.objects.filter(workspace=team.workspace).first()
    assert latest.balance_after == 101


def test_ledger_rows_cannot_be_updated_even_with_raw_sql(team):
    entry = LedgerEntry.objects.filter(workspace=team.workspace).first()
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_app_ledgerentry SET amount = 1000 WHERE id = %s", [entry.pk])


def test_the_database_refuses_a_negative_balance(team):
    with pytest.raises(DatabaseError), transaction.atomic():
        CreditAccount.objects.filter(workspace=team.workspace).update(balance=-1)


def test_stale_reservations_are_refunded_and_fresh_ones_kept(team, outsider):
    old = credits_reserve(workspace=team.workspace, amount=10)
    CreditReservation.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    fresh = credits_reserve(workspace=outsider.workspace, amount=10)
    released = credits_release_stale_reservations(older_than=timedelta(hours=1))
    assert released == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == ("refunded", "open")
    assert balance(team.workspace) == 100
    assert balance(outsider.workspace) == 90


@pytest.mark.django_db(transaction=True)
@override_settings(CREDITS_STARTING_GRANT=7)
def test_twenty_concurrent_reservations_never_overdraw():
    """20 threads, each its own database connection, race to reserve 1 credit from a balance of 7."""
    workspace = make_workspace(owner=make_user()).workspace
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def reserve() -> None:
        try:
            barrier.wait()
            credits_reserve(workspace=workspace, amount=1)
            result = "ok"
        except InsufficientCreditsError:
            result = "refused"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=reserve) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(outcomes) == ["ok"] * 7 + ["refused"] * 13
    assert balance(workspace) == 0
    assert CreditReservation.objects.filter(workspace=workspace).count() == 7
    assert ledger_sum(workspace) == 0
    assert min(e.balance_after for e in LedgerEntry.objects.filter(workspace=workspace)) == 0


@pytest.mark.django_db(transaction=True)
@override_settings(CREDITS_STARTING_GRANT=10)
def test_concurrent_settlements_above_reservation_stop_at_zero():
    workspace = make_workspace(owner=make_user()).workspace
    reservations = [credits_reserve(workspace=workspace, amount=1) for _ in range(5)]
    barrier = threading.Barrier(5)

    def settle(reservation) -> None:
        try:
            barrier.wait()
            credits_settle(reservation=reservation, cost=3)
        finally:
            connection.close()

    threads = [threading.Thread(target=settle, args=(r,)) for r in reservations]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # 5 reserved, 5 left; each wants 2 more: the first 2 get 2, the third gets 1, the rest get nothing.
    assert balance(workspace) == 0
    charged = sorted(CreditReservation.objects.filter(workspace=workspace).values_list("charged", flat=True))
    assert charged == [1, 1, 2, 3, 3]
