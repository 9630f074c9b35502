"""Guardrails through the HTTP API and the real runtime (the fake model server counts every request): regex,
agent judges and functions (sandboxed code or an endpoint), on input and on output, blocking and passing, with
their verdicts on the run, its trace and its stream."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from agents import flush_traces

from accounts_app.models import CreditAccount
from accounts_app.services import api_token_create
from agents_app.models import AgentRun, Conversation
from tests.conftest import streamed_run_events
from tests.fakes import Reply, ToolCall
from traces_app.models import Span

pytestmark = pytest.mark.django_db(transaction=True)

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"tripwire_triggered": {"type": "boolean"}, "message": {"type": "string"}},
    "required": ["tripwire_triggered"],
}


def balance(actor) -> Decimal:
    return CreditAccount.objects.get(workspace=actor.workspace).balance


def model_requests(fake_openai) -> list[Any]:
    return fake_openai.requests_to("/v1/chat/completions")


def make_agent(api, name: str = "Guarded", **fields: Any) -> dict[str, Any]:
    response = api("POST", "/agents", {"name": name, "instructions": "Answer.", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def regex(name: str = "no_card", pattern: str = r"\b\d{4}-\d{4}-\d{4}-\d{4}\b", **config: Any) -> dict[str, Any]:
    return {"name": name, "implementation": "regex", "config": {"pattern": pattern, **config}}


def run(api, agent: dict[str, Any], message: str, **body: Any):
    return api("POST", f"/agents/{agent['id']}/run", {"message": message, **body})


def test_a_tripped_input_guardrail_stops_the_run_before_any_model_request(api, team, fake_provider, fake_openai):
    agent = make_agent(api, input_guardrails=[regex(message="Card numbers are not accepted here.")])
    before = balance(team)
    response = run(api, agent, "Charge 4111-1111-1111-1111 please")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "blocked"
    assert body["output"] == "Card numbers are not accepted here."
    triggered = body["guardrail_triggered"]
    assert (triggered["type"], triggered["name"], triggered["implementation"]) == ("input", "no_card", "regex")
    assert triggered["output_info"] == {"matched": "4111-1111-1111-1111"}
    assert model_requests(fake_openai) == []  # nothing reached the model
    assert balance(team) == before  # and nothing was charged
    stored = AgentRun.objects.get(pk=body["run_id"])
    assert (stored.status, stored.cost, stored.guardrails[0]["tripwire_triggered"]) == ("blocked", 0, True)
    # The blocked message is not in the conversation: a later turn must not send it to the model.
    assert not Conversation.objects.get(pk=body["conversation_id"]).items.exists()
    flush_traces()
    span = Span.objects.get(trace_id=body["trace_id"], kind="guardrail")
    assert span.data["triggered"] is True
    verdict = Span.objects.get(trace_id=body["trace_id"], kind="custom", name="guardrail verdict")
    assert verdict.data["data"]["output_info"] == {"matched": "4111-1111-1111-1111"}


def test_a_passing_input_guardrail_lets_the_run_go_on_and_records_its_verdict(api, fake_provider, fake_openai):
    agent = make_agent(api, input_guardrails=[regex("no_password", "password", ignore_case=True)])
    fake_openai.script(Reply("Hello."))
    body = run(api, agent, "Hi there").json()
    assert (body["status"], body["output"], body["guardrail_triggered"]) == ("succeeded", "Hello.", None)
    assert [(v["name"], v["tripwire_triggered"]) for v in body["guardrails"]] == [("no_password", False)]
    assert len(model_requests(fake_openai)) == 1
    blocked = run(api, agent, "my PASSWORD is hunter2").json()
    assert blocked["status"] == "blocked"  # ignore_case
    assert blocked["output"] == "This message was blocked by the no_password guardrail."  # no message given
    detail = api("GET", f"/runs/{blocked['run_id']}").json()
    assert detail["status"] == "blocked"
    assert detail["guardrails"][0]["tripwire_triggered"] is True
    assert [r["id"] for r in api("GET", f"/agents/{agent['id']}/runs?status=blocked").json()["items"]] == [
        int(blocked["run_id"])
    ]


def test_a_tripped_output_guardrail_replaces_the_answer_everywhere_it_is_kept(api, team, fake_provider, fake_openai):
    guard = regex("no_secret", "(?i)secret", replacement="[withheld]")
    agent = make_agent(api, output_guardrails=[guard])
    fake_openai.script(Reply("The secret is XYZZY.", usage=(10, 5)))
    before = balance(team)
    body = run(api, agent, "Tell me").json()
    assert (body["status"], body["output"]) == ("blocked", "[withheld]")
    assert body["guardrail_triggered"]["output_info"] == {"matched": "secret"}
    assert "XYZZY" not in json.dumps(body)
    assert Decimal(body["cost"]) > 0
    assert balance(team) == before - Decimal(body["cost"])
    items = [i.data for i in Conversation.objects.get(pk=body["conversation_id"]).items.all()]
    assert items == [{"role": "user", "content": "Tell me"}, {"role": "assistant", "content": "[withheld]"}]
    fake_openai.script(Reply("Fine."))
    assert run(api, agent, "Again", conversation_id=body["conversation_id"]).json()["status"] == "succeeded"
    sent = model_requests(fake_openai)[-1].body["messages"]
    assert "XYZZY" not in json.dumps(sent)
    assert "[withheld]" in json.dumps(sent)


def test_a_streamed_answer_is_held_until_the_output_guardrails_pass(api, team, fake_provider, fake_openai, asgi_server):
    agent = make_agent(api, output_guardrails=[regex("no_secret", "secret")])
    token = api_token_create(actor=team, name="stream").raw
    fake_openai.script(Reply("the secret is 42", chunk_delay=0.01))
    events = streamed_run_events(asgi_server, agent["id"], token, message="Tell me")
    names = [name for name, _ in events]
    assert "text" not in names  # not a word of the blocked answer went out
    assert names[-2:] == ["guardrail", "done"]
    assert events[-2][1]["name"] == "no_secret"
    assert (events[-1][1]["status"], events[-1][1]["output"]) == ("blocked", events[-2][1]["message"])
    fake_openai.script(Reply("all good here", chunk_delay=0.01))
    events = streamed_run_events(asgi_server, agent["id"], token, message="Again")
    text = "".join(data["delta"] for name, data in events if name == "text")
    assert text == "all good here"
    assert events[-1][1]["status"] == "succeeded"


def test_an_agent_judges_the_input_with_its_structured_output(api, team, fake_provider, fake_openai):
    judge = make_agent(api, "Judge", output_type=VERDICT_SCHEMA)
    guard = {"name": "on_topic", "implementation": "agent", "config": {"agent_id": judge["id"]}}
    agent = make_agent(api, input_guardrails=[guard])
    fake_openai.script(Reply('{"tripwire_triggered": true, "message": "Only questions about cooking."}'))
    body = run(api, agent, "Write my essay").json()
    assert (body["status"], body["output"]) == ("blocked", "Only questions about cooking.")
    requests = model_requests(fake_openai)
    assert len(requests) == 1
    assert "Write my essay" in json.dumps(requests[0].body["messages"])
    assert Decimal(body["cost"]) > 0  # the judge's request is paid for, as part of this run
    assert body["usage"]["agents"][0]["agent"] == "Judge"
    fake_openai.script(Reply('{"tripwire_triggered": false}'), Reply("Boil the pasta."))
    passed = run(api, agent, "How long for pasta?").json()
    assert (passed["status"], passed["output"]) == ("succeeded", "Boil the pasta.")
    assert passed["guardrails"][0]["output_info"] == {"tripwire_triggered": False}


def test_a_judge_without_a_verdict_schema_is_refused_when_saved_and_trips_when_it_answers_badly(
    api, fake_provider, fake_openai
):
    plain = make_agent(api, "Plain")
    guard = {"name": "j", "implementation": "agent", "config": {"agent_id": plain["id"]}}
    response = api("POST", "/agents", {"name": "Guarded", "output_guardrails": [guard]})
    assert response.status_code == 422
    assert "tripwire_triggered" in response.json()["errors"][0]["message"]
    judge = make_agent(api, "Judge", output_type=VERDICT_SCHEMA)
    agent = make_agent(api, output_guardrails=[{**guard, "config": {"agent_id": judge["id"]}}])
    fake_openai.script(Reply("Answer."), Reply("not json at all"))
    body = run(api, agent, "Hi").json()
    assert body["status"] == "blocked"  # a judge that cannot decide does not let the answer through
    assert "judging agent failed" in body["guardrail_triggered"]["error"]
    assert body["output"] == "The answer was withheld by the j guardrail."


GUARD_CODE = """
def main(input, context):
    bad = [w for w in context.get("banned", []) if w in input.lower()]
    return {"tripwire_triggered": bool(bad), "output_info": {"found": bad}, "message": "Mind your words."}
