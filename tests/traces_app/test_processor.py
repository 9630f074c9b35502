"""The trace processor: every run's trace and spans land in Postgres, complete, and never at a run's expense."""

from __future__ import annotations

import json

import pytest
from agents import flush_traces

from agents_app.services import agent_create, handoff_add
from tests.agents_app.test_runs import run_sync
from tests.fakes import Reply, ToolCall
from traces_app.models import Span, Trace

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_with_a_tool_call_and_a_handoff_leaves_its_span_tree(team, fake_provider, fake_openai):
    researcher = agent_create(actor=team, name="Researcher", instructions="Find facts.")
    writer = agent_create(
        actor=team,
        name="Writer",
        instructions="Write.",
        tools=[{"type": "agent", "name": "research", "params": {"agent_id": researcher.pk}}],
    )
    editor = agent_create(actor=team, name="Editor", instructions="Edit.")
    handoff_add(actor=team, agent_id=writer.pk, target_id=editor.pk)
    fake_openai.script(
        ToolCall("research", {"input": "capital of Norway"}),
        Reply("Oslo.", usage=(7, 2)),
        ToolCall("transfer_to_editor"),
        Reply("Oslo is the capital.", usage=(11, 5)),
    )
    run = run_sync(team, writer)
    assert run.status == "succeeded"
    flush_traces()
    trace = Trace.objects.get(trace_id=run.trace_id)
    assert (trace.workspace_id, trace.run_id, trace.agent_id, trace.status) == (
        team.workspace.pk,
        run.pk,
        writer.pk,
        "ok",
    )
    assert trace.name == "Writer"
    assert trace.ended_at is not None
    assert trace.duration_ms is not None
    spans = {s.span_id: s for s in Span.objects.filter(trace=trace)}
    assert trace.span_count == len(spans)
    kinds = sorted(s.kind for s in spans.values())
    assert kinds.count("generation") == 4
    assert "function" in kinds
    assert "handoff" in kinds
    by_kind = {s.kind: s for s in spans.values()}
    tool = by_kind["function"]
    assert tool.name == "research"
    assert json.loads(tool.data["input"]) == {"input": "capital of Norway"}
    assert tool.data["output"] == "Oslo."
    assert by_kind["handoff"].name == "Writer → Editor"
    # Parents: every span but the root agents has its parent in the trace; the tool's agent span is its parent.
    for span in spans.values():
        assert span.parent_id == "" or span.parent_id in spans
    ancestor = spans[tool.parent_id]
    while ancestor.kind != "agent":  # the SDK puts turn spans (custom) between an agent and its calls
        ancestor = spans[ancestor.parent_id]
    assert ancestor.name == "Writer"
    researcher_agent = next(s for s in spans.values() if s.kind == "agent" and s.name == "Researcher")
    parent = spans[researcher_agent.parent_id]
    while parent.span_id != tool.span_id and parent.parent_id:
        parent = spans[parent.parent_id]
    assert parent.span_id == tool.span_id  # the agent used as a tool runs inside its function span
    for span in spans.values():
        assert span.started_at is not None
        assert span.ended_at is not None
        assert span.started_at <= span.ended_at
    generations = [s for s in spans.values() if s.kind == "generation"]
    assert sum(s.input_tokens for s in generations) == trace.input_tokens
    assert trace.output_tokens == sum(s.output_tokens for s in generations)
    assert any(g.data["output"] and "Oslo is the capital." in json.dumps(g.data["output"]) for g in generations)
    assert any(g.data["input"][0] == {"role": "system", "content": "Write."} for g in generations)


