"""A run's start cancelled while its statement runs (the client went away at that moment): the statement may commit
all the same, and then the run must be ended as cancelled and refunded at once, not left open until the sweep."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from django.db import connection

from accounts_app.models import CreditAccount, CreditReservation
from agents_app.models import AgentRun
from agents_app.runs.lifecycle import start_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_start_cancelled_while_its_statement_runs_leaves_no_run_open(team, helper):
    before = CreditAccount.objects.get(workspace=team.workspace).balance
    # Another transaction holds the workspace's credit account: the start's statement waits for it.
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("pool", "cursor_factory")}
    holder = psycopg.connect(**params, autocommit=False)
    holder.execute(
        f"SELECT 1 FROM {CreditAccount._meta.db_table} WHERE workspace_id = %s FOR UPDATE",  # noqa: S608
        [team.workspace.pk],
    )

    def waiting() -> bool:
        found = holder.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()
        return found is not None and found[0] > 0

    async def go() -> None:
        task = asyncio.ensure_future(start_run(actor=team, agent_id=helper.pk, message="Hi"))
        deadline = time.monotonic() + 10
        while not waiting():
            assert time.monotonic() < deadline, "the start never reached its statement"
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.1)
        holder.rollback()  # the statement goes on and commits: the run was recorded after all
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(go())
    finally:
        holder.close()
    run = AgentRun.objects.get()
    assert (run.status, run.error_code) == ("cancelled", "cancelled")
    assert run.reservation_id is not None
    assert CreditReservation.objects.get(pk=run.reservation_id).status == "refunded"
    assert CreditAccount.objects.get(workspace=team.workspace).balance == before
