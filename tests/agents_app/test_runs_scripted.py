"""Runs built from rows, with the SDK's ScriptedModel in place of each agent's model (no HTTP at all).

The same behaviours as tests/agents_app/test_runs.py checks on the wire (the scripted OpenAI-compatible server),
seen here at the SDK's Model boundary: what each agent was asked, with which instructions, tools and handoffs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agents import ModelSettings
from agents.testing import ScriptedModel, assistant_message, function_call
from asgiref.sync import async_to_sync

from agents_app.models import AgentRun
from agents_app.runs import execution
from agents_app.runs.execution import execute_run, stream_run
from agents_app.runs.lifecycle import start_run
from agents_app.services import agent_create, context_create, handoff_add
from providers_app.runtime import ResolvedModel

pytestmark = pytest.mark.django_db(transaction=True)  # a run's end is recorded from another thread


@pytest.fixture
def scripted(monkeypatch) -> dict[str, ScriptedModel]:
    """Each agent's model, by agent name: fill in a ScriptedModel before the run."""
    models: dict[str, ScriptedModel] = {}

    def build_model(*, provider, model_name, settings) -> ResolvedModel:
        raise AssertionError("replaced per row below")

    def resolver(active):
        def resolve(row):
            return ResolvedModel(
                provider=active.root_provider,
                model_name="scripted",
                model=models[row.name],
                model_settings=ModelSettings(),
            )

        return resolve

    monkeypatch.setattr(execution, "build_model", build_model)
    monkeypatch.setattr(execution, "model_resolver", resolver)
    return models


def run(actor, agent, message: str = "Hello", **kwargs: Any) -> AgentRun:
    active = async_to_sync(start_run)(actor=actor, agent_id=agent.pk, message=message, **kwargs)
    return asyncio.run(execute_run(active))


def test_handoff_chain_and_cycle(team, fake_provider, scripted):
    alpha = agent_create(actor=team, name="Alpha", instructions="Route.")
    beta = agent_create(actor=team, name="Beta", instructions="Answer.", handoff_description="Knows things")
    handoff_add(actor=team, agent_id=alpha.pk, target_id=beta.pk)
    handoff_add(actor=team, agent_id=beta.pk, target_id=alpha.pk)
    scripted["Alpha"] = ScriptedModel(
        [[function_call("transfer_to_beta", {}, call_id="call_1")], [assistant_message("Back at Alpha.")]]
    )
    scripted["Beta"] = ScriptedModel([[function_call("transfer_to_alpha", {}, call_id="call_2")]])
    finished = run(team, alpha)
    assert (finished.status, finished.final_output, finished.last_agent_name) == (
        "succeeded",
        "Back at Alpha.",
        "Alpha",
    )
    scripted["Alpha"].assert_complete()
    scripted["Beta"].assert_complete()
    first_alpha, beta_call = scripted["Alpha"].calls[0], scripted["Beta"].calls[0]
    assert [h.tool_name for h in first_alpha.handoffs] == ["transfer_to_beta"]
    assert "Knows things" in first_alpha.handoffs[0].tool_description
    assert [h.tool_name for h in beta_call.handoffs] == ["transfer_to_alpha"]
    assert (first_alpha.system_instructions, beta_call.system_instructions) == ("Route.", "Answer.")
    assert finished.usage["requests"] == 3


