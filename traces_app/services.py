"""Trace writes: retention (the setting, and the periodic deletion of old traces)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.models import Role, Workspace
from config.errors import InvalidInputError
from traces_app import forwarding
from traces_app.models import Span, Trace, TraceForwarding

logger = logging.getLogger(__name__)

MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 3650
DELETE_BATCH_SIZE = 1000

_TRACE_TABLE = Trace._meta.db_table
_SPAN_TABLE = Span._meta.db_table
# Oldest first, and rows another deletion holds are skipped: batches never wait on each other.
_EXPIRED = (
    f"SELECT trace_id FROM {_TRACE_TABLE} WHERE workspace_id = %s AND started_at < %s "  # noqa: S608
    "ORDER BY started_at LIMIT %s FOR UPDATE SKIP LOCKED"
)


def trace_retention_set(*, actor: Actor, days: int) -> Workspace:
    """Keep the workspace's traces ``days`` days (admins and owners). Returns the workspace.

    Raises PermissionDeniedError below admin and InvalidInputError outside 1..3650 days.
    """
    actor.require(Role.ADMIN, "change how long traces are kept")
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise InvalidInputError(
            "Choose how many days to keep traces.",
            fields={"retention_days": f"Between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS} days."},
        )
    Workspace.objects.filter(pk=actor.workspace.pk).update(trace_retention_days=days)
    actor.workspace.trace_retention_days = days
    return actor.workspace


def trace_forwarding_set(*, actor: Actor, provider_id: int | None) -> TraceForwarding:
    """Forward the workspace's traces to OpenAI with one of its OpenAI providers' keys, or stop (None).

    Admins and owners. Raises InvalidInputError for a provider that is not an OpenAI provider of this
    workspace with a key. Processes pick the change up within forwarding.REFRESH_SECONDS.
    """
    from providers_app.models import Provider, ProviderType

    actor.require(Role.ADMIN, "change where traces are sent")
    provider = None
    if provider_id is not None:
        provider = Provider.objects.filter(workspace=actor.workspace, pk=provider_id, type=ProviderType.OPENAI).first()
        if provider is None or not provider.api_key:
            raise InvalidInputError(
                "Traces can be forwarded with one of this workspace's OpenAI providers that has a key.",
                fields={"openai_provider_id": "Choose an OpenAI provider of this workspace with an API key."},
            )
    setting, _ = TraceForwarding.objects.update_or_create(workspace=actor.workspace, defaults={"provider": provider})
    forwarding.keys.refresh_soon()
    return setting


def trace_forwarding_provider_id(*, actor: Actor) -> int | None:
    """Return the id of the provider the workspace forwards its traces with, or None."""
    setting = TraceForwarding.objects.filter(workspace=actor.workspace).first()
    return setting.provider_id if setting else None


def traces_delete_expired(*, now: datetime | None = None, batch_size: int = DELETE_BATCH_SIZE) -> int:
    """Delete every trace (and its spans) older than its workspace's retention. Returns how many traces.

    Works in batches of ``batch_size`` traces, each its own short transaction, so that no table is locked
    for long and runs keep writing traces meanwhile.
    """
    now = now or timezone.now()
    deleted = 0
    for workspace_id, days in Workspace.objects.values_list("id", "trace_retention_days").order_by("id").iterator():
        cutoff = now - timedelta(days=days)
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_EXPIRED, [workspace_id, cutoff, batch_size])
                trace_ids = [row[0] for row in cursor.fetchall()]
                if trace_ids:
                    cursor.execute(f"DELETE FROM {_SPAN_TABLE} WHERE trace_id = ANY(%s)", [trace_ids])  # noqa: S608
                    cursor.execute(f"DELETE FROM {_TRACE_TABLE} WHERE trace_id = ANY(%s)", [trace_ids])  # noqa: S608
            deleted += len(trace_ids)
            if len(trace_ids) < batch_size:
                break
    if deleted:
        logger.info("Deleted %s expired traces", deleted)
    return deleted
