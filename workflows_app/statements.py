"""The statements that record a workflow run, built without I/O: its start (only when the workspace's credits cover
every step once), a step's row opened, a finished step recorded with the run's progress, and the run's end.

Each is one round trip that commits on its own (config/adb.py runs them on the server's event loop, or through
Django's connection elsewhere), so a workflow run holds no connection, and no lock, while its steps work.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts_app.models import CreditAccount
from config.db import insert_cte, update_set
from workflows_app.models import StepRun, WorkflowRun, WorkflowRunStatus

_RUN_TABLE = WorkflowRun._meta.db_table
_STEP_TABLE = StepRun._meta.db_table
# Only when the balance covers what every step reserves once (no account: a balance of 0).
_COVERED = (
    f"(SELECT 1) AS covered WHERE COALESCE((SELECT balance FROM {CreditAccount._meta.db_table} "  # noqa: S608
    "WHERE workspace_id = %(cover_workspace)s), 0) >= %(cover_needed)s"
)
# What a finished step writes on its row, and what the run's row records after each step.
STEP_CLOSE_FIELDS = (
    "status",
    "agent_run_id",
    "output",
    "last_agent_name",
    "guardrail_tripped",
    "usage",
    "cost",
    "error",
    "error_code",
    "finished_at",
    "duration_ms",
)
RUN_PROGRESS_FIELDS = ("claimed_at", "results", "path", "jumps", "next_step_id", "usage", "cost", "final_output")
RUN_END_FIELDS = ("status", "error", "error_code", "finished_at", "duration_ms", "next_step_id")


def start_statement(run: WorkflowRun, needed: Decimal) -> tuple[str, dict[str, Any]]:
    """Return the statement that inserts ``run`` if the workspace's balance covers ``needed``: it returns the run's
    id, or no row (nothing written)."""
    sql, params = insert_cte(run, name="wf_run", source=_COVERED)
    params |= {"cover_workspace": run.workspace_id, "cover_needed": needed}
    return f"WITH {sql} SELECT id FROM wf_run", params  # noqa: S608 (names from model metadata)


def open_step_statement(row: StepRun) -> tuple[str, dict[str, Any]]:
    """Return the statement that inserts a step's row (returning its id)."""
    sql, params = insert_cte(row, name="step_row")
    return f"WITH {sql} SELECT id FROM step_row", params  # noqa: S608


def close_step(row: StepRun) -> tuple[str, dict[str, Any]]:
    """Return a CTE ``step_closed`` writing what ``row`` (its fields set) records of its finished step."""
    assignments, params = update_set(row, STEP_CLOSE_FIELDS, name="step")
    params["step_pk"] = row.pk
    return f"step_closed AS (UPDATE {_STEP_TABLE} SET {assignments} WHERE id = %(step_pk)s RETURNING id)", params  # noqa: S608


def close_step_statement(row: StepRun) -> tuple[str, dict[str, Any]]:
    """Return the statement that closes a parallel branch's row (``close_step``)."""
    sql, params = close_step(row)
    return f"WITH {sql} SELECT count(*) FROM step_closed", params  # noqa: S608


def progress_statement(run: WorkflowRun, *, token: int, row: StepRun | None) -> tuple[str, dict[str, Any]]:
    """Return the statement that records a finished step: its row closed (``row``, if one was opened) and the run's
    progress (``run``'s fields set), the latter only while the run is running under claim ``token``. One
    statement: the step's row and the run's record commit together."""
    run.claimed_at = timezone.now()
    assignments, params = update_set(run, RUN_PROGRESS_FIELDS, name="wf")
    params |= {"wf_pk": run.pk, "wf_token": token}
    update = (
        f"UPDATE {_RUN_TABLE} SET {assignments} "  # noqa: S608 (names from model metadata)
        "WHERE id = %(wf_pk)s AND attempts = %(wf_token)s AND status = 'running'"
    )
    if row is None:
        return update, params
    step_sql, step_params = close_step(row)
    return f"WITH {step_sql} {update}", params | step_params


def end_statement(
    run: WorkflowRun,
    *,
    token: int | None,
    status: str,
    error: str,
    code: str,
    usage: dict[str, int] | None = None,
    cost: Decimal | None = None,
) -> tuple[str, dict[str, Any]]:
    """Set ``run``'s end on it and return the statement that records it if the run is still queued or running
    (under claim ``token`` unless None), with ``usage`` and ``cost`` when given; the run's step rows still
    running are marked cancelled either way. The statement returns how many runs it ended (1 or 0)."""
    now = timezone.now()
    run.status, run.error, run.error_code = status, error, code[:50]
    run.finished_at = now
    run.duration_ms = max(0, int((now - (run.started_at or now)).total_seconds() * 1000))
    run.next_step_id = ""
    fields: tuple[str, ...] = RUN_END_FIELDS
    if usage is not None and cost is not None:
        run.usage, run.cost = usage, cost
        fields += ("usage", "cost")
    assignments, params = update_set(run, fields, name="wf")
    params |= {"wf_pk": run.pk, "wf_now": now}
    fence = ""
    if token is not None:
        fence, params["wf_token"] = " AND attempts = %(wf_token)s", token
    return (
        f"WITH wf_ended AS (UPDATE {_RUN_TABLE} SET {assignments} "  # noqa: S608 (names from model metadata)
        f"WHERE id = %(wf_pk)s AND status IN ('queued', 'running'){fence} RETURNING id), "
        f"wf_steps AS (UPDATE {_STEP_TABLE} SET status = '{WorkflowRunStatus.CANCELLED}', finished_at = %(wf_now)s "
        f"WHERE workflow_run_id = %(wf_pk)s AND status = '{WorkflowRunStatus.RUNNING}') "
        "SELECT count(*) FROM wf_ended",
        params,
    )