def test_a_tool_call_to_another_agent(team, fake_provider, scripted):
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
    scripted["Writer"] = ScriptedModel(
        [
            [function_call("research", {"input": "capital of Norway"}, call_id="call_3")],
            [assistant_message("Fact: Oslo.")],
        ]
    )
    scripted["Researcher"] = ScriptedModel([[assistant_message("Oslo is the capital of Norway.")]])
    finished = run(team, writer)
    assert (finished.status, finished.final_output, finished.last_agent_name) == ("succeeded", "Fact: Oslo.", "Writer")
    assert [t.name for t in scripted["Writer"].calls[0].tools] == ["research"]
    assert "capital of Norway" in json.dumps(scripted["Researcher"].calls[0].input)
    assert "Oslo is the capital of Norway." in json.dumps(scripted["Writer"].calls[1].input)
    kinds = [item.get("type") for item in finished.new_items]
    assert "function_call" in kinds
    assert "function_call_output" in kinds


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
    "required": ["city", "temp"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("answer", "status", "output"),
    [
        ({"city": "Oslo", "temp": -3.5}, "succeeded", {"city": "Oslo", "temp": -3.5}),
        ({"city": "Oslo", "temp": "cold"}, "failed", None),
    ],
)
def test_structured_output_is_validated(team, fake_provider, scripted, answer, status, output):
    agent = agent_create(actor=team, name="Weather", output_type=SCHEMA)
    scripted["Weather"] = ScriptedModel([[assistant_message(json.dumps(answer))]])
    finished = run(team, agent)
    assert (finished.status, finished.final_output) == (status, output)
    assert scripted["Weather"].calls[0].output_schema.json_schema() == SCHEMA
    if status == "failed":
        assert finished.error_code == "output_invalid"
        assert "does not match the output schema at temp" in finished.error


def test_memory_and_context_reach_the_model(team, fake_provider, scripted):
    agent = agent_create(actor=team, name="Helper", instructions="You help.")
    context_create(actor=team, agent_id=agent.pk, name="customer", content={"plan": "gold"})
    scripted["Helper"] = ScriptedModel(
        [[assistant_message("Nice to meet you, Ada.")], [assistant_message("Your name is Ada.")]]
    )
    first = run(team, agent, "My name is Ada.")
    second = run(team, agent, "What is my name?", conversation_id=first.conversation_id)
    assert second.final_output == "Your name is Ada."
    call = scripted["Helper"].calls[1]
    assert call.system_instructions.startswith("You help.\n\n# Context\n")
    assert '"plan": "gold"' in call.system_instructions
    sent = json.dumps(call.input)
    assert sent.index("My name is Ada.") < sent.index("Nice to meet you, Ada.") < sent.index("What is my name?")


def test_streaming_event_order(team, fake_provider, scripted):
    researcher = agent_create(actor=team, name="Researcher")
    alpha = agent_create(
        actor=team, name="Alpha", tools=[{"type": "agent", "name": "research", "params": {"agent_id": researcher.pk}}]
    )
    beta = agent_create(actor=team, name="Beta")
    handoff_add(actor=team, agent_id=alpha.pk, target_id=beta.pk)
    scripted["Alpha"] = ScriptedModel(
        [
            [function_call("research", {"input": "facts"}, call_id="call_r")],
            [function_call("transfer_to_beta", {}, call_id="call_h")],
        ]
    )
    scripted["Researcher"] = ScriptedModel([[assistant_message("Some facts.")]])
    scripted["Beta"] = ScriptedModel([[assistant_message("Streamed answer.")]])
    active = async_to_sync(start_run)(actor=team, agent_id=alpha.pk, message="Hi", mode="stream")

    async def collect() -> list[dict[str, Any]]:
        return [event async for event in stream_run(active)]

    events = asyncio.run(collect())
    assert [event["event"] for event in events] == [
        "run", "agent", "tool_call", "tool_output", "handoff", "agent", "text", "done"
    ]  # fmt: skip
    by_name = {event["event"]: event["data"] for event in events}
    assert (by_name["tool_call"]["name"], by_name["tool_call"]["call_id"]) == ("research", "call_r")
    assert (by_name["tool_output"]["call_id"], by_name["tool_output"]["output"]) == ("call_r", "Some facts.")
    assert (by_name["handoff"]["from"], by_name["handoff"]["to"]) == ("Alpha", "Beta")
    assert by_name["text"]["delta"] == "Streamed answer."
    assert (by_name["done"]["status"], by_name["done"]["output"]) == ("succeeded", "Streamed answer.")
    assert scripted["Beta"].calls[0].streamed