def test_a_provider_key_in_instructions_or_tool_arguments_is_not_stored(team, fake_provider, fake_openai):
    key = "sk-fake-0123456789"  # the provider's key: too short for the key patterns, known to the run
    stranger = "sk-proj-" + "a1B2" * 8  # not a key of this workspace, but shaped like one
    leaky = agent_create(
        actor=team,
        name="Leaky",
        instructions=f"Use the key {key} when asked.",
        tools=[{"type": "agent", "name": "lookup", "params": {"agent_id": agent_create(actor=team, name="Tool").pk}}],
    )
    fake_openai.script(ToolCall("lookup", {"input": f"{key} and {stranger}"}), Reply("ok"), Reply(f"Done {key}"))
    run = run_sync(team, leaky, f"My other key is {stranger}")
    flush_traces()
    stored = json.dumps([[s.data, s.error] for s in Span.objects.filter(trace_id=run.trace_id)])
    stored += json.dumps(list(Trace.objects.filter(trace_id=run.trace_id).values_list("metadata", flat=True)))
    assert Span.objects.filter(trace_id=run.trace_id).count() > 3
    assert key not in stored
    assert stranger not in stored
    assert "[redacted]" in stored


def test_a_failing_span_write_never_fails_the_run(team, helper, fake_openai, monkeypatch, caplog):
    from traces_app import processor

    monkeypatch.setattr(processor, "_SPAN_TABLE", "no_such_table")
    fake_openai.script(Reply("Still fine."))
    run = run_sync(team, helper)
    flush_traces()
    assert (run.status, run.final_output) == ("succeeded", "Still fine.")
    assert "Could not store" in caplog.text
    assert not Span.objects.filter(trace_id=run.trace_id).exists()
    # The writer may have stored the trace's start before the spans came: then it is ended, as an error.
    stored = Trace.objects.filter(trace_id=run.trace_id).first()
    assert stored is None or (stored.status, stored.ended_at is not None) == ("error", True)
    monkeypatch.undo()
    fake_openai.script(Reply("Stored again."))
    later = run_sync(team, helper)
    flush_traces()
    assert Trace.objects.get(trace_id=later.trace_id).status == "ok"  # the writer goes on


def test_a_trace_stored_before_a_failed_write_ends_as_an_error(team, monkeypatch, caplog):
    from agents import custom_span, trace

    from traces_app import processor

    with trace("Ends in a failed batch", metadata={"workspace_id": str(team.workspace.pk)}) as first:
        flush_traces()
        assert Trace.objects.get(trace_id=first.trace_id).status == "running"
        monkeypatch.setattr(processor, "_SPAN_TABLE", "no_such_table")
        with custom_span("step"):
            pass
    flush_traces()
    monkeypatch.undo()
    ended = Trace.objects.get(trace_id=first.trace_id)
    assert (ended.status, ended.ended_at is not None, ended.span_count) == ("error", True, 0)

    with trace("Loses a span, then ends", metadata={"workspace_id": str(team.workspace.pk)}) as second:
        flush_traces()
        monkeypatch.setattr(processor, "_SPAN_TABLE", "no_such_table")
        with custom_span("lost"):
            pass
        flush_traces()
        monkeypatch.undo()
        with custom_span("kept"):
            pass
    flush_traces()
    partial = Trace.objects.get(trace_id=second.trace_id)
    assert (partial.status, partial.span_count) == ("error", 1)  # not "ok": a span of it is missing
    assert list(Span.objects.filter(trace=partial).values_list("name", flat=True)) == ["kept"]
    assert caplog.text.count("Could not store") == 2


def test_a_trace_deleted_while_it_runs_loses_only_its_own_items(team, caplog):
    """Retention or a deleted workspace can remove a trace's row while its run still writes spans: that
    trace's late items are dropped, the other runs' traces that share their batch are stored."""
    from agents.tracing import CustomSpanData
    from agents.tracing.provider import DefaultTraceProvider

    from traces_app.processor import PostgresTraceProcessor

    writer = PostgresTraceProcessor(flush_interval=60)  # writes only when flushed: one batch below
    provider = DefaultTraceProvider()
    provider.register_processor(writer)
    metadata = {"workspace_id": str(team.workspace.pk)}
    doomed = provider.create_trace("Doomed", metadata=metadata)
    doomed.start()
    writer.force_flush()
    Trace.objects.filter(trace_id=doomed.trace_id).delete()

    late = provider.create_span(CustomSpanData(name="late", data={}), parent=doomed)
    other = provider.create_trace("Other", metadata=metadata)
    other.start()
    kept = provider.create_span(CustomSpanData(name="kept", data={}), parent=other)
    for span in (late, kept):
        span.start()
        span.finish()
    other.finish()
    doomed.finish()
    writer.force_flush()

    stored = Trace.objects.get(trace_id=other.trace_id)
    assert (stored.status, stored.span_count) == ("ok", 1)
    assert list(Span.objects.filter(trace=stored).values_list("name", flat=True)) == ["kept"]
    assert not Trace.objects.filter(trace_id=doomed.trace_id).exists()
    assert "Could not store the trace items of " + doomed.trace_id in caplog.text


