"""OTLP export: the stored spans reach an OpenTelemetry collector (a local test double) as OTLP/HTTP JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from agents import flush_traces
from django.test import override_settings

from agents_app.services import agent_create
from tests.agents_app.test_runs import run_sync
from tests.fakes import Reply, ToolCall
from traces_app.models import Span
from traces_app.otlp import otlp_id

pytestmark = pytest.mark.django_db(transaction=True)


class Collector:
    """An OTLP/HTTP receiver on 127.0.0.1 that records what it is sent (or answers ``status``)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 200
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {key.lower(): value for key, value in self.headers.items()}
                collector.requests.append((headers, json.loads(body)))
                self.send_response(collector.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list[dict[str, Any]]:
        return [
            span
            for _, body in self.requests
            for resource in body["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        ]


@pytest.fixture
def collector() -> Iterator[Collector]:
    double = Collector()
    with override_settings(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=double.url,
        OTEL_EXPORTER_OTLP_HEADERS={"x-api-key": "collector-secret"},
        OTEL_SERVICE_NAME="agents-test",
    ):
        yield double
    double.server.shutdown()
    double.server.server_close()


def test_spans_are_exported_with_their_tree_and_attributes(team, fake_provider, fake_openai, collector):
    tool = agent_create(actor=team, name="Tool")
    agent = agent_create(
        actor=team,
        name="Caller",
        instructions="Key sk-fake-0123456789 must not leak.",
        tools=[{"type": "agent", "name": "lookup", "params": {"agent_id": tool.pk}}],
    )
    fake_openai.script(ToolCall("lookup", {"input": "x"}), Reply("found", usage=(5, 1)), Reply("done", usage=(9, 2)))
    run = run_sync(team, agent)
    flush_traces()
    stored = {s.span_id: s for s in Span.objects.filter(trace_id=run.trace_id)}
    exported = collector.spans()
    assert len(exported) == len(stored)
    headers, body = collector.requests[0]
    assert headers["x-api-key"] == "collector-secret"
    assert headers["content-type"] == "application/json"
    resource = body["resourceSpans"][0]["resource"]["attributes"]
    assert {"key": "service.name", "value": {"stringValue": "agents-test"}} in resource
    assert {span["traceId"] for span in exported} == {otlp_id(run.trace_id, 32)}
    by_id = {span["spanId"]: span for span in exported}
    for sdk_id, row in stored.items():
        span = by_id[otlp_id(sdk_id, 16)]
        assert span["parentSpanId"] == (otlp_id(row.parent_id, 16) if row.parent_id else "")
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
    attributes = {a["key"]: a["value"] for span in exported for a in span["attributes"]}
    assert attributes["agents.run_id"] == {"intValue": str(run.pk)}
    assert attributes["agents.workspace_id"] == {"intValue": str(team.workspace.pk)}
    models = [span for span in exported if span["name"].startswith("generation")]
    tokens = [
        int(a["value"]["intValue"]) for s in models for a in s["attributes"] if a["key"] == "gen_ai.usage.input_tokens"
    ]
    assert sorted(tokens) == sorted(row.input_tokens for row in stored.values() if row.kind == "generation")
    assert len(models) == 3  # the caller's two model calls and the tool agent's one
    assert "sk-fake-0123456789" not in json.dumps(collector.requests)


def test_a_collector_that_refuses_costs_no_span_and_no_run(team, helper, fake_openai, collector, caplog):
    collector.status = 503
    fake_openai.script(Reply("fine"))
    run = run_sync(team, helper)
    flush_traces()
    assert run.status == "succeeded"
    assert Span.objects.filter(trace_id=run.trace_id).exists()
    assert "OTLP export" in caplog.text


def test_ids_map_onto_otlp_sizes():
    assert otlp_id("trace_" + "ab" * 16, 32) == "ab" * 16
    assert otlp_id("span_" + "0123456789abcdef01234567", 16) == "89abcdef01234567"
    custom = otlp_id("my-own-trace-id", 32)
    assert len(custom) == 32
    assert int(custom, 16) >= 0


@pytest.mark.parametrize("endpoint", ["collector:4318", "ftp://x/v1/traces"])
def test_a_bad_endpoint_stops_start_up(tmp_path, endpoint):
    from tests.config.test_settings import _run_manage

    result = _run_manage(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://x@127.0.0.1/x",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
        },
        "check",
    )
    assert result.returncode != 0
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http" in result.stderr
