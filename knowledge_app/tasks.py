"""Celery adapters for knowledge ingestion."""

from __future__ import annotations

from celery import shared_task

from knowledge_app.ingestion import TRANSIENT, fail, ingest, resume_stuck_files


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5)
def knowledge_ingest(self: object, file_id: int) -> str:
    """Ingest an uploaded file; a worker lost mid-file hands it to another (the task is acknowledged late), and
    a provider that is briefly unavailable is tried again with backoff. Returns the file's status."""
    try:
        return ingest(file_id)
    except TRANSIENT as exc:
        retries = self.request.retries  # type: ignore[attr-defined]
        if retries >= 5:
            fail(file_id, f"The embedding provider stayed unavailable ({type(exc).__name__}); upload it again later.")
            return "error"
        raise self.retry(exc=exc, countdown=min(2**retries * 5, 300)) from None  # type: ignore[attr-defined]
    except BaseException:
        fail(file_id, "The worker stopped while processing the file (a time limit?); upload it again.")
        raise


@shared_task(acks_late=True, max_retries=3, autoretry_for=(ConnectionError,), retry_backoff=True)
def knowledge_resume_stuck_files() -> list[int]:
    """Requeue files no worker finished, fail those tried too often. Returns [requeued, failed]."""
    return list(resume_stuck_files())
