from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx2
import pytest
from agents import flush_traces
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from accounts_app.services import api_token_create
from agents_app.models import Agent, AgentContext, AgentHandoff, AgentRun
from agents_app.services import agent_create, context_create, handoff_add
from tests.accounts_app.test_api import assert_error, post
from tests.fakes import Reply


def test_create_get_patch_delete(team, api_client, fake_provider):
    client = api_client(team)
    created = post(
        client,
        "/api/v1/agents",
        {
            "name": "Support",
            "instructions": "Be kind.",
            "provider_id": fake_provider.pk,
            "model": "fake-model",
            "model_settings": {"temperature": 0.3},
            "output_type": {"type": "object", "properties": {}},
            "tools": [
                {
                    "type": "function",
                    "name": "lookup",
                    "params": {"endpoint": "https://tools.example.com/lookup"},
                }
            ],
            "input_guardrails": [{"name": "no-pin", "implementation": "regex", "config": {"pattern": r"\d{4}"}}],
            "metadata": {"team": "cx"},
        },
    )
    assert created.status_code == 201, created.content
    agent = created.json()
    assert (agent["name"], agent["provider_id"], agent["version"], agent["tools"][0]["name"]) == (
        "Support",
        fake_provider.pk,
        1,
        "lookup",
    )
    assert agent["input_guardrails"][0]["type"] == "input"  # filled in from the list it was sent in
    assert (agent["model"], agent["output_guardrails"], agent["user_id"]) == ("fake-model", [], team.user.pk)
    patched = post(client, f"/api/v1/agents/{agent['id']}", {"instructions": "Be brief."}, method="patch").json()
    assert (patched["instructions"], patched["version"], patched["name"]) == ("Be brief.", 2, "Support")
    listed = client.get("/api/v1/agents?search=supp").json()
    assert [a["name"] for a in listed["items"]] == ["Support"]
    assert post(client, f"/api/v1/agents/{agent['id']}", method="delete").status_code == 204
    assert not Agent.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({}, "name"),
        ({"name": "x", "max_turns": 0}, "max_turns"),
        ({"name": "x", "model_settings": {"temperature": 9}}, "model_settings"),
        ({"name": "x", "output_type": {"type": "array"}}, "output_type"),
        ({"name": "x", "output_type": {"type": "object", "properties": 5}}, "output_type"),
        ({"name": "x", "provider_id": 999999}, "provider_id"),
        ({"name": "x", "tools": ["not an object"]}, "tools"),
        ({"name": "x", "model_name": "old name"}, "model_name"),
        ({"name": "x", "guardrails": []}, "guardrails"),
    ],
)
def test_bad_agent_input_is_422(team, api_client, body, field):
    payload = assert_error(post(api_client(team), "/api/v1/agents", body), 422, "validation_error")
    assert any(e["field"] == field or e["field"].startswith(field + ".") for e in payload["errors"])
    assert not Agent.objects.exists()


