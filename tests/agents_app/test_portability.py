from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
import yaml
from asgiref.sync import async_to_sync

from agents_app.models import Agent, AgentContext, AgentHandoff
from agents_app.portability import agent_export, agent_export_python, agent_import
from agents_app.runs.execution import execute_run
from agents_app.runs.lifecycle import start_run
from agents_app.services import agent_create, agent_update, context_create, handoff_add
from providers_app.clients import close_clients_for_running_loop
from tests.accounts_app.test_api import assert_error, post
from tests.agents_app.test_runs import run_sync
from tests.fakes import Reply, ToolCall

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.fixture
def graph(team, fake_provider):
    a = agent_create(actor=team, name="Front desk", instructions="Route requests.", provider_id=fake_provider.pk)
    b = agent_create(actor=team, name="Billing", instructions="Answer billing.", handoff_description="Invoices")
    c = agent_create(actor=team, name="Lookup", instructions="Look up.")
    judge = agent_create(
        actor=team,
        name="Judge",
        instructions="Judge answers.",
        output_type={"type": "object", "properties": {"tripwire_triggered": {"type": "boolean"}}},
    )
    handoff_add(actor=team, agent_id=a.pk, target_id=b.pk)
    handoff_add(actor=team, agent_id=b.pk, target_id=a.pk, tool_name="back_to_front")
    agent_update(
        actor=team,
        agent_id=b.pk,
        changes={
            "tools": [{"type": "agent", "name": "lookup", "params": {"agent_id": c.pk}}],
            "output_guardrails": [
                {"name": "judge", "implementation": "agent", "config": {"agent_id": judge.pk}},
                {
                    "name": "no-iban",
                    "implementation": "regex",
                    "config": {"pattern": "[A-Z]{2}\\d{2}", "replacement": "-"},
                },
            ],
        },
    )
    context_create(actor=team, agent_id=a.pk, name="shop", content={"shop": "Acme"})
    return a


def test_export_holds_the_whole_graph_by_name(team, graph):
    document = agent_export(actor=team, agent_id=graph.pk)
    assert (document["format"], document["root"]) == ("agents-platform/agents", "Front desk")
    by_name = {a["name"]: a for a in document["agents"]}
    assert set(by_name) == {"Front desk", "Billing", "Lookup", "Judge"}  # a guardrail's judge is part of it
    assert by_name["Billing"]["handoffs"][0] == {
        "target": "Front desk",
        "tool_name": "back_to_front",
        "tool_description": "",
    }
    assert by_name["Billing"]["tools"] == [{"type": "agent", "name": "lookup", "params": {"agent": "Lookup"}}]
    assert by_name["Billing"]["output_guardrails"][0] == {
        "name": "judge",
        "implementation": "agent",
        "type": "output",
        "config": {"agent": "Judge"},
    }
    assert document["version"] == 2
    assert by_name["Front desk"]["provider"] == "Fake"
    assert "api_key" not in json.dumps(document)


def test_import_round_trip_in_another_workspace(team, graph, outsider):
    text = yaml.safe_dump(agent_export(actor=team, agent_id=graph.pk))
    from agents_app.portability import parse_document

    root = agent_import(actor=outsider, document=parse_document(text))
    assert root.name == "Front desk"
    assert root.workspace == outsider.workspace
    assert root.provider is None  # no provider called "Fake" there: the workspace default
    copied = {a.name: a for a in Agent.objects.filter(workspace=outsider.workspace)}
    assert AgentHandoff.objects.filter(
        source=copied["Billing"], target=copied["Front desk"], tool_name="back_to_front"
    ).exists()
    assert copied["Billing"].tools == [{"type": "agent", "name": "lookup", "params": {"agent_id": copied["Lookup"].pk}}]
    assert copied["Billing"].output_guardrails[0]["config"] == {"agent_id": copied["Judge"].pk}
    assert copied["Billing"].output_guardrails[1]["config"]["pattern"] == "[A-Z]{2}\\d{2}"
    assert AgentContext.objects.get(agent=root).content == {"shop": "Acme"}
    again = agent_import(actor=outsider, document=parse_document(text))
    assert again.name == "Front desk (2)"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"format": "other"}, "format"),
        ({"format": "agents-platform/agents", "version": 1, "agents": []}, "agents"),
        ({"format": "agents-platform/agents", "version": 1, "root": "X", "agents": [{"name": "A"}]}, "root"),
        (
            {
                "format": "agents-platform/agents",
                "version": 1,
                "root": "A",
                "agents": [{"name": "A", "handoffs": [{"target": "Nope"}]}],
            },
            "agents.A.handoffs",
        ),
        (
            {"format": "agents-platform/agents", "version": 1, "root": "A", "agents": [{"name": "A", "max_turns": 0}]},
            "agents.A.max_turns",
        ),
        ({"format": "agents-platform/agents", "version": 3, "root": "A", "agents": [{"name": "A"}]}, "format"),
        (
            {
                "format": "agents-platform/agents",
                "version": 2,
                "root": "A",
                "agents": [{"name": "A", "tools": [{"type": "agent", "name": "t", "params": {"agent": "Nope"}}]}],
            },
            "agents.A.tools.0",
        ),
        (
            {
                "format": "agents-platform/agents",
                "version": 2,
                "root": "A",
                "agents": [{"name": "A", "tools": [{"type": "shell", "name": "t", "params": {}}]}],
            },
            "agents.A.tools.0",
        ),
        (
            {"format": "agents-platform/agents", "version": 2, "root": "A", "agents": [{"name": "A", "tools": "x"}]},
            "agents.A.tools",
        ),
        (
            {
                "format": "agents-platform/agents",
                "version": 2,
                "root": "A",
                "agents": [
                    {
                        "name": "A",
                        "input_guardrails": [{"name": "g", "implementation": "regex", "config": {"pattern": "("}}],
                    }
                ],
            },
            "agents.A.input_guardrails.0.regex.config.pattern",
        ),
    ],
)
def test_bad_imports_create_nothing(team, document, field):
    from agents_app.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError) as info:
        agent_import(actor=team, document=document)
    assert field in info.value.fields
    assert not Agent.objects.filter(workspace=team.workspace).exists()


