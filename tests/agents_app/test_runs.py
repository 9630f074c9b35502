from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.test import override_settings

from accounts_app.exceptions import InsufficientCreditsError, PermissionDeniedError
from accounts_app.models import CreditAccount, CreditReservation, LedgerEntry
from accounts_app.services import credits_release_stale_reservations
from agents_app.exceptions import InvalidInputError, NotFoundError
from agents_app.models import AgentRun, Conversation, ConversationItem
from agents_app.runs.background import fail_abandoned_runs, resume_queued_run
from agents_app.runs.execution import execute_run, stream_run
from agents_app.runs.lifecycle import end_run, start_run
from agents_app.services import agent_create, context_create, handoff_add
from providers_app.clients import close_clients_for_running_loop
from tests.fakes import Error, Reply, ToolCall

pytestmark = pytest.mark.django_db(transaction=True)
start = async_to_sync(start_run)
end = async_to_sync(end_run)


def run_sync(actor, agent, message="Hello", **kwargs) -> AgentRun:
    active = start(actor=actor, agent_id=agent.pk, message=message, **kwargs)

    async def go():
        try:
            return await execute_run(active)
        finally:
            await close_clients_for_running_loop()

    return asyncio.run(go())


def collect_stream(actor, agent, message="Hello", *, stop_after=None, **kwargs):
    active = start(actor=actor, agent_id=agent.pk, message=message, mode="stream", **kwargs)

    async def go():
        events = []
        stream = stream_run(active)
        try:
            async for event in stream:
                events.append(event)
                if stop_after and event["event"] == stop_after:
                    break
        finally:
            await stream.aclose()
            await close_clients_for_running_loop()
        return events

    return asyncio.run(go()), active.run.pk


def balance(actor) -> Decimal:
    return CreditAccount.objects.get(workspace=actor.workspace).balance


def test_a_plain_run_records_everything_and_settles_credits(team, helper, fake_openai):
    fake_openai.script(Reply("Hi there!", usage=(100, 50)))
    run = run_sync(team, helper)
    assert (run.status, run.final_output, run.last_agent_name) == ("succeeded", "Hi there!", "Helper")
    totals = {"requests": 1, "input_tokens": 100, "output_tokens": 50, "total_tokens": 150}
    assert run.usage == {
        **totals,
        "agents": [
            {
                "agent_id": helper.pk,
                "agent": "Helper",
                "provider_id": helper.provider_id or run.provider_id,
                "provider_type": "custom",
                "model": "fake-model",
                **totals,
                "cost": "0.2",
            }
        ],
    }
    # 100 * 1000 / 1e6 + 50 * 2000 / 1e6 = 0.1 + 0.1
    assert run.cost == Decimal("0.2")
    assert balance(team) == Decimal("99.8")
    kinds = list(LedgerEntry.objects.filter(reservation_id=run.reservation_id).values_list("kind", flat=True))
    assert sorted(kinds) == ["reserve", "settle"]
    assert run.trace_id.startswith("trace_")
    assert run.duration_ms is not None
    assert [i["type"] if "type" in i else i["role"] for i in run.new_items] == ["message"]
    assert ConversationItem.objects.filter(conversation=run.conversation).count() == 2
    body = fake_openai.requests_to("/v1/chat/completions")[0].body
    assert body["messages"][0] == {"role": "system", "content": "You help."}
    assert body["model"] == "fake-model"


