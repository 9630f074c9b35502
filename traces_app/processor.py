"""The SDK trace processor that stores every trace and span of the platform's runs in Postgres.

The SDK calls processors synchronously, in the thread running the agent (here the event loop), for every
trace and span. So the callbacks only put the SDK's objects on a bounded queue; a daemon thread takes them
off in batches, turns them into rows (payloads exported, secrets redacted, long strings cut) and writes each
batch in one transaction with a few statements. The ORM is never touched in a callback, a slow or failing
database never slows or fails a run (a failed batch is logged and dropped; a full queue drops new items and
counts them), and ``force_flush`` (``agents.flush_traces()``) waits until everything queued is written.

Only traces that carry a ``workspace_id`` in their metadata (the platform's runs) are stored.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents.tracing import Span as SDKSpan
from agents.tracing import Trace as SDKTrace
from agents.tracing import TracingProcessor
from django.conf import settings
from django.db import connection, transaction

from config.db import release_connection
from traces_app import redaction
from traces_app.models import Span, Trace

logger = logging.getLogger(__name__)

_TRACE_TABLE = Trace._meta.db_table
_SPAN_TABLE = Span._meta.db_table


@dataclass(frozen=True)
class _Item:
    kind: str  # "trace_start", "trace_end" or "span"
    subject: Any  # the SDK Trace or Span
    at: float  # when it happened (time.time())


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _workspace_id(metadata: dict[str, Any] | None) -> int | None:
    return _int_or_none((metadata or {}).get("workspace_id"))


def _trace_metadata(trace: SDKTrace) -> dict[str, Any]:
    # The SDK's Trace interface does not declare it; its implementation (TraceImpl) has it.
    return getattr(trace, "metadata", None) or {}


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def span_payload(span: SDKSpan[Any]) -> dict[str, Any]:
    """Return what is kept of a span's data: the SDK's export, plus the model input and output of Responses
    spans (which the SDK's export leaves out)."""
    data = span.span_data.export() or {}
    if data.get("type") == "response":
        response = getattr(span.span_data, "response", None)
        data["input"] = getattr(span.span_data, "input", None)
        if response is not None:
            data["model"] = getattr(response, "model", None)
            data["output"] = [item.model_dump(mode="json") for item in getattr(response, "output", [])]
            usage = getattr(response, "usage", None)
            if usage is not None and not data.get("usage"):
                data["usage"] = usage.model_dump(mode="json")
    return data


def span_name(data: dict[str, Any]) -> str:
    """Return the short label of a span: the agent, tool, model or guardrail it is about."""
    kind = data.get("type")
    if kind == "handoff":
        return f"{data.get('from_agent') or '?'} → {data.get('to_agent') or '?'}"
    if kind in ("generation", "response"):
        return str(data.get("model") or kind)
    if kind == "mcp_tools":
        return str(data.get("server") or "")
    return str(data.get("name") or "")


def span_row(span: SDKSpan[Any], *, max_chars: int) -> tuple[Any, ...]:
    """Return the values of the span's row (in _SPAN_COLUMNS order), secrets redacted."""
    secrets = redaction.secrets_for(span.trace_id)
    data = redaction.redact(span_payload(span), secrets, max_chars=max_chars)
    error = redaction.redact(span.error, secrets, max_chars=max_chars) if span.error else None
    started, ended = _when(span.started_at), _when(span.ended_at)
    duration = (ended - started).total_seconds() * 1000 if started and ended else None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return (
        span.trace_id,
        span.span_id,
        span.parent_id or "",
        str(data.get("type") or "custom")[:30],
        span_name(data)[:200],
        started,
        ended,
        duration,
        _dump(data),
        _dump(error) if error is not None else None,
        _int_or_none(usage.get("input_tokens")) or 0,
        _int_or_none(usage.get("output_tokens")) or 0,
    )


_SPAN_COLUMNS = (
    "trace_id, span_id, parent_id, kind, name, started_at, ended_at, duration_ms, data, error, "
    "input_tokens, output_tokens"
)
_INSERT_SPAN = (
    f"INSERT INTO {_SPAN_TABLE} ({_SPAN_COLUMNS}) "  # noqa: S608 (names from model metadata)
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s) ON CONFLICT DO NOTHING"
)
_INSERT_TRACE = (
    f"INSERT INTO {_TRACE_TABLE} (trace_id, workspace_id, run_id, agent_id, workflow_run_id, name, "  # noqa: S608
    "group_id, metadata, status, started_at, span_count, error_count, input_tokens, output_tokens) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, 'running', %s, 0, 0, 0, 0) ON CONFLICT (trace_id) DO NOTHING"
)
# A trace's totals come from its stored spans, so they are right whatever batches the spans came in.
_END_TRACE = f"""
UPDATE {_TRACE_TABLE} t SET
    ended_at = %s,
    duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM (%s - t.started_at)) * 1000)::int),
    span_count = totals.spans, error_count = totals.errors,
    input_tokens = totals.input_tokens, output_tokens = totals.output_tokens,
    status = CASE WHEN totals.errors > 0 THEN 'error' ELSE 'ok' END
FROM (
    SELECT count(*) AS spans, count(error) AS errors,
           COALESCE(sum(input_tokens), 0) AS input_tokens, COALESCE(sum(output_tokens), 0) AS output_tokens
    FROM {_SPAN_TABLE} WHERE trace_id = %s
) totals
WHERE t.trace_id = %s
"""  # noqa: S608