def test_api_export_and_import(team, graph, outsider, api_client):
    client = api_client(team)
    exported = client.get(f"/api/v1/agents/{graph.pk}/export?format=yaml")
    assert exported["Content-Disposition"] == 'attachment; filename="front-desk.yaml"'
    imported = post(api_client(outsider), "/api/v1/agents/import", {"text": exported.content.decode()})
    assert imported.status_code == 201, imported.content
    assert imported.json()["name"] == "Front desk"
    assert client.get(f"/api/v1/agents/{graph.pk}/export?format=python")["Content-Type"].startswith("text/x-python")
    assert_error(client.get(f"/api/v1/agents/{graph.pk}/export?format=docx"), 422, "validation_error")
    assert_error(api_client(outsider).get(f"/api/v1/agents/{graph.pk}/export"), 404, "not_found")
    assert_error(post(client, "/api/v1/agents/import", {"text": "{{{"}), 422, "validation_error")


@pytest.mark.django_db(transaction=True)
def test_exported_python_gives_the_same_answer_as_the_platform(team, fake_provider, fake_openai, tmp_path):
    front = agent_create(actor=team, name="Front desk", instructions="Route.", output_type=None)
    billing = agent_create(actor=team, name="Billing", instructions="Answer billing.", output_type=SCHEMA)
    handoff_add(actor=team, agent_id=front.pk, target_id=billing.pk)
    context_create(actor=team, agent_id=front.pk, name="shop", content={"shop": "Acme"})
    script = [ToolCall("transfer_to_billing"), Reply('{"answer": "Your invoice is paid."}')]

    fake_openai.script(*script)
    active = async_to_sync(start_run)(actor=team, agent_id=front.pk, message="Is my invoice paid?")

    async def go():
        try:
            return await execute_run(active)
        finally:
            await close_clients_for_running_loop()

    platform = asyncio.run(go())
    assert platform.status == "succeeded", platform.error
    platform_requests = [r.body for r in fake_openai.requests_to("/v1/chat/completions")]

    code = agent_export_python(actor=team, agent_id=front.pk)
    path = tmp_path / "exported.py"
    path.write_text(code)
    fake_openai.reset()
    fake_openai.script(*script)
    env = {
        **os.environ,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_MODEL": "fake-model",
    }
    result = subprocess.run(
        [sys.executable, str(path), "Is my invoice paid?"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == platform.final_output == {"answer": "Your invoice is paid."}
    exported_requests = [r.body for r in fake_openai.requests_to("/v1/chat/completions")]
    assert [r["messages"][0] for r in exported_requests] == [r["messages"][0] for r in platform_requests]
    assert [t["function"]["name"] for t in exported_requests[0]["tools"]] == ["transfer_to_billing"]


def _script_run(script: str, message: str, fake_openai, tmp_path) -> str:
    path = tmp_path / "exported.py"
    path.write_text(script)
    env = {**os.environ, "OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "sk-test"}
    env["OPENAI_MODEL"] = "fake-model"
    result = subprocess.run(
        [sys.executable, str(path), message], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


TRIPLE = "def main(n):\n    return {'tripled': n * 3}\n"
NO_SEVEN = (
    "def main(output, context):\n"
    "    return {'tripwire_triggered': '7' in output, 'message': 'No sevens for ' + context['shop']}\n"
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("message", "steps", "answer"),
    [
        ("Triple 4", [ToolCall("triple", {"n": 4}, call_id="c1"), Reply("It is 12.")], "It is 12."),
        ("My PIN is 1234", [], "PINs are not accepted."),  # the input guardrail: no model request at all
        ("Triple 9", [ToolCall("triple", {"n": 9}, call_id="c1"), Reply("It is 27.")], "No sevens for Acme"),
        ("Off topic", [Reply('{"tripwire_triggered": true, "message": "Stay on topic."}')], "Stay on topic."),
    ],
)
def test_exported_python_runs_tools_and_guardrails_as_the_platform_does(
    team, fake_provider, fake_openai, tmp_path, message, steps, answer
):
    judge = agent_create(
        actor=team,
        name="Judge",
        instructions="Is it off topic?",
        output_type={"type": "object", "properties": {"tripwire_triggered": {"type": "boolean"}}},
    )
    agent = agent_create(
        actor=team,
        name="Calculator",
        instructions="Use your tool.",
        tools=[
            {
                "type": "function",
                "name": "triple",
                "params": {"code": TRIPLE, "allow_code_execution": True, "parameters": [{"name": "n", "type": "int"}]},
            }
        ],
        input_guardrails=[
            {
                "name": "pin",
                "implementation": "regex",
                "config": {"pattern": r"(?i)pin is \d{4}", "message": "PINs are not accepted."},
            },
        ],
        output_guardrails=[
            {
                "name": "sevens",
                "implementation": "function",
                "config": {"code": NO_SEVEN, "allow_code_execution": True},
            },
        ],
    )
    context_create(actor=team, agent_id=agent.pk, name="shop", content={"shop": "Acme"})
    if message == "Off topic":
        judged = {"name": "topic", "implementation": "agent", "config": {"agent_id": judge.pk}}
        agent_update(actor=team, agent_id=agent.pk, changes={"input_guardrails": [judged]})
    fake_openai.script(*steps)
    platform = run_sync(team, agent, message)
    assert platform.final_output == answer, platform.error
    assert platform.status == ("succeeded" if answer.startswith("It is") else "blocked")
    platform_requests = [r.body for r in fake_openai.requests_to("/v1/chat/completions")]

    script = agent_export_python(actor=team, agent_id=agent.pk)
    fake_openai.reset()
    fake_openai.script(*steps)
    assert _script_run(script, message, fake_openai, tmp_path) == answer
    exported_requests = [r.body for r in fake_openai.requests_to("/v1/chat/completions")]
    assert [r["messages"] for r in exported_requests] == [r["messages"] for r in platform_requests]


def test_a_version_1_export_still_imports(team):
    """Exports made before the spec's names: model_name, output_schema, one guardrails list, agent tools as
    {"type": "agent", "agent": name}, contexts' data. What fits no spec shape is kept in metadata."""
    document = {
        "format": "agents-platform/agents",
        "version": 1,
        "root": "Front",
        "agents": [
            {
                "name": "Front",
                "instructions": "Route.",
                "model_name": "m-1",
                "output_schema": SCHEMA,
                "guardrails": [
                    {"name": "pin", "type": "input", "implementation": "regex", "config": {"pattern": "\\d{4}"}},
                    {"name": "tone", "type": "output", "implementation": "regex", "config": {"pattern": "idiot"}},
                    {"something": "unknown"},
                ],
                "tools": [{"type": "agent", "agent": "Helper Bot"}, {"type": "function", "name": "old"}],
                "metadata": {"team": "cx"},
                "max_turns": 4,
                "contexts": [{"name": "shop", "data": {"shop": "Acme"}, "is_default": True}],
            },
            {"name": "Helper Bot", "instructions": "Help."},
        ],
    }
    root = agent_import(actor=team, document=document)
    helper = Agent.objects.get(workspace=team.workspace, name="Helper Bot")
    assert (root.model, root.output_type, root.max_turns) == ("m-1", SCHEMA, 4)
    assert root.tools == [{"name": "helper_bot", "description": "", "type": "agent", "params": {"agent_id": helper.pk}}]
    assert [g["name"] for g in root.input_guardrails] == ["pin"]
    assert [g["name"] for g in root.output_guardrails] == ["tone"]
    assert root.metadata == {
        "team": "cx",
        "legacy_tools": [{"type": "function", "name": "old"}],
        "legacy_guardrails": [{"something": "unknown"}],
    }
    assert AgentContext.objects.get(agent=root).content == {"shop": "Acme"}
