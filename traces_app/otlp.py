"""Optional export of the stored spans to an OpenTelemetry collector (OTLP over HTTP, JSON encoding).

Configured by the standard environment variables: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (e.g.
``http://collector:4318/v1/traces``; unset: no export), ``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``, e.g. an
API key for a hosted collector) and ``OTEL_SERVICE_NAME``. The trace writer sends each batch after storing it,
with the same redacted payloads; a collector that is down or slow costs a logged warning and that batch's
export, never a stored span or a run.

The SDK's ids map onto OTLP's: ``trace_<32 hex>`` gives the 16-byte trace id, and the last 16 hex digits of
``span_<24 hex>`` the 8-byte span id (ids of another shape are hashed to the right size).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

_HEX = re.compile(r"[0-9a-f]+")
SPAN_KIND_INTERNAL = 1
STATUS_OK, STATUS_ERROR = 1, 2


def otlp_id(sdk_id: str, hex_digits: int) -> str:
    """Return the OTLP id (``hex_digits`` lowercase hex) for an SDK trace or span id."""
    tail = sdk_id.rsplit("_", 1)[-1].lower()
    if len(tail) >= hex_digits and _HEX.fullmatch(tail):
        return tail[-hex_digits:]
    return hashlib.sha256(sdk_id.encode()).hexdigest()[:hex_digits]


def _nanos(moment: datetime | None) -> str:
    return str(int(moment.timestamp() * 1_000_000_000)) if moment else "0"


def _attribute(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


@dataclass(frozen=True)
class TraceInfo:
    """What the exporter adds to every span of a trace."""

    workspace_id: int | None
    run_id: int | None
    agent_id: int | None
    workflow_run_id: int | None
    name: str


@dataclass(frozen=True)
class OtlpExporter:
    endpoint: str
    headers: tuple[tuple[str, str], ...]
    service_name: str
    timeout: float = 5.0

    def payload(self, spans: Iterable[Sequence[Any]], traces: dict[str, TraceInfo]) -> dict[str, Any]:
        """Return the OTLP JSON request for span rows (as the trace writer stores them)."""
        out = []
        for trace_id, span_id, parent_id, kind, name, started, ended, _, data, error, tokens_in, tokens_out in spans:
            info = traces.get(trace_id)
            attributes = [
                _attribute("agents.span.kind", kind),
                _attribute("agents.trace.name", info.name if info else ""),
                _attribute("agents.data", data),
            ]
            for key, value in (
                ("agents.workspace_id", info and info.workspace_id),
                ("agents.run_id", info and info.run_id),
                ("agents.agent_id", info and info.agent_id),
                ("agents.workflow_run_id", info and info.workflow_run_id),
            ):
                if value:
                    attributes.append(_attribute(key, value))
            if kind in ("generation", "response"):
                attributes += [
                    _attribute("gen_ai.request.model", name),
                    _attribute("gen_ai.usage.input_tokens", tokens_in),
                    _attribute("gen_ai.usage.output_tokens", tokens_out),
                ]
            status: dict[str, Any] = {"code": STATUS_OK}
            if error is not None:
                message = json.loads(error).get("message", "") if isinstance(error, str) else ""
                status = {"code": STATUS_ERROR, "message": str(message)}
            out.append(
                {
                    "traceId": otlp_id(trace_id, 32),
                    "spanId": otlp_id(span_id, 16),
                    "parentSpanId": otlp_id(parent_id, 16) if parent_id else "",
                    "name": f"{kind} {name}".strip(),
                    "kind": SPAN_KIND_INTERNAL,
                    "startTimeUnixNano": _nanos(started),
                    "endTimeUnixNano": _nanos(ended),
                    "attributes": attributes,
                    "status": status,
                }
            )
        resource = {"attributes": [_attribute("service.name", self.service_name)]}
        scope = {"name": "agents-platform.traces"}
        return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": out}]}]}

    def export(self, spans: Sequence[Sequence[Any]], traces: dict[str, TraceInfo]) -> None:
        """Send the spans; raises OSError (urllib's errors) when the collector cannot take them."""
        if not spans:
            return
        body = json.dumps(self.payload(spans, traces)).encode()
        request = urllib.request.Request(  # noqa: S310 (an operator-configured http(s) URL, checked in settings)
            self.endpoint, data=body, method="POST", headers={"Content-Type": "application/json", **dict(self.headers)}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            response.read()


def exporter() -> OtlpExporter | None:
    """Return the exporter the settings configure, or None."""
    endpoint = settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    if not endpoint:
        return None
    return OtlpExporter(
        endpoint=endpoint,
        headers=tuple(settings.OTEL_EXPORTER_OTLP_HEADERS.items()),
        service_name=settings.OTEL_SERVICE_NAME,
    )