def test_a_full_queue_drops_items_and_counts_them():
    import threading

    from traces_app.processor import PostgresTraceProcessor, _Item

    release = threading.Event()
    written: list[int] = []
    processor = PostgresTraceProcessor(max_queue_size=2, flush_interval=0.01)

    def slow_write(items: list) -> None:
        release.wait(5)
        written.append(len(items))

    processor.write = slow_write  # type: ignore[method-assign]
    for _ in range(10):
        processor._put(_Item("span", None, 0.0))
    assert processor.dropped >= 5  # the writer holds what it took; the queue holds two
    release.set()
    processor.force_flush()
    assert sum(written) + processor.dropped == 10


def test_runs_outside_the_platform_are_not_stored(fake_openai):
    import asyncio

    from agents import Agent, Runner
    from agents.testing import ScriptedModel, assistant_message

    model = ScriptedModel([[assistant_message("Hi")]])
    asyncio.run(Runner.run(Agent(name="Bare", model=model), "Hello"))
    flush_traces()
    assert not Trace.objects.exists()


def test_runs_inside_a_workflow_trace_are_grouped_under_it(team, helper, fake_openai):
    from agents import custom_span, trace

    from agents_app.runs.execution import execute_run
    from agents_app.runs.lifecycle import start_run
    from providers_app.clients import close_clients_for_running_loop

    fake_openai.script(Reply("Step one done."), Reply("Step two done."))

    async def workflow() -> list:
        runs = []
        with trace("Workflow", metadata={"workspace_id": str(team.workspace.pk), "workflow_run_id": "7"}):
            for step in ("one", "two"):
                with custom_span(f"step {step}"):
                    active = await start_run(actor=team, agent_id=helper.pk, message=f"Do {step}")
                    runs.append(await execute_run(active))
        await close_clients_for_running_loop()
        return runs

    from asgiref.sync import async_to_sync

    runs = async_to_sync(workflow)()
    flush_traces()
    grouped = Trace.objects.get()
    assert (grouped.name, grouped.workflow_run_id, grouped.status) == ("Workflow", 7, "ok")
    assert {run.trace_id for run in runs} == {grouped.trace_id}
    spans = {s.span_id: s for s in Span.objects.filter(trace=grouped)}
    steps = [s for s in spans.values() if s.kind == "custom" and s.name.startswith("step")]
    assert sorted(s.name for s in steps) == ["step one", "step two"]
    agents = [s for s in spans.values() if s.kind == "agent"]
    assert len(agents) == 2

    def step_of(span):
        while not span.name.startswith("step"):
            span = spans[span.parent_id]  # the SDK's task span sits between a step and its agent
        return span.name

    assert {step_of(a) for a in agents} == {"step one", "step two"}


@pytest.mark.parametrize(
    ("value", "max_chars"),
    [
        ({"text": "short", "n": 1}, 0),
        ({"text": "x" * 500, "nested": [{"deep": "y" * 300}]}, 100),
        ({"text": "a NUL \x00 here", "literal": "\\u0000 is not one"}, 0),
        ({"quote": 'key "sk-quoted-0123456789ab" end', "tab": '\tk3y"with\\escapes'}, 0),
    ],
)
def test_json_redaction_equals_the_value_walk(value, max_chars):
    from traces_app.redaction import redact, redact_json

    secrets = ('k3y"with\\escapes',)
    assert json.loads(redact_json(value, secrets, max_chars=max_chars)) == redact(value, secrets, max_chars=max_chars)