def test_multi_turn_memory_through_the_conversation(team, helper, fake_openai):
    fake_openai.script(Reply("Nice to meet you, Ada."), Reply("Your name is Ada."))
    first = run_sync(team, helper, "My name is Ada.")
    second = run_sync(team, helper, "What is my name?", conversation_id=first.conversation_id)
    assert second.conversation_id == first.conversation_id
    messages = fake_openai.requests_to("/v1/chat/completions")[1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "Ada" in json.dumps(messages[1])
    assert "Nice to meet you, Ada." in json.dumps(messages[2])


def test_context_is_injected_into_the_instructions(team, helper, fake_openai):
    context_create(actor=team, agent_id=helper.pk, name="customer", content={"plan": "gold", "name": "Ada"})
    other = context_create(actor=team, agent_id=helper.pk, name="other", content={"plan": "free"})
    run_sync(team, helper)
    run_sync(team, helper, context_id=other.pk)
    first, second = (r.body["messages"][0]["content"] for r in fake_openai.requests_to("/v1/chat/completions"))
    assert first.startswith("You help.\n\n# Context\n")
    assert '"plan": "gold"' in first
    assert '"plan": "free"' in second


def test_handoff_chain_and_cycle(team, fake_provider, fake_openai):
    a = agent_create(actor=team, name="Alpha", instructions="Route.")
    b = agent_create(actor=team, name="Beta", instructions="Answer.", handoff_description="Knows things")
    handoff_add(actor=team, agent_id=a.pk, target_id=b.pk)
    handoff_add(actor=team, agent_id=b.pk, target_id=a.pk)
    fake_openai.script(ToolCall("transfer_to_beta"), ToolCall("transfer_to_alpha"), Reply("Back at Alpha."))
    run = run_sync(team, a)
    assert (run.status, run.final_output, run.last_agent_name) == ("succeeded", "Back at Alpha.", "Alpha")
    requests = fake_openai.requests_to("/v1/chat/completions")
    assert [r.body["messages"][0]["content"] for r in requests] == ["Route.", "Answer.", "Route."]
    tools = [t["function"]["name"] for t in requests[1].body["tools"]]
    assert tools == ["transfer_to_alpha"]
    assert "Knows things" in json.dumps(requests[0].body["tools"])


def test_custom_handoff_tool_name(team, fake_provider, fake_openai):
    a = agent_create(actor=team, name="Alpha")
    b = agent_create(actor=team, name="Beta")
    handoff_add(actor=team, agent_id=a.pk, target_id=b.pk, tool_name="ask_beta", tool_description="Ask Beta.")
    fake_openai.script(ToolCall("ask_beta"), Reply("Beta here."))
    assert run_sync(team, a).last_agent_name == "Beta"
    tool = fake_openai.requests_to("/v1/chat/completions")[0].body["tools"][0]["function"]
    assert (tool["name"], tool["description"]) == ("ask_beta", "Ask Beta.")


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
    "required": ["city", "temp"],
    "additionalProperties": False,
}


def test_structured_output_that_validates(team, fake_provider, fake_openai):
    agent = agent_create(actor=team, name="Weather", output_type=SCHEMA)
    fake_openai.script(Reply(json.dumps({"city": "Oslo", "temp": -3.5})))
    run = run_sync(team, agent)
    assert (run.status, run.final_output) == ("succeeded", {"city": "Oslo", "temp": -3.5})
    sent = fake_openai.requests_to("/v1/chat/completions")[0].body["response_format"]
    assert sent["json_schema"]["schema"] == SCHEMA


def test_structured_output_that_fails_validation_is_a_clear_error(team, fake_provider, fake_openai):
    agent = agent_create(actor=team, name="Weather", output_type=SCHEMA)
    fake_openai.script(Reply(json.dumps({"city": "Oslo", "temp": "cold"})))
    before = balance(team)
    run = run_sync(team, agent)
    assert (run.status, run.error_code) == ("failed", "output_invalid")
    assert "does not match the output schema at temp" in run.error
    assert balance(team) == before  # refunded


def test_no_credits_is_refused_before_anything_runs(team, helper, fake_openai):
    CreditAccount.objects.filter(workspace=team.workspace).update(balance=0)
    with pytest.raises(InsufficientCreditsError) as info:
        start(actor=team, agent_id=helper.pk, message="Hi")
    assert info.value.status_code == 402
    assert not AgentRun.objects.exists()
    assert not Conversation.objects.exists()
    assert not CreditReservation.objects.exists()
    assert fake_openai.requests == []


def test_a_run_that_outlives_its_reservation_is_recorded_and_not_charged_twice(team, helper, fake_openai, caplog):
    fake_openai.script(Reply("Late", usage=(100, 50)))
    active = start(actor=team, agent_id=helper.pk, message="Hi")
    assert credits_release_stale_reservations(older_than=timedelta(0)) == 1  # the sweeper gave the credits back
    before = balance(team)

    async def go():
        try:
            return await execute_run(active)
        finally:
            await close_clients_for_running_loop()

    run = asyncio.run(go())
    assert (run.status, run.final_output) == ("succeeded", "Late")
    assert balance(team) == before  # the refund stands; nothing is taken or given twice
    kinds = sorted(LedgerEntry.objects.filter(reservation_id=run.reservation_id).values_list("kind", flat=True))
    assert kinds == ["refund", "reserve"]
    assert "its cost was not charged" in caplog.text
    assert ConversationItem.objects.filter(conversation=run.conversation).count() == 2


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.parametrize(("async_start", "inside"), [(True, "off"), (False, "on")])
def test_a_run_start_commits_asynchronously_only_when_set_and_only_itself(team, helper, async_start, inside):
    with override_settings(RUN_START_ASYNC_COMMIT=async_start):
        with transaction.atomic():  # to look at the setting before the statement's transaction ends
            start(actor=team, agent_id=helper.pk, message="Hi")
            assert _synchronous_commit() == inside
        start(actor=team, agent_id=helper.pk, message="Hi")  # its own transaction, as in production
    assert _synchronous_commit() == "on"  # never left on the (pooled) connection
    assert AgentRun.objects.count() == 2


