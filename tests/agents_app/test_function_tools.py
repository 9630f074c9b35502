"""Function tools through the HTTP API and the real runtime: code run in the sandbox, endpoints called through
the SSRF guard, arguments checked, failures given back to the model (never failing the run), header values
stored encrypted and never shown back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents import flush_traces
from django.test import override_settings

from agents_app.models import Agent, AgentRun
from tests.fakes import Reply, ToolCall
from traces_app.models import Span

pytestmark = pytest.mark.django_db(transaction=True)

ADD = "def main(a, b=10):\n    print('adding', a, b)\n    return {'sum': a + b}\n"


def make_agent(api, tools: list[dict[str, Any]], name: str = "Toolsmith") -> dict[str, Any]:
    response = api("POST", "/agents", {"name": name, "instructions": "Use your tools.", "tools": tools})
    assert response.status_code == 201, response.text
    return response.json()


def tool_outputs(fake_openai) -> list[str]:
    """Return the tool results the model was given, in order."""
    outputs = []
    for request in fake_openai.requests_to("/v1/chat/completions"):
        outputs = [m["content"] for m in request.body["messages"] if m.get("role") == "tool"]
    return outputs


def code_tool(code: str = ADD, **params: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "name": "add",
        "description": "Add two numbers.",
        "params": {
            "code": code,
            "allow_code_execution": True,
            "parameters": [
                {"name": "a", "type": "int", "description": "The first number"},
                {"name": "b", "type": "int", "default": 10},
            ],
            **params,
        },
    }


def test_a_code_tool_runs_in_the_sandbox_and_its_result_reaches_the_model(api, fake_provider, fake_openai):
    agent = make_agent(api, [code_tool()])
    fake_openai.script(ToolCall("add", {"a": 2, "b": 3}), ToolCall("add", {"a": 5}), Reply("Done."))
    response = api("POST", f"/agents/{agent['id']}/run", {"message": "Add"})
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "Done."
    assert tool_outputs(fake_openai) == ['{"sum": 5}', '{"sum": 15}']  # the default filled in
    sent = fake_openai.requests_to("/v1/chat/completions")[0].body["tools"][0]["function"]
    assert sent["parameters"]["required"] == ["a"]
    assert sent["parameters"]["properties"]["a"] == {"type": "integer", "description": "The first number"}
    flush_traces()
    run = AgentRun.objects.get(pk=response.json()["run_id"])
    spans = Span.objects.filter(trace_id=run.trace_id, kind="function")
    assert spans.count() == 2
    assert all(not s.error for s in spans)


@pytest.mark.parametrize(
    ("code", "arguments", "expected"),
    [
        (ADD, {"a": "two"}, "Error: Invalid arguments at a: 'two' is not of type 'integer'"),
        (ADD, {}, "Error: Invalid arguments: 'a' is a required property"),
        (ADD, {"a": 1, "c": 2}, "Error: Invalid arguments: Additional properties are not allowed ('c' was unexpected)"),
        ("def main(a, b=1):\n    x = {}\n    return x['city']\n", {"a": 1}, "Error: KeyError (line 3): 'city'"),
        ("def main(a, b=1):\n    while True:\n        pass\n", {"a": 1}, "Error: The code used more than 1 s of CPU."),
        ("def main(a, b=1):\n    return object()\n", {"a": 1}, "Error: The return value is not JSON"),
    ],
)
def test_tool_failures_go_back_to_the_model_and_the_trace_not_failing_the_run(
    api, fake_provider, fake_openai, code, arguments, expected
):
    agent = make_agent(api, [code_tool(code)])
    fake_openai.script(ToolCall("add", arguments), Reply("Sorry, that failed."))
    with override_settings(SANDBOX_CPU_SECONDS=1):
        response = api("POST", f"/agents/{agent['id']}/run", {"message": "Add"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    [given] = tool_outputs(fake_openai)
    assert given.startswith(expected), given
    assert "/work" not in given  # no server path
    flush_traces()
    span = Span.objects.get(trace_id=response.json()["trace_id"], kind="function")
    assert span.error["message"] == given.removeprefix("Error: ")


def test_code_must_be_allowed_and_define_main(api, fake_provider):
    tool = code_tool()
    tool["params"]["allow_code_execution"] = False
    response = api("POST", "/agents", {"name": "No", "tools": [tool]})
    assert response.status_code == 422
    assert "allow_code_execution" in json.dumps(response.json())
    response = api("POST", "/agents", {"name": "No", "tools": [code_tool("def helper():\n    pass\n")]})
    assert response.status_code == 422
    assert "Define a function named main" in json.dumps(response.json())


def endpoint_tool(url: str, headers: dict[str, str] | None = None, name: str = "lookup") -> dict[str, Any]:
    params: dict[str, Any] = {"endpoint": url, "parameters": [{"name": "city", "type": "str"}]}
    if headers is not None:
        params["headers"] = headers
    return {"type": "function", "name": name, "description": "Look a city up.", "params": params}


def test_an_endpoint_tool_posts_the_arguments_with_its_secret_headers(api, fake_provider, fake_openai, endpoint):
    agent = make_agent(api, [endpoint_tool(f"{endpoint.url}/lookup", {"X-Api-Key": "tool-secret-123"})])
    assert agent["tools"][0]["params"]["headers"] == {"X-Api-Key": "********"}
    assert "tool-secret-123" not in json.dumps(agent)
    stored = Agent.objects.get(pk=agent["id"])
    assert stored.secrets == {"tools": {"lookup": {"headers": {"X-Api-Key": "tool-secret-123"}}}}
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets::text FROM agents_app_agent WHERE id = %s", [agent["id"]])
        assert "tool-secret-123" not in cursor.fetchone()[0]  # encrypted at rest

    fake_openai.script(ToolCall("lookup", {"city": "Oslo"}), Reply("Found."))
    response = api("POST", f"/agents/{agent['id']}/run", {"message": "Oslo?"})
    assert response.status_code == 200, response.text
    [received] = endpoint.requests
    assert json.loads(received["body"]) == {"city": "Oslo"}
    assert received["headers"]["X-Api-Key"] == "tool-secret-123"
    assert tool_outputs(fake_openai) == ['{"got": {"city": "Oslo"}}']
    flush_traces()
    traced = json.dumps(list(Span.objects.filter(trace_id=response.json()["trace_id"]).values("data", "error")))
    assert "tool-secret-123" not in traced

    # Sent back as read, the mask keeps the stored value; a new value replaces it; removing it removes it.
    page = api("GET", f"/agents/{agent['id']}").json()
    assert api("PATCH", f"/agents/{agent['id']}", {"tools": page["tools"]}).status_code == 200
    assert Agent.objects.get(pk=agent["id"]).secrets["tools"]["lookup"]["headers"] == {"X-Api-Key": "tool-secret-123"}
    changed = endpoint_tool(f"{endpoint.url}/lookup", {"X-Api-Key": "rotated-456"})
    assert api("PATCH", f"/agents/{agent['id']}", {"tools": [changed]}).status_code == 200
    assert Agent.objects.get(pk=agent["id"]).secrets["tools"]["lookup"]["headers"] == {"X-Api-Key": "rotated-456"}
    unknown = endpoint_tool(f"{endpoint.url}/lookup", {"X-Other": "********"})
    response = api("PATCH", f"/agents/{agent['id']}", {"tools": [unknown]})
    assert response.status_code == 422
    assert "none is stored" in response.text
    exported = api("GET", f"/agents/{agent['id']}/export").text
    assert "rotated-456" not in exported
    assert "X-Api-Key" not in exported


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/fail", "Error: The endpoint answered HTTP 500: upstream exploded"),
        ("/redirect", "Error: The endpoint redirected (HTTP 302); give its final URL."),
        ("/big", "Error: The endpoint's answer is larger than 1,000,000 bytes."),
        ("/slow", "Error: The endpoint did not answer within 1 s."),
    ],
)
def test_endpoint_failures_go_back_to_the_model(api, fake_provider, fake_openai, endpoint, path, expected):
    agent = make_agent(api, [endpoint_tool(f"{endpoint.url}{path}")])
    fake_openai.script(ToolCall("lookup", {"city": "Oslo"}), Reply("It failed."))
    with override_settings(TOOL_ENDPOINT_TIMEOUT_SECONDS=1):
        response = api("POST", f"/agents/{agent['id']}/run", {"message": "Oslo?"})
    assert response.json()["status"] == "succeeded"
    assert tool_outputs(fake_openai) == [expected]
    assert [r["path"] for r in endpoint.requests] == [path]  # a redirect is never followed


def test_an_endpoint_that_is_down_is_a_message_too(api, fake_provider, fake_openai, endpoint):
    url = f"{endpoint.url}/lookup"
    endpoint.close()
    agent = make_agent(api, [endpoint_tool(url)])
    fake_openai.script(ToolCall("lookup", {"city": "Oslo"}), Reply("Down."))
    response = api("POST", f"/agents/{agent['id']}/run", {"message": "Oslo?"})
    assert response.json()["status"] == "succeeded"
    assert tool_outputs(fake_openai) == ["Error: The endpoint could not be reached (ConnectError)."]


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1/x",
    "http://127.1/x",
    "http://2130706433/x",
    "http://0x7f000001/x",
    "http://[::1]/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://0.0.0.0/x",
    "http://localhost/x",
    "http://10.0.0.5/x",
    "http://172.16.0.1/x",
    "http://192.168.1.1/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/x",
    "http://metadata.google.internal/computeMetadata/v1/",
]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
def test_internal_addresses_are_refused_when_the_tool_is_saved(api, team, url):
    response = api("POST", "/agents", {"name": "SSRF", "tools": [endpoint_tool(url)]})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"].startswith("tools.0")
    refusals = ("private or reserved", "internal name", "standard form")  # odd spellings are refused as such
    assert any(refusal in error["message"] for refusal in refusals), error
    assert not Agent.objects.filter(name="SSRF").exists()


def _name_for_loopback() -> str:
    with open("/etc/hosts") as hosts:
        for line in hosts:
            parts = line.split("#")[0].split()
            if parts and parts[0].startswith("127.") and len(parts) > 1:
                for name in parts[1:]:
                    if name != "localhost" and "." not in name:
                        return name
    raise AssertionError("No host name maps to loopback in /etc/hosts on this machine")


def test_at_call_time_a_name_resolving_to_loopback_and_a_dropped_allowlist_are_refused(api, team, endpoint):
    port = endpoint.server.server_port
    by_name = endpoint_tool(f"http://{_name_for_loopback()}:{port}/lookup", name="by_name")
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        agent = make_agent(api, [by_name, endpoint_tool(f"{endpoint.url}/lookup", name="allowed_once")])
    by_name_try = api("POST", f"/agents/{agent['id']}/tools/by_name/try", {"arguments": {"city": "Oslo"}}).json()
    assert by_name_try["ok"] is False
    assert "resolves to 127.0.0.1, a private or reserved address" in by_name_try["error"]
    dropped = api("POST", f"/agents/{agent['id']}/tools/allowed_once/try", {"arguments": {"city": "Oslo"}}).json()
    assert dropped["ok"] is False
    assert "127.0.0.1 is a private or reserved address" in dropped["error"] or "resolves to" in dropped["error"]
    assert endpoint.requests == []  # nothing reached the server
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):  # an allowlisted local server is reachable
        allowed = api("POST", f"/agents/{agent['id']}/tools/allowed_once/try", {"arguments": {"city": "Oslo"}})
    assert allowed.json()["value"] == {"got": {"city": "Oslo"}}


def test_try_it_runs_one_tool_and_shows_result_logs_and_time(api, team, viewer, outsider, api_client):
    agent = make_agent(
        api, [code_tool(), {"type": "agent", "name": "ask", "params": {"agent_id": make_agent(api, [], "Other")["id"]}}]
    )
    response = api("POST", f"/agents/{agent['id']}/tools/add/try", {"arguments": {"a": 1}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ok"], body["value"], body["logs"]) == (True, {"sum": 11}, "adding 1 10\n")
    assert body["duration_ms"] > 0
    bad = api("POST", f"/agents/{agent['id']}/tools/add/try", {"arguments": {"a": "x"}}).json()
    assert (bad["ok"], bad["kind"]) == (False, "arguments")
    assert api("POST", f"/agents/{agent['id']}/tools/ask/try", {}).status_code == 422
    assert api("POST", f"/agents/{agent['id']}/tools/nope/try", {}).status_code == 404
    path = f"/api/v1/agents/{agent['id']}/tools/add/try"
    as_viewer = api_client(viewer).post(path, {"arguments": {"a": 1}}, content_type="application/json")
    assert as_viewer.status_code == 403
    as_outsider = api_client(outsider).post(path, {"arguments": {"a": 1}}, content_type="application/json")
    assert as_outsider.status_code == 404
