"""Celery adapters for agent runs."""

from __future__ import annotations

import asyncio
import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, max_retries=0)
def agent_run_execute(run_id: int) -> str:
    """Execute a queued background run. Returns its final status.

    Claims the run with a conditional update first, so a redelivered task does nothing. A run
    whose agent was deleted meanwhile ends failed with that reason, never stuck in "running".
    """
    from agents_app.runs import claim_queued_run, execute_run, fail_unstarted_run, finish_run, load_prepared
    from config.errors import ApplicationError
    from providers_app.clients import close_clients_for_running_loop

    run = claim_queued_run(run_id)
    if run is None:
        return "skipped"
    try:
        prepared = load_prepared(run)
    except ApplicationError as exc:
        return str(fail_unstarted_run(run_id=run_id, error=exc).status)

    async def go() -> str:
        try:
            finished = await execute_run(prepared)
            return str(finished.status)
        finally:
            await close_clients_for_running_loop()

    try:
        return asyncio.run(go())
    except BaseException as exc:  # a time limit or a crash: never leave the run "running"
        finish_run(prepared, result=None, error=exc)
        raise