"""


def test_a_code_guardrail_runs_in_the_sandbox_with_the_input_and_the_run_context(api, team, fake_provider, fake_openai):
    guard = {
        "name": "words",
        "implementation": "function",
        "config": {"code": GUARD_CODE, "allow_code_execution": True},
    }
    agent = make_agent(api, input_guardrails=[guard])
    context = api("POST", f"/agents/{agent['id']}/contexts", {"name": "c", "content": {"banned": ["darn"]}}).json()
    body = run(api, agent, "Darn it", context_id=context["id"]).json()
    assert (body["status"], body["output"]) == ("blocked", "Mind your words.")
    assert body["guardrail_triggered"]["output_info"] == {"found": ["darn"]}
    assert model_requests(fake_openai) == []
    fake_openai.script(Reply("Sure."))
    assert run(api, agent, "Hello", context_id=context["id"]).json()["status"] == "succeeded"


def test_a_guardrail_that_fails_trips_with_its_error(api, fake_provider, fake_openai):
    code = "def main(input, context):\n    raise RuntimeError('boom')\n"
    guard = {"name": "broken", "implementation": "function", "config": {"code": code, "allow_code_execution": True}}
    agent = make_agent(api, input_guardrails=[guard])
    body = run(api, agent, "Hi").json()
    assert body["status"] == "blocked"
    assert "RuntimeError (line 2): boom" in body["guardrail_triggered"]["error"]
    assert "/work" not in json.dumps(body)
    assert "Traceback" not in json.dumps(body)
    assert model_requests(fake_openai) == []
    flush_traces()
    span = Span.objects.get(trace_id=body["trace_id"], kind="guardrail")
    assert "RuntimeError (line 2): boom" in span.error["message"]


def test_an_endpoint_guardrail_gets_the_output_and_its_headers(api, settings, endpoint, fake_provider, fake_openai):
    settings.PROVIDER_EGRESS_ALLOWLIST = ["127.0.0.1"]
    endpoint.answers["/check"] = {"tripwire_triggered": True, "output_info": {"score": 0.9}, "message": "Redacted."}
    config = {"endpoint": f"{endpoint.url}/check", "headers": {"X-Key": "guard-secret-1"}}
    agent = make_agent(api, output_guardrails=[{"name": "pii", "implementation": "function", "config": config}])
    assert agent["output_guardrails"][0]["config"]["headers"] == {"X-Key": "********"}
    fake_openai.script(Reply("John lives at 5 Main St."))
    body = run(api, agent, "Where does John live?", metadata={"k": "v"}).json()
    assert (body["status"], body["output"]) == ("blocked", "Redacted.")
    assert body["guardrail_triggered"]["output_info"] == {"score": 0.9}
    sent = endpoint.requests[-1]
    assert json.loads(sent["body"]) == {"output": "John lives at 5 Main St.", "context": {}}
    assert sent["headers"]["X-Key"] == "guard-secret-1"
    assert "guard-secret-1" not in json.dumps(body)


def test_an_endpoint_guardrail_that_the_egress_guard_refuses_trips(api, settings, fake_provider, fake_openai):
    config = {"endpoint": "http://127.0.0.1:9/check"}  # allowlisted when saved (fake_provider), not when run
    guard = {"name": "e", "implementation": "function", "config": config}
    agent = make_agent(api, input_guardrails=[guard])
    settings.PROVIDER_EGRESS_ALLOWLIST = []
    body = run(api, agent, "Hi").json()
    assert body["status"] == "blocked"
    assert "PROVIDER_EGRESS_ALLOWLIST" in body["guardrail_triggered"]["error"]
    assert model_requests(fake_openai) == []


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"(a)\1", "backreferences"),
        (r"(?<=a)b", "lookaround"),
        ("(unclosed", "Not a supported regular expression"),
    ],
)
def test_patterns_re2_cannot_match_in_linear_time_are_refused_when_saved(api, pattern, problem):
    response = api("POST", "/agents", {"name": "R", "input_guardrails": [regex(pattern=pattern)]})
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "input_guardrails.0.regex.config.pattern"
    assert problem in error["message"]


def test_a_hostile_pattern_cannot_stall_a_run(api, fake_provider, fake_openai):
    # (a+)+$ backtracks exponentially in Python's re; on 5,000 characters it would never end.
    agent = make_agent(api, input_guardrails=[regex("hostile", "(a+)+$")])
    fake_openai.script(Reply("ok"))
    body = run(api, agent, "a" * 5000 + "!").json()
    assert body["status"] == "succeeded"
    assert body["guardrails"][0]["tripwire_triggered"] is False


def test_guardrails_are_tried_on_samples(api, settings, team, endpoint, fake_provider, fake_openai):
    settings.PROVIDER_EGRESS_ALLOWLIST = ["127.0.0.1"]
    judge = make_agent(api, "Judge", output_type=VERDICT_SCHEMA)
    endpoint.answers["/check"] = {"tripwire_triggered": False, "output_info": {"ok": True}}
    agent = make_agent(
        api,
        input_guardrails=[regex(), {"name": "j", "implementation": "agent", "config": {"agent_id": judge["id"]}}],
        output_guardrails=[
            {"name": "e", "implementation": "function", "config": {"endpoint": f"{endpoint.url}/check"}}
        ],
    )
    tried = api("POST", f"/agents/{agent['id']}/guardrails/input/no_card/try", {"sample": "1234-5678-1234-5678"})
    assert tried.status_code == 200, tried.text
    assert tried.json()["tripwire_triggered"] is True
    assert tried.json()["run_id"] is None
    tried = api("POST", f"/agents/{agent['id']}/guardrails/output/e/try", {"sample": {"answer": 1}}).json()
    assert (tried["tripwire_triggered"], tried["output_info"]) == (False, {"ok": True})
    assert json.loads(endpoint.requests[-1]["body"]) == {"output": {"answer": 1}, "context": {}}
    fake_openai.script(Reply('{"tripwire_triggered": true, "message": "Off topic."}'))
    tried = api("POST", f"/agents/{agent['id']}/guardrails/input/j/try", {"sample": "essay"}).json()
    assert (tried["tripwire_triggered"], tried["message"]) == (True, "Off topic.")
    assert AgentRun.objects.get(pk=tried["run_id"]).agent_name == "Judge"  # recorded and paid as a run
    missing = api("POST", f"/agents/{agent['id']}/guardrails/output/no_card/try", {"sample": "x"})
    assert missing.status_code == 404
    assert api("POST", f"/agents/{agent['id']}/guardrails/sideways/e/try", {"sample": "x"}).status_code == 422


def test_tool_steps_before_a_blocked_answer_are_kept(api, fake_provider, fake_openai):
    code = "def main(city):\n    return 'sunny in ' + city\n"
    tool = {
        "type": "function",
        "name": "weather",
        "params": {"code": code, "allow_code_execution": True, "parameters": [{"name": "city"}]},
    }
    agent = make_agent(api, tools=[tool], output_guardrails=[regex("no_paris", "Paris")])
    fake_openai.script(ToolCall("weather", {"city": "Paris"}), Reply("It is sunny in Paris."))
    body = run(api, agent, "Weather?").json()
    assert body["status"] == "blocked"
    kinds = [m.get("type", m.get("role")) for m in body["messages"]]
    assert kinds == ["function_call", "function_call_output", "assistant"]
    assert body["messages"][-1]["content"] == "The answer was withheld by the no_paris guardrail."


@pytest.mark.slow
def test_a_worker_blocks_a_background_run_with_a_code_guardrail(api, team, fake_provider, fake_openai, celery_worker):
    code = "def main(input, context):\n    return {'tripwire_triggered': 'forbidden' in input}\n"
    guard = {"name": "words", "implementation": "function", "config": {"code": code, "allow_code_execution": True}}
    agent = make_agent(api, input_guardrails=[guard])
    response = run(api, agent, "a forbidden word", background=True)
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    deadline = time.monotonic() + 30
    while (body := api("GET", f"/runs/{run_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the worker did not finish the run"
        time.sleep(0.2)
    assert body["status"] == "blocked"
    assert body["final_output"] == "This message was blocked by the words guardrail."
    assert body["guardrails"][0]["tripwire_triggered"] is True
    assert model_requests(fake_openai) == []


def test_both_transports_answer_a_blocked_run_alike(team, fake_provider, fake_openai, api_server):
    from agents_app.services import agent_create

    agent = agent_create(actor=team, name="Guarded", input_guardrails=[regex(message="No cards.")])
    token = api_token_create(actor=team, name="transports").raw
    response = httpx2.post(
        f"{api_server}/api/v1/agents/{agent.pk}/run",
        json={"message": "1111-2222-3333-4444"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["output"]) == ("blocked", "No cards.")
    assert body["guardrail_triggered"]["name"] == "no_card"
    assert body["guardrails"] == [body["guardrail_triggered"]]
    assert model_requests(fake_openai) == []
