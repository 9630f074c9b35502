"""Celery adapters for workflow runs: a background run's execution, and the sweep that resumes stalled ones."""

from __future__ import annotations

import asyncio

from celery import shared_task

from agents_app.events import RunEventPublisher, publish_final
from config.errors import ApplicationError
from providers_app.clients import close_clients_for_running_loop
from workflows_app.engine import (
    claim_workflow_run,
    execute_workflow,
    fail_workflow_run,
    resume_stalled_workflow_runs,
    resumed_start,
    workflow_done_event,
    workflow_stream_key,
)


@shared_task(acks_late=True, max_retries=0)
def workflow_run_execute(workflow_run_id: int) -> str:
    """Execute a queued workflow run (new, or handed back by the sweep after its worker died), publishing its events
    (GET /api/v1/workflow-runs/{id}/events). Returns its final status, or "skipped" when it is not queued.

    A resumed run goes on from the step after its last finished one; a step it finished is never run again.
    """
    run = claim_workflow_run(workflow_run_id)
    if run is None:
        return "skipped"
    key = workflow_stream_key(run)
    try:
        start = resumed_start(run)
    except ApplicationError as exc:
        failed = fail_workflow_run(run, exc)
        publish_final(key, workflow_done_event(failed))
        return str(failed.status)

    async def go() -> str:
        publisher = RunEventPublisher(key)
        try:
            return str((await execute_workflow(start, emit=publisher.publish)).status)
        finally:
            await publisher.aclose()
            await close_clients_for_running_loop()

    try:
        return asyncio.run(go())
    except BaseException as exc:  # a time limit or a crash: never leave the run "running"
        publish_final(key, workflow_done_event(fail_workflow_run(run, f"The run stopped: {exc!r}"[:500], "crashed")))
        raise


@shared_task(acks_late=True, max_retries=3, autoretry_for=(ConnectionError,), retry_backoff=True)
def workflow_runs_resume_stalled() -> tuple[int, int]:
    """Hand stalled background workflow runs back to the workers; fail those that cannot go on. Returns
    ``(requeued, failed)``."""
    return resume_stalled_workflow_runs()