def test_finishing_twice_changes_nothing_the_second_time(team, helper, fake_openai):
    fake_openai.script(Reply("Once", usage=(100, 50)))
    run = run_sync(team, helper)
    active = start(actor=team, agent_id=helper.pk, message="Again", conversation_id=run.conversation_id)
    active.run.pk, active.run.reservation_id = run.pk, run.reservation_id  # the first run, finished
    again = end(active, result=None, error=RuntimeError("late failure"))
    assert (again.status, again.final_output) == ("succeeded", "Once")
    kinds = sorted(LedgerEntry.objects.filter(reservation_id=run.reservation_id).values_list("kind", flat=True))
    assert kinds == ["reserve", "settle"]
    assert ConversationItem.objects.filter(conversation=run.conversation).count() == 2


def test_a_provider_failure_fails_the_run_and_refunds(team, helper, fake_openai):
    fake_openai.script(Error(401))
    before = balance(team)
    run = run_sync(team, helper)
    assert (run.status, run.error_code) == ("failed", "provider_auth_failed")
    assert "sk-fake" not in run.error
    assert balance(team) == before
    kinds = sorted(LedgerEntry.objects.filter(reservation_id=run.reservation_id).values_list("kind", flat=True))
    assert kinds == ["refund", "reserve"]


def test_max_turns_bounds_a_ping_pong(team, fake_provider, fake_openai):
    a = agent_create(actor=team, name="Alpha", max_turns=3)
    b = agent_create(actor=team, name="Beta")
    handoff_add(actor=team, agent_id=a.pk, target_id=b.pk)
    handoff_add(actor=team, agent_id=b.pk, target_id=a.pk)
    fake_openai.script(*[ToolCall("transfer_to_beta"), ToolCall("transfer_to_alpha")] * 3)
    run = run_sync(team, a)
    assert (run.status, run.error_code) == ("failed", "max_turns_exceeded")
    assert len(fake_openai.requests_to("/v1/chat/completions")) == 3


def test_streaming_event_order(team, fake_provider, fake_openai):
    a = agent_create(actor=team, name="Alpha")
    b = agent_create(actor=team, name="Beta")
    handoff_add(actor=team, agent_id=a.pk, target_id=b.pk)
    fake_openai.script(ToolCall("transfer_to_beta"), Reply("Streamed from Beta", usage=(10, 3)))
    events, run_id = collect_stream(team, a)
    names = [e["event"] for e in events]
    assert names[0] == "run"
    assert names[-1] == "done"
    assert names.index("handoff") < names.index("text")
    assert "".join(e["data"]["delta"] for e in events if e["event"] == "text") == "Streamed from Beta"
    assert [e["data"]["name"] for e in events if e["event"] == "agent"] == ["Alpha", "Beta"]
    done = events[-1]["data"]
    assert (done["status"], done["output"], done["run_id"]) == ("succeeded", "Streamed from Beta", str(run_id))
    assert (done["usage"]["requests"], done["usage"]["output_tokens"]) == (2, 1 + 3)  # handoff call + answer


def test_a_stream_error_is_reported_then_done(team, helper, fake_openai):
    fake_openai.script(Error(500), Error(500), Error(500), Error(500))
    with override_settings(PROVIDER_MAX_RETRIES=0):
        events, run_id = collect_stream(team, helper)
    assert [e["event"] for e in events] == ["run", "agent", "error", "done"]
    assert events[2]["data"]["code"] == "provider_server_error"
    assert AgentRun.objects.get(pk=run_id).status == "failed"


def test_abandoning_the_stream_cancels_the_run(team, helper, fake_openai):
    fake_openai.script(Reply("a b c d e f g h i j", chunk_delay=0.05))
    before = balance(team)
    _, run_id = collect_stream(team, helper, stop_after="text")
    run = AgentRun.objects.get(pk=run_id)
    assert (run.status, run.error_code) == ("cancelled", "cancelled")
    assert balance(team) == before
    assert len(fake_openai.requests_to("/v1/chat/completions")) == 1


