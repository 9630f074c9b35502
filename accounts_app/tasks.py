"""Celery adapters for accounts work; each loads by id and calls a service."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, max_retries=3, autoretry_for=(ConnectionError,), retry_backoff=True)
def credits_release_stale_reservations() -> int:
    """Refund credit reservations whose run never settled. Returns how many were released."""
    from accounts_app.services import credits_release_stale_reservations as release

    return release()
