"""Runs no request waits for: a queued run claimed and resumed by the worker (agents_app/tasks.py), one that
cannot start because its agent is gone, and runs whose process died before they ended."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts_app.models import CreditReservation, ReservationStatus
from accounts_app.services import credits_refund
from agents_app.exceptions import NotFoundError
from agents_app.models import Agent, AgentRun, RunStatus
from agents_app.runs.inputs import conversation_history
from agents_app.runs.lifecycle import ActiveRun
from agents_app.runs.statements import end_statement
from agents_app.runtime import RunContext, load_graph
from config.errors import ApplicationError, ConflictError
from providers_app.models import Provider
from providers_app.selectors import local_provider, provider_for_run

logger = logging.getLogger(__name__)
_RUN_TABLE = AgentRun._meta.db_table


def claim_queued_run(run_id: int) -> AgentRun | None:
    """Move a queued run to running; return it, or None when another worker got it (or it is not queued)."""
    claimed = AgentRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    return AgentRun.objects.get(pk=run_id) if claimed == 1 else None


def resume_queued_run(run: AgentRun) -> ActiveRun:
    """Return the ActiveRun of a claimed run, rebuilt from its row (the agent as it is now, the provider and
    model the run was recorded with). Raises NotFoundError when the agent was deleted meanwhile."""
    agent = (
        Agent.objects.filter(pk=run.agent_id).select_related("provider", "workspace").first() if run.agent_id else None
    )
    if agent is None:
        raise NotFoundError("The agent was deleted before its run could start.")
    default_provider = provider_for_run(workspace=agent.workspace)
    if run.provider_id:
        root_provider = Provider.objects.get(pk=run.provider_id)
    elif run.provider_type == "local":
        root_provider = local_provider(workspace=agent.workspace)
    else:
        root_provider = agent.provider or default_provider
    return ActiveRun(
        run=run,
        graph=load_graph(root=agent),
        context=RunContext(
            workspace_id=run.workspace_id, run_id=run.pk, context=run.context_data, metadata=run.metadata
        ),
        root_provider=root_provider,
        default_provider=default_provider,
        root_model=run.model_name,
        max_turns=agent.max_turns,
        history=conversation_history(run.conversation_id) if run.conversation_id else [],
    )


def fail_unstarted_run(*, run_id: int, error: ApplicationError) -> AgentRun:
    """End a run that could not start (its agent is gone) as failed, with the reason, its credits refunded, by
    the same statement as every run's end. Returns the run as recorded."""
    run = AgentRun.objects.get(pk=run_id)
    sql, params = end_statement(run, result=None, usage={}, cost=Decimal(0), failure=error)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        claimed, _ = cursor.fetchone()
    return run if claimed == 1 else AgentRun.objects.get(pk=run_id)


ABANDONED_MESSAGES = {
    RunStatus.RUNNING: "The run stopped without finishing (its server process ended); its credits were refunded.",
    RunStatus.QUEUED: "No worker started the run in time; its credits were refunded.",
}


def fail_abandoned_runs(*, older_than: timedelta | None = None, now: datetime | None = None) -> int:
    """Fail every run still queued or running CREDITS_RESERVATION_TTL_SECONDS after it was created, and
    refund its reservation. Returns how many runs it failed.

    Every live run ends before then (RUN_TIMEOUT_SECONDS and the Celery time limit are shorter, which the
    settings enforce), so such a run's process died: without this it would stay "running" for ever. A run
    that is swept cannot be ended later (``end_run`` only claims unfinished runs).
    """
    ttl = older_than if older_than is not None else timedelta(seconds=settings.CREDITS_RESERVATION_TTL_SECONDS)
    cutoff = (now or timezone.now()) - ttl
    failed = 0
    for status, message in ABANDONED_MESSAGES.items():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_RUN_TABLE} SET status = %s, error = %s, error_code = %s, finished_at = %s "  # noqa: S608
                "WHERE status = %s AND created_at < %s RETURNING id, reservation_id",
                [RunStatus.FAILED, message, "abandoned", timezone.now(), status, cutoff],
            )
            rows = cursor.fetchall()
        failed += len(rows)
        reservation_ids = [reservation_id for _, reservation_id in rows if reservation_id]
        open_reservations = CreditReservation.objects.filter(pk__in=reservation_ids, status=ReservationStatus.OPEN)
        for reservation in open_reservations.select_related("workspace"):
            try:
                credits_refund(reservation=reservation, reason="Released: the run was abandoned")
            except ConflictError:
                continue  # closed meanwhile
        for run_id, _ in rows:
            logger.warning("Run %s was %s past its time and is now failed (abandoned)", run_id, status)
    return failed