def test_rules(team, viewer, outsider, helper):
    with pytest.raises(InvalidInputError):
        start(actor=team, agent_id=helper.pk, message="   ")
    with pytest.raises(PermissionDeniedError):
        start(actor=viewer, agent_id=helper.pk, message="Hi")
    with pytest.raises(NotFoundError):
        start(actor=outsider, agent_id=helper.pk, message="Hi")
    other = agent_create(actor=team, name="Other")
    run = start(actor=team, agent_id=helper.pk, message="Hi").run
    with pytest.raises(NotFoundError):
        start(actor=team, agent_id=other.pk, message="Hi", conversation_id=run.conversation_id)
    assert AgentRun.objects.count() == 1


def test_a_run_with_a_tool_call_to_another_agent(team, fake_provider, fake_openai):
    researcher = agent_create(actor=team, name="Researcher", instructions="Find facts.")
    writer = agent_create(
        actor=team,
        name="Writer",
        instructions="Write.",
        tools=[
            {
                "type": "agent",
                "name": "research",
                "description": "Look things up.",
                "params": {"agent_id": researcher.pk},
            }
        ],
    )
    fake_openai.script(
        ToolCall("research", {"input": "capital of Norway"}),  # the writer calls its tool
        Reply("Oslo is the capital of Norway."),  # the researcher answers inside the tool
        Reply("Fact: Oslo."),  # the writer writes the final answer
    )
    run = run_sync(team, writer)
    assert (run.status, run.final_output, run.last_agent_name) == ("succeeded", "Fact: Oslo.", "Writer")
    requests = fake_openai.requests_to("/v1/chat/completions")
    assert [r.body["messages"][0]["content"] for r in requests] == ["Write.", "Find facts.", "Write."]
    tool = requests[0].body["tools"][0]["function"]
    assert (tool["name"], tool["description"]) == ("research", "Look things up.")
    assert "Oslo is the capital of Norway." in json.dumps(requests[2].body["messages"])
    assert run.usage["requests"] == 3
    kinds = [i.get("type") for i in run.new_items]
    assert "function_call" in kinds
    assert "function_call_output" in kinds


def test_agent_tools_are_validated(team, fake_provider, outsider):
    foreign = agent_create(actor=outsider, name="Foreign")
    for tools in (
        [{"type": "agent", "name": "t", "params": {"agent_id": foreign.pk}}],
        [{"type": "agent", "name": "t", "params": {"agent_id": "x"}}],
        [{"type": "agent", "name": "t", "params": {"agent_id": 999999}}],
        [{"type": "agent", "agent_id": foreign.pk}],
    ):
        with pytest.raises(InvalidInputError) as info:
            agent_create(actor=team, name="T", tools=tools)
        assert any(field.startswith("tools") for field in info.value.fields)


def test_finishing_twice_moves_credits_once(team, helper, fake_openai):
    fake_openai.script(Reply("Done.", usage=(10, 10)))
    active = start(actor=team, agent_id=helper.pk, message="Hi")

    async def go():
        try:
            return await execute_run(active)
        finally:
            await close_clients_for_running_loop()

    run = asyncio.run(go())
    after_first = balance(team)
    again = end(active, result=None, cancelled=True)  # a late cancel after the run finished
    assert (again.status, AgentRun.objects.get(pk=run.pk).status) == ("succeeded", "succeeded")
    assert balance(team) == after_first
    kinds = sorted(LedgerEntry.objects.filter(reservation_id=run.reservation_id).values_list("kind", flat=True))
    assert kinds == ["reserve", "settle"]


def test_failed_turns_are_not_remembered(team, helper, fake_openai):
    fake_openai.script(Reply("First answer."), Error(400), Reply("Third answer."))
    first = run_sync(team, helper, "one")
    failed = run_sync(team, helper, "two", conversation_id=first.conversation_id)
    assert failed.status == "failed"
    run_sync(team, helper, "three", conversation_id=first.conversation_id)
    messages = fake_openai.requests_to("/v1/chat/completions")[2].body["messages"]
    contents = [json.dumps(m.get("content")) for m in messages]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert not any('"two"' in c for c in contents)
    assert ConversationItem.objects.filter(conversation=first.conversation).count() == 4