def test_a_trace_written_over_several_batches_gets_its_totals(team, helper, fake_openai):
    fake_openai.script(Reply("Slow.", usage=(3, 4), delay=1.2))  # longer than the writer's flush interval
    run = run_sync(team, helper)
    flush_traces()
    trace = Trace.objects.get(trace_id=run.trace_id)
    spans = list(Span.objects.filter(trace=trace))
    assert trace.span_count == len(spans)
    assert len(spans) >= 3
    assert (trace.status, trace.error_count) == ("ok", 0)
    assert (trace.input_tokens, trace.output_tokens) == (3, 4)
    assert (trace.duration_ms or 0) >= 1000


def test_a_failed_run_leaves_an_error_trace(team, helper, fake_openai):
    fake_openai.script(ToolCall("no_such_tool"))
    run = run_sync(team, helper)
    assert run.status == "failed"
    flush_traces()
    trace = Trace.objects.get(trace_id=run.trace_id)
    errors = [s for s in Span.objects.filter(trace=trace) if s.error is not None]
    assert (trace.status, trace.error_count) == ("error", len(errors))
    assert errors
    assert "no_such_tool" in json.dumps([s.error for s in errors])


def test_an_openai_responses_run_keeps_its_model_input_and_output(team, fake_openai):
    from django.test import override_settings

    from providers_app.services import provider_create

    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider = provider_create(
            actor=team,
            type="openai",
            name="OpenAI (fake)",
            api_key="sk-test-responses-0123456789",
            base_url=fake_openai.base_url,
            models=["gpt-fake"],
        )
        agent = agent_create(actor=team, name="Responder", instructions="Answer briefly.", provider_id=provider.pk)
        fake_openai.script(Reply("Responses API answer.", usage=(6, 3)))
        run = run_sync(team, agent, "Use the Responses API")
    flush_traces()
    assert fake_openai.requests_to("/v1/responses")  # the OpenAI provider calls the Responses API
    response = Span.objects.get(trace_id=run.trace_id, kind="response")
    assert (response.input_tokens, response.output_tokens) == (6, 3)
    assert "Use the Responses API" in json.dumps(response.data["input"])
    assert "Responses API answer." in json.dumps(response.data["output"])
    assert response.name == response.data["model"]
    assert "sk-test-responses-0123456789" not in json.dumps(response.data)


def test_guardrail_verdicts_and_mcp_listings_are_stored_in_the_runs_tree(team, helper, fake_openai, monkeypatch):
    """The platform does not run guardrails or MCP servers yet (a later issue); the SDK's spans for them are
    stored like any other: here a guardrail added to the run's SDK agent, and an MCP listing inside the run."""
    from agents import GuardrailFunctionOutput, InputGuardrail, mcp_tools_span

    from agents_app.runs import execution

    def polite(context, agent, message):
        with mcp_tools_span(server="files", result=["read_file"]):
            pass
        return GuardrailFunctionOutput(output_info={"checked": True}, tripwire_triggered=False)

    build = execution.build_sdk_graph
    monkeypatch.setattr(
        execution,
        "build_sdk_graph",
        lambda graph, resolve: build(graph, resolve).clone(
            input_guardrails=[InputGuardrail(guardrail_function=polite, name="polite")]
        ),
    )
    fake_openai.script(Reply("Guarded answer."))
    run = run_sync(team, helper)
    assert run.status == "succeeded"
    flush_traces()
    spans = {s.span_id: s for s in Span.objects.filter(trace_id=run.trace_id)}
    guardrail = next(s for s in spans.values() if s.kind == "guardrail")
    assert (guardrail.name, guardrail.data["triggered"]) == ("polite", False)
    listing = next(s for s in spans.values() if s.kind == "mcp_tools")
    assert (listing.name, listing.data["result"]) == ("files", ["read_file"])
    agent = spans[guardrail.parent_id]
    while agent.kind != "agent":
        agent = spans[agent.parent_id]
    assert agent.name == "Helper"
