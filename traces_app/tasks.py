"""Celery adapters for traces."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, max_retries=3, autoretry_for=(ConnectionError,), retry_backoff=True)
def traces_delete_expired() -> int:
    """Delete traces older than their workspace's retention. Returns how many."""
    from traces_app.services import traces_delete_expired as delete_expired

    return delete_expired()