def test_handoffs_contexts_and_model(team, api_client, fake_provider):
    client = api_client(team)
    a = agent_create(actor=team, name="A")
    b = agent_create(actor=team, name="B")
    added = post(client, f"/api/v1/agents/{a.pk}/handoffs", {"target_id": b.pk, "tool_name": "to_b"})
    assert added.status_code == 201
    assert added.json()["target_name"] == "B"
    assert_error(post(client, f"/api/v1/agents/{a.pk}/handoffs", {"target_id": b.pk}), 409, "handoff_exists")
    assert_error(post(client, f"/api/v1/agents/{a.pk}/handoffs", {"target_id": a.pk}), 422, "validation_error")
    assert_error(
        post(client, f"/api/v1/agents/{a.pk}/handoffs", {"target_id": b.pk, "tool_name": "bad name!"}),
        422,
        "validation_error",
    )
    assert client.get(f"/api/v1/agents/{a.pk}").json()["handoffs"][0]["tool_name"] == "to_b"
    assert post(client, f"/api/v1/agents/{a.pk}/handoffs/{b.pk}", method="delete").status_code == 204
    assert_error(post(client, f"/api/v1/agents/{a.pk}/handoffs/{b.pk}", method="delete"), 404, "not_found")

    ctx = post(client, f"/api/v1/agents/{a.pk}/contexts", {"name": "vip", "content": {"tier": 1}}).json()
    assert ctx["is_default"] is True
    second = post(client, f"/api/v1/agents/{a.pk}/contexts", {"name": "std", "content": {}, "is_default": True}).json()
    assert [c["is_default"] for c in client.get(f"/api/v1/agents/{a.pk}/contexts").json()] == [True, False]
    assert client.get(f"/api/v1/agents/{a.pk}/contexts/{second['id']}").json()["name"] == "std"
    post(client, f"/api/v1/agents/{a.pk}/contexts/{ctx['id']}", {"content": {"tier": 2}}, method="patch")
    assert AgentContext.objects.get(pk=ctx["id"]).content == {"tier": 2}
    assert_error(
        post(client, f"/api/v1/agents/{a.pk}/contexts", {"name": "vip", "content": {}}), 422, "validation_error"
    )
    assert post(client, f"/api/v1/agents/{a.pk}/contexts/{ctx['id']}", method="delete").status_code == 204

    model = post(
        client,
        f"/api/v1/agents/{a.pk}/model",
        {"provider_id": fake_provider.pk, "model": "x", "max_tokens": 10},
    ).json()
    assert (model["provider_id"], model["model"], model["model_settings"]) == (
        fake_provider.pk,
        "x",
        {"max_tokens": 10},
    )


def test_the_run_endpoint_documents_its_bearer_token(client):
    spec = client.get("/api/v1/openapi.json").json()
    operation = next(op for path, ops in spec["paths"].items() if path.endswith("/run") for op in ops.values())
    assert operation["security"] == [{"bearerAuth": []}]  # (the browser's session works too, with CSRF)


async def _read_sse(response) -> list[tuple[str, dict]]:
    raw = b"".join([chunk async for chunk in response.streaming_content]).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.django_db(transaction=True)
