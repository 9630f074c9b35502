from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts_app.models import CreditAccount, CreditReservation
from accounts_app.services import credits_reserve
from accounts_app.tasks import credits_release_stale_reservations as release_task
from tests.factories import make_user, make_workspace


def test_task_calls_the_service(team, monkeypatch):
    calls: list[int] = []

    def fake_release() -> int:
        calls.append(1)
        return 3

    monkeypatch.setattr("accounts_app.services.credits_release_stale_reservations", fake_release)
    assert release_task.run() == 3
    assert calls == [1]


@pytest.mark.slow
def test_a_real_worker_releases_stale_reservations(celery_worker):
    workspace = make_workspace(owner=make_user()).workspace
    reservation = credits_reserve(workspace=workspace, amount=40, purpose="a run whose worker died")
    CreditReservation.objects.filter(pk=reservation.pk).update(created_at=timezone.now() - timedelta(days=1))

    release_task.delay()

    deadline = time.monotonic() + 30
    while CreditReservation.objects.get(pk=reservation.pk).status == "open":
        assert time.monotonic() < deadline, "the worker did not process the task"
        time.sleep(0.1)
    assert CreditReservation.objects.get(pk=reservation.pk).status == "refunded"
    assert CreditAccount.objects.get(workspace=workspace).balance == 100
