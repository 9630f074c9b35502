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

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents.tracing import Span as SDKSpan
from agents.tracing import Trace as SDKTrace
from agents.tracing import TracingProcessor
from django.conf import settings
from django.db import connection, transaction

from config.db import release_connection
from traces_app import forwarding, otlp, redaction
from traces_app.models import Span, Trace, TraceStatus

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
    data = span_payload(span)
    started, ended = _when(span.started_at), _when(span.ended_at)
    duration = (ended - started).total_seconds() * 1000 if started and ended else None
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return (
        span.trace_id,
        span.span_id,
        span.parent_id or "",
        str(data.get("type") or "custom")[:30],
        redaction.redact(span_name(data), secrets)[:200],
        started,
        ended,
        duration,
        redaction.redact_json(data, secrets, max_chars=max_chars),
        redaction.redact_json(span.error, secrets, max_chars=max_chars) if span.error else None,
        _int_or_none(usage.get("input_tokens")) or 0,
        _int_or_none(usage.get("output_tokens")) or 0,
    )


_SPAN_COLUMNS = (
    "trace_id, span_id, parent_id, kind, name, started_at, ended_at, duration_ms, data, error, "
    "input_tokens, output_tokens"
)
_INSERT_TRACE = (
    f"INSERT INTO {_TRACE_TABLE} (trace_id, workspace_id, run_id, agent_id, workflow_run_id, name, "  # noqa: S608
    "group_id, metadata, started_at, ended_at, duration_ms, status, span_count, error_count, input_tokens, "
    "output_tokens) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (trace_id) DO NOTHING"
)
# For a trace whose spans came in several batches: its totals come from its stored spans.
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
# A trace that lost items in a failed write is an error: its stored spans are not the whole story.
_MARK_INCOMPLETE = f"UPDATE {_TRACE_TABLE} SET status = 'error' WHERE trace_id = %s"  # noqa: S608


