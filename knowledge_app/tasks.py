"""Celery adapters for knowledge ingestion."""

from __future__ import annotations

from celery import shared_task

from knowledge_app.ingestion import TRANSIENT, ingest, resume_stuck_files

MAX_RETRIES = 5


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RETRIES)
def knowledge_ingest(self: object, file_id: int) -> str:
    """Ingest an uploaded file; a worker lost mid-file hands it to another (the task is acknowledged late), and
    a provider that is briefly unavailable is tried again with backoff. Returns the file's status."""
    retries = self.request.retries  # type: ignore[attr-defined]
    try:
        return ingest(file_id, may_retry=retries < MAX_RETRIES)
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=min(2**retries * 5, 300)) from None  # type: ignore[attr-defined]


@shared_task(acks_late=True, max_retries=3, autoretry_for=(ConnectionError,), retry_backoff=True)
def knowledge_resume_stuck_files() -> list[int]:
    """Requeue files no worker finished, fail those tried too often. Returns [requeued, failed]."""
    return list(resume_stuck_files())