def test_a_background_run_continues_a_conversation(team, helper, fake_openai, monkeypatch):
    from agents_app.tasks import agent_run_execute

    monkeypatch.setattr(agent_run_execute, "delay", lambda **kwargs: None)
    fake_openai.script(Reply("Noted: blue."), Reply("You said blue."))
    first = run_sync(team, helper, "My colour is blue.")
    queued = start(
        actor=team, agent_id=helper.pk, message="What colour?", mode="background", conversation_id=first.conversation_id
    ).run
    assert agent_run_execute.run(run_id=queued.pk) == "succeeded"
    messages = fake_openai.requests_to("/v1/chat/completions")[1].body["messages"]
    assert "blue" in json.dumps(messages[1])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


@override_settings(RUN_TIMEOUT_SECONDS=1)
def test_a_run_is_stopped_at_its_timeout_and_refunded(team, helper, fake_openai):
    fake_openai.script(Reply("Too slow.", delay=4))
    before = balance(team)
    run = run_sync(team, helper)
    assert (run.status, run.error_code) == ("failed", "run_timeout")
    assert "longer than 1 s (RUN_TIMEOUT_SECONDS)" in run.error
    assert balance(team) == before


@override_settings(RUN_TIMEOUT_SECONDS=1)
def test_a_streamed_run_is_stopped_at_its_timeout(team, helper, fake_openai):
    fake_openai.script(Reply("Too slow to finish.", chunk_delay=0.4))
    before = balance(team)
    events, run_id = collect_stream(team, helper)
    names = [event["event"] for event in events]
    assert names[-2:] == ["error", "done"]
    assert events[-2]["data"]["code"] == "run_timeout"
    run = AgentRun.objects.get(pk=run_id)
    assert (run.status, run.error_code) == ("failed", "run_timeout")
    assert balance(team) == before


def test_abandoned_runs_are_failed_and_refunded(team, helper, fake_openai, monkeypatch):
    from agents_app.tasks import agent_run_execute, runs_fail_abandoned

    monkeypatch.setattr(agent_run_execute, "delay", lambda **kwargs: None)
    initial = balance(team)
    running = start(actor=team, agent_id=helper.pk, message="Hi").run  # its process will "die"
    queued = start(actor=team, agent_id=helper.pk, message="Hi", mode="background").run
    recent = start(actor=team, agent_id=helper.pk, message="Hi").run
    fake_openai.script(Reply("Done."))
    done = run_sync(team, helper)
    old = done.created_at - timedelta(hours=2)
    AgentRun.objects.exclude(pk=recent.pk).update(created_at=old)
    assert runs_fail_abandoned.run() == 2
    rows = {run.pk: run for run in AgentRun.objects.all()}
    assert (rows[running.pk].status, rows[running.pk].error_code) == ("failed", "abandoned")
    assert "server process ended" in rows[running.pk].error
    assert "No worker started the run" in rows[queued.pk].error
    assert rows[recent.pk].status == "running"
    assert rows[done.pk].status == "succeeded"
    refunded = CreditReservation.objects.filter(pk__in=[running.reservation_id, queued.reservation_id])
    assert set(refunded.values_list("status", flat=True)) == {"refunded"}
    held = CreditReservation.objects.get(pk=recent.reservation_id or 0).amount  # the live run keeps its own
    assert balance(team) == initial - done.cost - held
    assert fail_abandoned_runs() == 0  # nothing twice
    late = end(resume_queued_run(rows[running.pk]), result=None)
    assert late.error_code == "abandoned"  # a swept run cannot be finished later


def test_a_runs_end_can_update_it_in_place(team, helper):
    # A run's row is written twice; its end may stay on the row's page without touching any index (a HOT
    # update) only if no indexed column changes and the page has room: both are properties of the table.
    from agents_app.runs.statements import END_FIELDS

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT i.relname, array_agg(a.attname ORDER BY a.attname)
               FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)
               WHERE x.indrelid = 'agents_app_agentrun'::regclass GROUP BY i.relname"""
        )
        indexed = {column for _, columns in cursor.fetchall() for column in columns}
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = 'agents_app_agentrun'::regclass")
        options = cursor.fetchone()[0]
    written_at_end = {AgentRun._meta.get_field(name).column for name in END_FIELDS}
    assert indexed & written_at_end == set()
    assert indexed == {
        "id",
        "workspace_id",
        "agent_id",
        "created_at",
        "conversation_id",
        "created_by_id",
        "provider_id",
        "reservation_id",
    }
    assert "fillfactor=70" in options