class PostgresTraceProcessor(TracingProcessor):
    """Queues the platform's traces and spans and writes them from a background thread in batches.

    The callbacks append to a deque and never wake the writer (a wake-up per span would cost a GIL
    hand-off per span while runs are busy); the writer wakes every ``flush_interval``, when
    ``max_batch_size`` items wait, or on ``force_flush``, and takes everything waiting.
    """

    def __init__(self, *, max_queue_size: int = 8192, max_batch_size: int = 2048, flush_interval: float = 0.5) -> None:
        self.max_queue_size = max_queue_size
        self.max_batch_size = max_batch_size
        self.flush_interval = flush_interval
        self.dropped = 0
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        # Also after a fork (Celery's prefork workers): the parent's buffer and thread do not come along.
        self._pid = os.getpid()
        self._buffer: deque[_Item] = deque()
        self._wake = threading.Event()
        self._flushes: deque[threading.Event] = deque()
        self._thread: threading.Thread | None = None
        self._open: dict[str, otlp.TraceInfo] = {}  # traces stored, not ended (writer thread only)
        self._incomplete: set[str] = set()  # open traces that lost items in a failed write (writer thread only)
        self._export_failures = 0
        self._forward_failures = 0

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
        if self._pid != os.getpid() or self._thread is None:
            self._start()
        waiting = len(self._buffer)
        if waiting >= self.max_queue_size:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("Trace queue full: %s trace items dropped so far", self.dropped)
            return
        self._buffer.append(item)  # deque.append is atomic
        if waiting + 1 >= self.max_batch_size:
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="trace-writer", daemon=True)
                self._thread.start()

    def force_flush(self) -> None:
        """Wait until everything queued so far is written (or failed)."""
        if self._thread is None or self._pid != os.getpid():
            return
        done = threading.Event()
        self._flushes.append(done)
        self._wake.set()
        done.wait(timeout=30)

    def shutdown(self) -> None:
        self.force_flush()

    # --- The writer thread -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            flushes = []
            while self._flushes:
                flushes.append(self._flushes.popleft())
            # One batch per wake-up, unless a full batch waits or a flush was asked for: writing small
            # batches back to back would cost the runs more CPU (round trips, per-statement work) for nothing.
            first = True
            while self._buffer and (first or flushes or len(self._buffer) >= self.max_batch_size):
                first = False
                batch: list[_Item] = []
                while self._buffer and len(batch) < self.max_batch_size:
                    batch.append(self._buffer.popleft())
                try:
                    self.write(batch)
                except Exception:
                    self._write_apart(batch)
                finally:
                    release_connection()
            for done in flushes:
                done.set()

    def _write_apart(self, batch: list[_Item]) -> None:
        """After a failed batch: write each trace's items on their own, so that one bad trace (its row
        deleted while it ran, by retention or a deleted workspace) loses only its own items, never the
        other runs' traces that shared its batch. What still fails is logged, dropped and abandoned."""
        groups: dict[str, list[_Item]] = {}
        for item in batch:
            groups.setdefault(item.subject.trace_id, []).append(item)
        if len(groups) == 1:
            logger.exception("Could not store %s trace items; they are dropped", len(batch))
            self._abandon(batch)
            return
        lost: list[_Item] = []
        for items in groups.values():
            try:
                self.write(items)
            except Exception:
                if not lost:
                    logger.exception("Could not store the trace items of %s", items[0].subject.trace_id)
                lost += items
                self._abandon(items)
        if lost:
            logger.error("Could not store %s trace items; they are dropped", len(lost))

    def write(self, items: list[_Item]) -> None:
        """Store a batch: new traces (final already when they ended in this batch), their spans, and the
        totals of traces that ended in this batch but began in an earlier one."""
        max_chars = settings.TRACE_MAX_STRING_CHARS
        starts: dict[str, _Item] = {}
        ends: dict[str, float] = {}
        spans: list[tuple[Any, ...]] = []
        for item in items:
            trace_id = item.subject.trace_id
            if item.kind == "trace_start":
                starts[trace_id] = item
            elif trace_id not in self._open and trace_id not in starts:
                # Its trace is not stored (it started before this processor, or its write failed).
                if item.kind == "trace_end":
                    redaction.forget(trace_id)
                continue
            elif item.kind == "span":
                spans.append(span_row(item.subject, max_chars=max_chars))
            else:
                ends[trace_id] = item.at
        by_trace: dict[str, list[tuple[Any, ...]]] = {}
        for row in spans:
            by_trace.setdefault(row[0], []).append(row)
        finished_here: set[str] = set()
        infos = dict(self._open)
        traces = []
        for trace_id, start in starts.items():
            trace, metadata = start.subject, _trace_metadata(start.subject)
            started_at = datetime.fromtimestamp(start.at, UTC)
            info = infos[trace_id] = otlp.TraceInfo(
                workspace_id=_workspace_id(metadata),
                run_id=_int_or_none(metadata.get("run_id")),
                agent_id=_int_or_none(metadata.get("agent_id")),
                workflow_run_id=_int_or_none(metadata.get("workflow_run_id")),
                name=(trace.name or "")[:200],
            )
            values = [
                trace_id,
                info.workspace_id,
                info.run_id,
                info.agent_id,
                info.workflow_run_id,
                info.name,
                (trace.group_id or "")[:200],
                redaction.redact_json(metadata, max_chars=max_chars),
                started_at,
            ]
            ended = ends.pop(trace_id, None)
            if ended is None:
                values += [None, None, TraceStatus.RUNNING, 0, 0, 0, 0]
            else:  # the whole trace is in this batch: its row is final at once
                finished_here.add(trace_id)
                own = by_trace.get(trace_id, [])
                errors = sum(1 for row in own if row[9] is not None)
                values += [
                    datetime.fromtimestamp(ended, UTC),
                    max(0, int((ended - start.at) * 1000)),
                    TraceStatus.ERROR if errors else TraceStatus.OK,
                    len(own),
                    errors,
                    sum(row[10] for row in own),
                    sum(row[11] for row in own),
                ]
            traces.append(values)
        with transaction.atomic(), connection.cursor() as cursor:
            # Traces are telemetry: their commit does not wait for the disk, so it never queues the runs'
            # own durable commits behind it. A crash can lose the last moments of traces, never a run.
            cursor.execute("SET LOCAL synchronous_commit = off")
            if traces:
                cursor.executemany(_INSERT_TRACE, traces)
            if spans:
                # COPY: the cheapest way in, for the writer's CPU (which the runs share) and for Postgres.
                with cursor.cursor.copy(f"COPY {_SPAN_TABLE} ({_SPAN_COLUMNS}) FROM STDIN") as copy:
                    for row in spans:
                        copy.write_row(row)
            self._end_traces(cursor, ends)
        self._export(spans, infos)
        self._forward(starts, spans, infos)
        for trace_id in starts.keys() - finished_here:
            self._open[trace_id] = infos[trace_id]
        for trace_id in (*ends, *finished_here):
            self._forget(trace_id)

    def _end_traces(self, cursor: Any, ends: dict[str, float]) -> None:
        """End stored traces that began in an earlier batch: totals from their stored spans, and an error
        status for those that lost items in a failed write."""
        for trace_id, ended_at in ends.items():
            at = datetime.fromtimestamp(ended_at, UTC)
            cursor.execute(_END_TRACE, [at, at, trace_id, trace_id])
            if trace_id in self._incomplete:
                cursor.execute(_MARK_INCOMPLETE, [trace_id])

    def _forget(self, trace_id: str) -> None:
        """Drop what the writer keeps of an ended trace."""
        self._open.pop(trace_id, None)
        self._incomplete.discard(trace_id)
        redaction.forget(trace_id)

    def _abandon(self, items: list[_Item]) -> None:
        """After a failed batch, so that no stored trace stays "running" for ever or ends looking whole: every
        stored trace with items in it is incomplete; those that ended in it are ended now (as errors) and
        forgotten, the others will end as errors. Best effort: if this write fails too, it is logged and left."""
        ended: dict[str, float] = {}
        for item in items:
            trace_id = item.subject.trace_id
            if item.kind == "trace_end":
                ended[trace_id] = item.at
            if trace_id in self._open:
                self._incomplete.add(trace_id)
        stored = {trace_id: at for trace_id, at in ended.items() if trace_id in self._open}
        try:
            if stored:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit = off")
                    self._end_traces(cursor, stored)
        except Exception:
            logger.exception("Could not end %s traces whose last items were dropped", len(stored))
        finally:
            for trace_id in ended:
                self._forget(trace_id)

    def _forward(
        self, starts: dict[str, _Item], spans: list[tuple[Any, ...]], infos: dict[str, otlp.TraceInfo]
    ) -> None:
        """Send the batch's traces and spans of workspaces that asked for it to OpenAI (never raises)."""
        by_workspace: dict[int, tuple[list[dict[str, Any]], list[tuple[Any, ...]]]] = {}
        for trace_id, start in starts.items():
            workspace_id = infos[trace_id].workspace_id or 0
            trace = start.subject
            export = {"id": trace_id, "workflow_name": trace.name, "group_id": trace.group_id}
            by_workspace.setdefault(workspace_id, ([], []))[0].append(export)
        for row in spans:
            info = infos.get(row[0])
            by_workspace.setdefault(info.workspace_id or 0 if info else 0, ([], []))[1].append(row)
        for workspace_id, (traces, rows) in by_workspace.items():
            try:
                key = forwarding.keys.key_for(workspace_id)
                if key:
                    forwarding.forward(key, forwarding.ingest_items(traces, rows))
            except (OSError, ValueError) as exc:
                self._forward_failures += 1
                if self._forward_failures == 1 or self._forward_failures % 100 == 0:
                    logger.warning("Forwarding traces to OpenAI failed (%s so far): %s", self._forward_failures, exc)

    def _export(self, spans: list[tuple[Any, ...]], infos: dict[str, otlp.TraceInfo]) -> None:
        """Send the stored spans to the operator's OTLP collector, if one is configured (never raises)."""
        exporter = otlp.exporter()
        if exporter is None or not spans:
            return
        try:
            exporter.export(spans, infos)
        except (OSError, ValueError) as exc:
            self._export_failures += 1
            if self._export_failures == 1 or self._export_failures % 100 == 0:
                logger.warning(
                    "OTLP export to %s failed (%s so far): %s", exporter.endpoint, self._export_failures, exc
                )
