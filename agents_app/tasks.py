"""Celery adapters for agent runs."""

from __future__ import annotations

import asyncio
import logging

from celery import shared_task

from agents_app.events import RunEventPublisher, publish_final, stream_key
from agents_app.models import AgentRun
from agents_app.runs.answer import done_event
from agents_app.runs.background import claim_queued_run, fail_abandoned_runs, fail_unstarted_run, resume_queued_run
from agents_app.runs.execution import stream_run
from agents_app.runs.lifecycle import end_run
from config.db import db_call
from config.errors import ApplicationError
from providers_app.clients import close_clients_for_running_loop

logger = logging.getLogger(__name__)


async def queue_run(run: AgentRun) -> None:
    """Hand a run recorded as queued (``start_run`` with mode ``"background"``, committed) to a worker."""
    await db_call(agent_run_execute.delay, run_id=run.pk)


@shared_task(acks_late=True, max_retries=0)
def agent_run_execute(run_id: int) -> str:
    """Execute a queued background run, publishing its events as it goes. Returns its final status.

    Claims the run with a conditional update first, so a redelivered task does nothing. A run
    whose agent was deleted meanwhile ends failed with that reason, never stuck in "running".
    Readers follow the events through GET /api/v1/runs/{id}/events (agents_app/events.py).
    """
    run = claim_queued_run(run_id)
    if run is None:
        return "skipped"
    try:
        active = resume_queued_run(run)
    except ApplicationError as exc:
        failed = fail_unstarted_run(run_id=run_id, error=exc)
        publish_final(stream_key(run), done_event(failed))
        return str(failed.status)

    async def go() -> str:
        publisher = RunEventPublisher(stream_key(run))
        status = ""
        try:
            async for event in stream_run(active):
                await publisher.publish(event)
                if event["event"] == "done":
                    status = event["data"]["status"]
            return status
        finally:
            await publisher.aclose()
            await close_clients_for_running_loop()

    try:
        return asyncio.run(go())
    except BaseException as exc:  # a time limit or a crash: never leave the run "running"
        publish_final(stream_key(run), done_event(asyncio.run(end_run(active, result=None, error=exc))))
        raise


@shared_task(acks_late=True, max_retries=3, autoretry_for=(ConnectionError,), retry_backoff=True)
def runs_fail_abandoned() -> int:
    """Fail runs whose process died before they ended, and refund them. Returns how many."""
    return fail_abandoned_runs()