def test_run_streams_server_sent_events(team, helper, fake_openai):
    fake_openai.script(Reply("Streaming over SSE", usage=(5, 3)))
    token = api_token_create(actor=team, name="stream").raw

    async def go():
        # Per-request headers: AsyncClient's constructor headers do not reach POST requests.
        response = await AsyncClient().post(
            f"/api/v1/agents/{helper.pk}/run",
            data={"message": "Hi", "stream": True},
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response["Content-Type"] == "text/event-stream"
        return await _read_sse(response)

    events = asyncio.run(go())
    names = [name for name, _ in events]
    assert names[0] == "run"
    assert names[-1] == "done"
    assert "".join(d["delta"] for n, d in events if n == "text") == "Streaming over SSE"
    done = events[-1][1]
    assert (done["status"], done["output"], done["usage"]["output_tokens"]) == ("succeeded", "Streaming over SSE", 3)


@pytest.fixture
def team_agent(team, helper):
    other = agent_create(actor=team, name="Other")
    handoff_add(actor=team, agent_id=helper.pk, target_id=other.pk)
    context = context_create(actor=team, agent_id=helper.pk, name="c", content={})
    return {"id": helper.pk, "target": other.pk, "ctx": context.pk}


CALLS = [
    ("get", "/api/v1/agents/{id}", None),
    ("patch", "/api/v1/agents/{id}", {"name": "pwned"}),
    ("delete", "/api/v1/agents/{id}", None),
    ("post", "/api/v1/agents/{id}/model", {"model": "x"}),
    ("post", "/api/v1/agents/{id}/handoffs", {"target_id": 1}),
    ("delete", "/api/v1/agents/{id}/handoffs/{target}", None),
    ("get", "/api/v1/agents/{id}/contexts", None),
    ("post", "/api/v1/agents/{id}/contexts", {"name": "n", "content": {}}),
    ("get", "/api/v1/agents/{id}/contexts/{ctx}", None),
    ("patch", "/api/v1/agents/{id}/contexts/{ctx}", {"name": "n"}),
    ("delete", "/api/v1/agents/{id}/contexts/{ctx}", None),
    ("get", "/api/v1/agents/{id}/runs", None),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path", "body"), CALLS)
def test_outsider_gets_404(team_agent, outsider, api_client, fake_openai, method, path, body):
    response = post(api_client(outsider), path.format(**team_agent), body, method=method)
    assert_error(response, 404, "not_found")
    assert Agent.objects.get(pk=team_agent["id"]).name == "Helper"
    assert AgentHandoff.objects.count() == 1
    assert AgentContext.objects.count() == 1
    assert not AgentRun.objects.exists()
    assert fake_openai.requests == []
    assert api_client(outsider).get("/api/v1/agents").json()["count"] == 0


def test_outsider_cannot_read_runs(team, helper, outsider, api_client):
    from agents_app.runs.lifecycle import start_run

    run = async_to_sync(start_run)(actor=team, agent_id=helper.pk, message="Hi").run
    assert_error(api_client(outsider).get(f"/api/v1/runs/{run.pk}"), 404, "not_found")
    assert api_client(outsider).get("/api/v1/runs").json()["count"] == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path", "body"), [c for c in CALLS if c[0] != "get"])
def test_viewer_gets_403_on_writes_and_runs(team_agent, viewer, api_client, fake_openai, method, path, body):
    client = api_client(viewer)
    assert client.get(f"/api/v1/agents/{team_agent['id']}").status_code == 200
    response = post(client, path.format(**team_agent), body, method=method)
    assert_error(response, 403, "permission_denied")
    assert Agent.objects.get(pk=team_agent["id"]).name == "Helper"
    assert not AgentRun.objects.exists()


def test_unknown_ids_are_404_not_500(team, api_client):
    assert_error(api_client(team).get("/api/v1/agents/999999"), 404, "not_found")
    assert_error(api_client(team).get("/api/v1/runs/999999"), 404, "not_found")


def test_list_queries_do_not_grow(team, api_client, fake_provider, django_assert_max_num_queries):
    for i in range(12):
        agent_create(actor=team, name=f"agent {i}")
    client = api_client(team)
    with django_assert_max_num_queries(6):
        assert client.get("/api/v1/agents").json()["count"] == 12


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True], ids=["hot path", "django"])
def test_a_run_holds_no_database_connection_while_the_model_works(asgi_server, team, helper, fake_openai, stream):
    from django.db import connection

    from config import adb

    fake_openai.script(Reply("Slow answer.", delay=1.0))
    token = api_token_create(actor=team, name="ci").raw

    def checked_out() -> int:
        # A plain run is served by the hot path, a streamed one by Django: both record the run through the
        # server loop's async pool, and Django's pool serves the rest. The server runs in this process, so
        # both pools can be read here.
        pools = [connection.pool, *adb._pools.values()]
        return sum(stats["pool_size"] - stats["pool_available"] for stats in (p.get_stats() for p in pools))

    result: dict[str, object] = {}

    def call() -> None:
        result["response"] = httpx2.post(
            f"{asgi_server}/api/v1/agents/{helper.pk}/run",
            json={"message": "Hi", "stream": stream},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    before = checked_out()
    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 10
    while not fake_openai.requests_to("/v1/chat/completions"):
        assert time.monotonic() < deadline, "the model was never called"
        time.sleep(0.02)
    # The trace writer borrows one of Django's connections while it stores a batch, then gives it back:
    # let it finish what the run queued so far, so only the run's own holding is counted.
    flush_traces()
    during = checked_out()  # the model is answering (it waits a second)
    caller.join(timeout=30)
    assert result["response"].status_code == 200
    assert during == before  # (the test itself may hold one of Django's)
    assert len(adb._pools) == 1  # the run's statements went through the server loop's pool
