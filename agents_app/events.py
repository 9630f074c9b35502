"""Live events of background runs: the worker appends them to a Redis stream, API clients read them as SSE.

A Redis stream (not pub/sub) keeps the events, so a client that connects late, or reconnects with the
``Last-Event-ID`` of the last event it saw, gets everything it missed. Each run's stream expires
RUN_EVENTS_TTL_SECONDS after its last event. Without Redis (the embedded default may have none), the
worker publishes nothing and readers follow the run's row instead: status changes, then the final event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from agents_app.models import AgentRun
from agents_app.runs.answer import done_event, event_json
from config.db import db_call

logger = logging.getLogger(__name__)

# Events kept per run: a long answer streams thousands of text deltas; older ones are dropped first.
MAX_EVENTS_PER_RUN = 20_000
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 0.5


def stream_key(run_id: int) -> str:
    return f"run-events:{run_id}"


def _client() -> aioredis.Redis | None:
    url = settings.REDIS_URL
    return aioredis.Redis.from_url(url, socket_connect_timeout=5, decode_responses=True) if url else None


class RunEventPublisher:
    """Appends one run's events to its stream. Never raises: a Redis outage must not fail the run itself."""

    def __init__(self, run_id: int) -> None:
        self.key = stream_key(run_id)
        self.redis = _client()
        self.broken = False

    async def publish(self, event: dict[str, Any]) -> None:
        """Append ``event`` ({"event": name, "data": {...}}) and push the stream's expiry back."""
        if self.redis is None or self.broken:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(
                    self.key,
                    {"event": event["event"], "data": event_json(event["data"])},
                    maxlen=MAX_EVENTS_PER_RUN,
                    approximate=True,
                )
                pipe.expire(self.key, settings.RUN_EVENTS_TTL_SECONDS)
                await pipe.execute()
        except RedisError as exc:
            # The run goes on and is recorded as usual; readers fall back to the run's row.
            logger.warning("Run events for %s stop: Redis failed (%s)", self.key, type(exc).__name__)
            self.broken = True

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def publish_final(run: AgentRun) -> None:
    """Publish a run's ``done`` event from sync code (a run that ended without streaming)."""

    async def publish() -> None:
        publisher = RunEventPublisher(run.pk)
        try:
            await publisher.publish(done_event(run))
        finally:
            await publisher.aclose()

    asyncio.run(publish())


async def _row(run_id: int) -> AgentRun:
    # Through db_call: a stream may last minutes and must not keep a pooled connection meanwhile.
    return await db_call(AgentRun.objects.get, pk=run_id)


async def run_events(
    run_id: int, *, last_event_id: str | None = None
) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    """Yield ``(event id, event)`` for a run until its ``done`` event; a ``heartbeat`` while it is quiet.

    Starts after ``last_event_id`` when given (a reconnecting client), else at the run's first event.
    A run that finished so long ago that its events expired, or that ran without Redis, yields its final
    ``done`` event from its row. The caller has checked that the run is the reader's to see.
    """
    redis = _client()
    if redis is None:
        async for item in _follow_row(run_id):
            yield item
        return
    key = stream_key(run_id)
    cursor = last_event_id or "0-0"
    try:
        if not await redis.exists(key):
            run = await _row(run_id)
            if run.is_terminal:  # its events expired, or never reached Redis
                yield None, done_event(run)
                return
        while True:
            try:
                batches: Any = await redis.xread({key: cursor}, count=500, block=int(HEARTBEAT_SECONDS * 1000))
            except RedisError as exc:
                logger.warning("Reading run events for %s failed (%s); following the row", key, type(exc).__name__)
                async for item in _follow_row(run_id):
                    yield item
                return
            if not batches:
                run = await _row(run_id)
                if run.is_terminal and not await redis.exists(key):
                    yield None, done_event(run)  # its events expired, or never reached Redis
                    return
                yield None, {"event": "heartbeat", "data": {"status": run.status}}
                continue
            for entry_id, fields in batches[0][1]:
                cursor = entry_id
                name = fields["event"]
                yield cursor, {"event": name, "data": json.loads(fields["data"])}
                if name == "done":
                    return
    finally:
        await redis.aclose()


async def _follow_row(run_id: int) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    """Without live events: report the run's status when it changes, then its final event."""
    status = None
    while True:
        run = await _row(run_id)
        if run.is_terminal:
            yield None, done_event(run)
            return
        if run.status != status:
            status = run.status
            yield None, {"event": "status", "data": {"status": status}}
        await asyncio.sleep(POLL_SECONDS)
