"""Tools and guardrails are checked per ``type`` and per ``implementation`` when they are written, on every way in:
the API, the agent builder page and the admin (agents_app/tool_specs.py), so that a client learns at once what
is wrong, long before a run would use them."""

from __future__ import annotations

import json

import pytest

from agents_app.models import Agent
from agents_app.services import agent_create
from knowledge_app.services import store_create
from tests.accounts_app.test_api import assert_error, post

ENDPOINT = "https://tools.example.com/lookup"
CODE = "def main(city):\n    return {'city': city}\n"

VALID_TOOLS = [
    {
        "name": "lookup",
        "description": "Look a city up.",
        "type": "function",
        "params": {
            "endpoint": ENDPOINT,
            "parameters": [{"name": "city", "type": "str", "description": "Which city"}],
        },
    },
    {
        "name": "weather",
        "description": "",
        "type": "function",
        "params": {
            "code": CODE,
            "allow_code_execution": True,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"name": "web", "description": "Search the web.", "type": "web_search", "params": {"max_search_results": 3}},
    {"name": "computer", "description": "A computer.", "type": "computer", "params": {"read_only": True}},
]


def test_every_tool_type_is_stored_as_sent(team, api_client):
    helper = agent_create(actor=team, name="Helper")
    store = store_create(actor=team, name="Docs")
    tools = [
        *VALID_TOOLS,
        {"name": "docs", "description": "Search docs.", "type": "file_search", "params": {"vector_store_id": store.pk}},
        {"name": "ask", "description": "Ask.", "type": "agent", "params": {"agent_id": helper.pk}},
    ]
    created = post(api_client(team), "/api/v1/agents", {"name": "Tooled", "tools": tools})
    assert created.status_code == 201, created.content
    assert created.json()["tools"] == tools  # nothing added, nothing dropped
    assert Agent.objects.get(name="Tooled").tools == tools


BAD_TOOLS = [
    ({"name": "t", "type": "shell", "params": {}}, "tools.0", "does not match any of the expected tags"),
    ({"name": "t", "params": {}}, "tools.0", "Unable to extract tag"),
    ({"name": "bad name!", "type": "web_search"}, "tools.0.web_search.name", "String should match pattern"),
    ({"name": "t", "type": "function", "params": {}}, "tools.0.function.params", "Give either code or endpoint"),
    (
        {"name": "t", "type": "function", "params": {"code": CODE, "endpoint": ENDPOINT, "allow_code_execution": True}},
        "tools.0.function.params",
        "Give either code or endpoint",
    ),
    ({"name": "t", "type": "function", "params": {"code": CODE}}, "tools.0.function.params", "allow_code_execution"),
    (
        {"name": "t", "type": "function", "params": {"code": "def main(:\n", "allow_code_execution": True}},
        "tools.0.function.params.code",
        "Not valid Python (line 1)",
    ),
    (
        {"name": "t", "type": "function", "params": {"code": "x = 1\n", "allow_code_execution": True}},
        "tools.0.function.params.code",
        "Define a function named main",
    ),
    (
        {"name": "t", "type": "function", "params": {"endpoint": "http://127.0.0.1:8000/admin"}},
        "tools.0.function.params.endpoint",
        "private or reserved address",
    ),
    (
        {"name": "t", "type": "function", "params": {"endpoint": "http://0x7f.1/"}},
        "tools.0.function.params.endpoint",
        "standard form",
    ),
    (
        {"name": "t", "type": "function", "params": {"endpoint": "file:///etc/passwd"}},
        "tools.0.function.params.endpoint",
        "http:// or https://",
    ),
    (
        {
            "name": "t",
            "type": "function",
            "params": {"endpoint": ENDPOINT, "parameters": [{"name": "x", "type": "eval"}]},
        },
        "tools.0.function.params.parameters",
        "",
    ),
    (
        {
            "name": "t",
            "type": "function",
            "params": {"endpoint": ENDPOINT, "parameters": [{"name": "x"}, {"name": "x"}]},
        },
        "tools.0.function.params.parameters",
        "same name",
    ),
    (
        {"name": "t", "type": "function", "params": {"endpoint": ENDPOINT, "parameters": {"type": "array"}}},
        "tools.0.function.params.parameters",
        '"type": "object"',
    ),
    (
        {"name": "t", "type": "function", "params": {"endpoint": ENDPOINT, "headers": {"Bad Name": "v"}}},
        "tools.0.function.params.headers",
        "not a valid header name",
    ),
    (
        {"name": "t", "type": "function", "params": {"endpoint": ENDPOINT, "headers": {"Host": "evil"}}},
        "tools.0.function.params.headers",
        "set by the platform",
    ),
    (
        {"name": "t", "type": "function", "params": {"endpoint": ENDPOINT, "headers": {"X-Key": "a\r\nX-Evil: 1"}}},
        "tools.0.function.params.headers",
        "one line",
    ),
    (
        {
            "name": "t",
            "type": "function",
            "params": {"code": "def main():\n    pass\n", "allow_code_execution": True, "headers": {"X-K": "v"}},
        },
        "tools.0.function.params",
        "Headers are sent to an endpoint",
    ),
    ({"name": "t", "type": "web_search", "params": {"max_search_results": 500}}, "tools.0.web_search.params", ""),
    ({"name": "t", "type": "file_search", "params": {}}, "tools.0.file_search.params.vector_store_id", "required"),
    ({"name": "t", "type": "agent", "params": {"agent_id": "7"}}, "tools.0.agent.params.agent_id", "integer"),
    ({"name": "t", "type": "agent", "params": {"agent_id": 999999}}, "tools.0.params.agent_id", "No agent with id"),
]


@pytest.mark.parametrize(("tool", "field", "message"), BAD_TOOLS)
def test_a_bad_tool_is_refused_naming_where(team, api_client, tool, field, message):
    body = assert_error(
        post(api_client(team), "/api/v1/agents", {"name": "T", "tools": [tool]}), 422, "validation_error"
    )
    problems = {e["field"]: e["message"] for e in body["errors"]}
    assert any(f == field or f.startswith(field + ".") for f in problems), problems
    assert message in " ".join(problems.values())
    assert not Agent.objects.filter(name="T").exists()


def test_tool_names_are_unique_and_tools_bounded(team, api_client):
    client = api_client(team)
    web = {"name": "web", "type": "web_search"}
    body = assert_error(post(client, "/api/v1/agents", {"name": "T", "tools": [web, web]}), 422, "validation_error")
    assert "Two tools are named 'web'" in body["errors"][0]["message"]
    many = [{"name": f"t{i}", "type": "web_search"} for i in range(65)]
    assert_error(post(client, "/api/v1/agents", {"name": "T", "tools": many}), 422, "validation_error")


def test_an_agent_cannot_be_its_own_tool_or_judge(team, api_client):
    agent = agent_create(actor=team, name="Self")
    client = api_client(team)
    for key, entry in (
        ("tools", {"name": "me", "type": "agent", "params": {"agent_id": agent.pk}}),
        ("output_guardrails", {"name": "me", "implementation": "agent", "config": {"agent_id": agent.pk}}),
    ):
        body = assert_error(
            post(client, f"/api/v1/agents/{agent.pk}", {key: [entry]}, "patch"), 422, "validation_error"
        )
        assert "cannot use itself" in body["errors"][0]["message"]
    assert Agent.objects.get(pk=agent.pk).version == 1


VALID_GUARDRAILS = [
    {"name": "pin", "description": "No PINs.", "implementation": "regex", "config": {"pattern": r"\b\d{4}\b"}},
    {
        "name": "code",
        "implementation": "function",
        "config": {"code": "def main(input_data):\n    return {}\n", "allow_code_execution": True},
    },
    {"name": "hook", "implementation": "function", "config": {"endpoint": ENDPOINT}},
]


def test_guardrails_are_stored_with_their_list_s_type(team, api_client):
    verdict = {"type": "object", "properties": {"tripwire_triggered": {"type": "boolean"}}}
    judge = agent_create(actor=team, name="Judge", output_type=verdict)
    judged = {"name": "judge", "implementation": "agent", "config": {"agent_id": judge.pk}}
    created = post(
        api_client(team),
        "/api/v1/agents",
        {
            "name": "Guarded",
            "input_guardrails": [*VALID_GUARDRAILS, judged],
            "output_guardrails": [{**judged, "type": "output"}],
        },
    )
    assert created.status_code == 201, created.content
    agent = created.json()
    assert agent["input_guardrails"] == [{**g, "type": "input"} for g in [*VALID_GUARDRAILS, judged]]
    assert agent["output_guardrails"] == [{**judged, "type": "output"}]


BAD_GUARDRAILS = [
    ({"name": "g", "implementation": "magic", "config": {}}, "input_guardrails.0", "expected tags"),
    (
        {"name": "g", "implementation": "regex", "config": {"pattern": "("}},
        "input_guardrails.0.regex.config.pattern",
        "regular expression",
    ),
    ({"name": "g", "implementation": "regex", "config": {}}, "input_guardrails.0.regex.config.pattern", "required"),
    ({"name": "", "implementation": "regex", "config": {"pattern": "x"}}, "input_guardrails.0.regex.name", ""),
    (
        {"name": "g", "type": "output", "implementation": "regex", "config": {"pattern": "x"}},
        "input_guardrails.0.type",
        "input guardrails",
    ),
    (
        {"name": "g", "implementation": "function", "config": {"code": CODE}},
        "input_guardrails.0.function.config",
        "allow_code_execution",
    ),
    (
        {"name": "g", "implementation": "agent", "config": {"agent_id": 999999}},
        "input_guardrails.0.config.agent_id",
        "No agent",
    ),
]


@pytest.mark.parametrize(("guardrail", "field", "message"), BAD_GUARDRAILS)
def test_a_bad_guardrail_is_refused_naming_where(team, api_client, guardrail, field, message):
    response = post(api_client(team), "/api/v1/agents", {"name": "G", "input_guardrails": [guardrail]})
    problems = {e["field"]: e["message"] for e in assert_error(response, 422, "validation_error")["errors"]}
    assert any(f == field or f.startswith(field + ".") for f in problems), problems
    assert message in " ".join(problems.values())


def test_the_builder_page_takes_tools_and_guardrails_as_json(team, page_client):
    client = page_client(team)
    helper = agent_create(actor=team, name="Helper")
    form = {"name": "Paged", "max_turns": "10"}
    bad = client.post(
        "/agents/new/", {**form, "tools": json.dumps([{"name": "t", "type": "agent", "params": {"agent_id": 999999}}])}
    )
    assert bad.status_code == 422
    assert "0.params.agent_id: No agent with id 999999 in this workspace." in bad.content.decode()
    assert not Agent.objects.filter(name="Paged").exists()
    tools = [{"name": "ask", "type": "agent", "params": {"agent_id": helper.pk}}]
    guardrails = [{"name": "pin", "implementation": "regex", "config": {"pattern": "\\d{4}"}}]
    ok = client.post("/agents/new/", {**form, "tools": json.dumps(tools), "output_guardrails": json.dumps(guardrails)})
    assert ok.status_code in (200, 302), ok.content.decode()[:500]
    agent = Agent.objects.get(name="Paged")
    assert (agent.tools, agent.output_guardrails) == (tools, [{**guardrails[0], "type": "output"}])
    detail = client.get(f"/agents/{agent.pk}/").content.decode()
    assert "Output guardrail" in detail
    assert ">ask<" in detail
    edit = client.get(f"/agents/{agent.pk}/edit/").content.decode()
    assert "&quot;agent_id&quot;: " + str(helper.pk) in edit  # the edit form shows them back


def test_the_admin_checks_tools_through_the_services(team, operator):
    agent = agent_create(actor=team, name="Admined")
    data = {
        "name": agent.name,
        "instructions": "",
        "provider": "",
        "model": "",
        "model_settings": "{}",
        "handoff_description": "",
        "output_type": "",
        "tools": json.dumps([{"name": "t", "type": "function", "params": {"endpoint": "http://10.0.0.1/"}}]),
        "input_guardrails": "[]",
        "output_guardrails": "[]",
        "metadata": "{}",
        "max_turns": 10,
    }
    for prefix in ("handoffs", "contexts"):
        data |= {f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000}
    response = operator.post(f"/admin/agents_app/agent/{agent.pk}/change/", data, follow=True)
    assert "private or reserved address" in response.content.decode()
    assert Agent.objects.get(pk=agent.pk).tools == []