class PostgresTraceProcessor(TracingProcessor):
    """Queues the platform's traces and spans and writes them from a background thread in batches."""

    def __init__(self, *, max_queue_size: int = 8192, max_batch_size: int = 512, flush_interval: float = 0.5) -> None:
        self.max_queue_size = max_queue_size
        self.max_batch_size = max_batch_size
        self.flush_interval = flush_interval
        self.dropped = 0
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        # Also after a fork (Celery's prefork workers): the parent's queue and thread do not come along.
        self._pid = os.getpid()
        self._queue: queue.Queue[_Item | None] = queue.Queue(self.max_queue_size)
        self._thread: threading.Thread | None = None
        self._open: set[str] = set()  # traces started, not ended (writer thread only)

    # --- SDK callbacks: called in the run's thread; must stay cheap and never raise ---------------------

    def on_trace_start(self, trace: SDKTrace) -> None:
        if _workspace_id(_trace_metadata(trace)) is not None:
            self._put(_Item("trace_start", trace, time.time()))

    def on_trace_end(self, trace: SDKTrace) -> None:
        if _workspace_id(_trace_metadata(trace)) is not None:
            self._put(_Item("trace_end", trace, time.time()))

    def on_span_start(self, span: SDKSpan[Any]) -> None:
        pass  # spans are stored when they end, complete

    def on_span_end(self, span: SDKSpan[Any]) -> None:
        if _workspace_id(span.trace_metadata) is not None:
            self._put(_Item("span", span, time.time()))

    def _put(self, item: _Item) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._reset()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name="trace-writer", daemon=True)
                    self._thread.start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("Trace queue full: %s trace items dropped so far", self.dropped)

    def force_flush(self) -> None:
        """Wait until everything queued so far is written (or failed)."""
        if self._thread is not None and self._pid == os.getpid():
            self._queue.join()

    def shutdown(self) -> None:
        self.force_flush()

    # --- The writer thread -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            deadline = time.monotonic() + self.flush_interval
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            try:
                self.write([item for item in batch if item is not None])
            except Exception:
                logger.exception("Could not store %s trace items; they are dropped", len(batch))
            finally:
                release_connection()
                for _ in batch:
                    self._queue.task_done()

    def write(self, items: list[_Item]) -> None:
        """Store a batch: new traces, then spans (of traces known to be stored), then ended traces."""
        max_chars = settings.TRACE_MAX_STRING_CHARS
        traces, spans, ended = [], [], []
        started: set[str] = set()
        for item in items:
            if item.kind == "trace_start":
                trace = item.subject
                metadata = _trace_metadata(trace)
                started.add(trace.trace_id)
                traces.append(
                    (
                        trace.trace_id,
                        _workspace_id(metadata),
                        _int_or_none(metadata.get("run_id")),
                        _int_or_none(metadata.get("agent_id")),
                        _int_or_none(metadata.get("workflow_run_id")),
                        (trace.name or "")[:200],
                        (trace.group_id or "")[:200],
                        _dump(redaction.redact(metadata, max_chars=max_chars)),
                        datetime.fromtimestamp(item.at, UTC),
                    )
                )
            elif item.subject.trace_id not in self._open and item.subject.trace_id not in started:
                continue  # its trace is not stored (it started before this processor, or its write failed)
            elif item.kind == "span":
                spans.append(span_row(item.subject, max_chars=max_chars))
            else:
                ended_at = datetime.fromtimestamp(item.at, UTC)
                ended.append((ended_at, ended_at, item.subject.trace_id, item.subject.trace_id))
        with transaction.atomic(), connection.cursor() as cursor:
            if traces:
                cursor.executemany(_INSERT_TRACE, traces)
            if spans:
                cursor.executemany(_INSERT_SPAN, spans)
            if ended:
                cursor.executemany(_END_TRACE, ended)
        self._open |= started
        for *_, trace_id in ended:
            self._open.discard(trace_id)
            redaction.forget(trace_id)
