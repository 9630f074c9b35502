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
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from agents_app.exceptions import InvalidInputError
from agents_app.models import AgentRun
from agents_app.runs.answer import done_event, event_json, sse
from config.db import db_call

logger = logging.getLogger(__name__)

# Events kept per run: a long answer streams thousands of text deltas; older ones are dropped first.
MAX_EVENTS_PER_RUN = 20_000
HEARTBEAT_SECONDS = 15.0
_EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
POLL_SECONDS = 0.5


def stream_key(run: AgentRun) -> str:
    """Return the Redis stream of ``run``'s events: its id and its trace id, which no other run shares (ids start
    again from 1 in a database recreated while Redis keeps its streams)."""
    return f"run-events:{run.pk}:{run.trace_id}"


# A run's status as its row records it, and its final ``done`` event once it has ended (else None).
RowState = tuple[str, dict[str, Any] | None]


@dataclass(frozen=True)
class Feed:
    """One run's events: the stream they go to, and how its row is read when they are not there."""

    key: str
    state: Callable[[], Awaitable[RowState]]


def agent_run_feed(run: AgentRun) -> Feed:
    """Return the feed of an agent run's events."""

    async def state() -> RowState:
        # Through db_call: a stream may last minutes and must not keep a pooled connection meanwhile.
        found = await db_call(AgentRun.objects.get, pk=run.pk)
        return found.status, done_event(found) if found.is_terminal else None

    return Feed(stream_key(run), state)


def _client() -> aioredis.Redis | None:
    url = settings.REDIS_URL
    return aioredis.Redis.from_url(url, socket_connect_timeout=5, decode_responses=True) if url else None


class RunEventPublisher:
    """Appends one run's events to its stream. Never raises: a Redis outage must not fail the run itself."""

    def __init__(self, key: str) -> None:
        self.key = key
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


def publish_final(key: str, event: dict[str, Any]) -> None:
    """Publish a run's ``done`` ``event`` to stream ``key`` from sync code (a run that ended without streaming)."""

    async def publish() -> None:
        publisher = RunEventPublisher(key)
        try:
            await publisher.publish(event)
        finally:
            await publisher.aclose()

    asyncio.run(publish())


async def run_events(
    feed: Feed, *, last_event_id: str | None = None
) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    """Yield ``(event id, event)`` for a run until its ``done`` event; a ``heartbeat`` while it is quiet.

    Starts after ``last_event_id`` when given (a reconnecting client), else at the run's first event.
    A run that finished so long ago that its events expired, or that ran without Redis, yields its final
    ``done`` event from its row. The caller has checked that the run is the reader's to see.
    """
    redis = _client()
    if redis is None:
        async for item in _follow_row(feed):
            yield item
        return
    key = feed.key
    cursor = last_event_id or "0-0"
    try:
        if not await redis.exists(key):
            _, done = await feed.state()
            if done is not None:  # its events expired, or never reached Redis
                yield None, done
                return
        while True:
            try:
                batches: Any = await redis.xread({key: cursor}, count=500, block=int(HEARTBEAT_SECONDS * 1000))
            except RedisError as exc:
                logger.warning("Reading run events for %s failed (%s); following the row", key, type(exc).__name__)
                async for item in _follow_row(feed):
                    yield item
                return
            if not batches:
                status, done = await feed.state()
                if done is not None:  # quiet, and ended: its events expired, or its process died before its last
                    yield None, done
                    return
                yield None, {"event": "heartbeat", "data": {"status": status}}
                continue
            for entry_id, fields in batches[0][1]:
                cursor = entry_id
                name = fields["event"]
                yield cursor, {"event": name, "data": json.loads(fields["data"])}
                if name == "done":
                    return
    finally:
        await redis.aclose()


async def _follow_row(feed: Feed) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    """Without live events: report the run's status when it changes, then its final event."""
    seen = None
    while True:
        status, done = await feed.state()
        if done is not None:
            yield None, done
            return
        if status != seen:
            seen = status
            yield None, {"event": "status", "data": {"status": status}}
        await asyncio.sleep(POLL_SECONDS)


def _response(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must not buffer the stream
    return response


def last_event_id(request: HttpRequest) -> str | None:
    """Return the request's ``Last-Event-ID`` (a reconnecting client). Raises InvalidInputError when it is not an
    id this API gave."""
    value = request.headers.get("Last-Event-ID") or None
    if value is not None and not _EVENT_ID.match(value):
        raise InvalidInputError(
            "Last-Event-ID is not an event id of this API.", fields={"Last-Event-ID": "Use the id of an event."}
        )
    return value


async def _sse_with_ids(events: AsyncIterator[tuple[str | None, dict[str, Any]]]) -> AsyncIterator[bytes]:
    async for event_id, event in events:
        if event["event"] == "heartbeat":
            yield b": keep-alive\n\n"  # a comment: keeps proxies from closing a quiet stream
        else:
            yield (f"id: {event_id}\n" if event_id else "").encode() + sse(event)


def feed_response(feed: Feed, after: str | None) -> StreamingHttpResponse:
    """Return the SSE answer that follows ``feed`` from after event id ``after`` (None: from its start)."""
    return _response(_sse_with_ids(run_events(feed, last_event_id=after)))


async def _encoded(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        yield sse(event)


def sse_response(events: AsyncIterator[dict[str, Any]]) -> StreamingHttpResponse:
    """Return the ``text/event-stream`` answer of ``events`` as they come (a streamed run), never cached or
    buffered by proxies."""
    return _response(_encoded(events))
