"""Agents search knowledge bases: the file search tool through the HTTP API and the real runtime, with a real
worker ingesting the document, the scripted model calling the tool, citations on the run, the chat page and the
trace, and every way a tool can name a knowledge base it must not reach."""

from __future__ import annotations

import json
import time

import pytest
from agents import flush_traces
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from agents_app.models import Agent, AgentRun
from agents_app.services import agent_create
from knowledge_app.models import SearchLog
from knowledge_app.services import store_create
from providers_app.services import provider_create
from tests.fakes import Reply, ToolCall
from tests.knowledge_app.files import make_pdf
from traces_app.models import Span

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = [
    "Welcome to the Zephyr 9 handbook. This manual covers setup and care of the device.",
    "To calibrate the Zephyr 9, hold the violet button for eleven seconds until the lamp blinks amber twice.",
]


def tool_outputs(fake_openai) -> list[str]:
    outputs: list[str] = []
    for request in fake_openai.requests_to("/v1/chat/completions"):
        outputs = [m["content"] for m in request.body["messages"] if m.get("role") == "tool"]
    return outputs


def ingest(client: Client, store_id: int, name: str, data: bytes) -> dict:
    response = client.post("/api/v1/files", {"file": SimpleUploadedFile(name, data), "vector_store_id": store_id})
    assert response.status_code == 201, response.content
    file_id = response.json()["id"]
    deadline = time.monotonic() + 90
    while (body := client.get(f"/api/v1/files/{file_id}").json())["status"] in ("queued", "processing"):
        assert time.monotonic() < deadline, "the worker did not finish the file"
        time.sleep(0.2)
    assert body["status"] == "processed", body
    return body


def test_an_agent_answers_from_an_uploaded_document_and_cites_it(
    team, api, api_client, fake_provider, fake_openai, media, celery_worker
):
    store = store_create(actor=team, name="Manuals", description="Device handbooks", chunk_size=300, chunk_overlap=0)
    client = api_client(team)
    uploaded = ingest(client, store.pk, "zephyr.pdf", make_pdf(PAGES))
    agent = api("POST", "/agents", {"name": "Support", "instructions": "Answer from the manuals."}).json()
    added = api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": store.pk, "max_results": 2})
    assert added.status_code == 201, added.text
    tool = added.json()
    assert (tool["id"], tool["name"], tool["type"]) == ("file_search", "file_search", "file_search")
    assert tool["params"] == {"vector_store_id": store.pk, "max_num_results": 2}
    assert "Manuals" in tool["description"]
    assert "Device handbooks" in tool["description"]

    fake_openai.script(
        ToolCall("file_search", {"query": "calibrate the Zephyr"}),
        Reply("Hold the violet button for eleven seconds [1]."),
    )
    response = api("POST", f"/agents/{agent['id']}/run", {"message": "How do I calibrate it?"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["output"] == "Hold the violet button for eleven seconds [1]."

    # The model was given numbered passages to cite; the one only this document holds comes first.
    [given] = tool_outputs(fake_openai)
    results = json.loads(given)["results"]
    assert results[0]["ref"] == 1
    assert "violet button for eleven seconds" in results[0]["text"]
    assert (results[0]["file"], results[0]["page"], results[0]["file_id"]) == ("zephyr.pdf", 2, uploaded["id"])
    # The model is told what the tool takes: a query.
    sent = fake_openai.requests_to("/v1/chat/completions")[0].body["tools"][0]["function"]
    assert sent["name"] == "file_search"
    assert sent["parameters"]["required"] == ["query"]

    # The run's answer carries the citations...
    [first, *_] = answer["citations"]
    assert (first["ref"], first["file"], first["page"], first["store_id"]) == (1, "zephyr.pdf", 2, store.pk)
    assert "violet button" in first["snippet"]
    assert first["score"] > 0
    run = AgentRun.objects.get(pk=answer["run_id"])
    assert run.citations == [{k: v for k, v in c.items() if v is not None} for c in answer["citations"]]
    # ...the search is logged against the run...
    log = SearchLog.objects.get(run_id=run.pk)
    assert (log.query, log.mode, log.store_id, log.result_count) == (
        "calibrate the Zephyr",
        "hybrid",
        store.pk,
        len(results),
    )
    # ...and the trace shows the query, the chunks found and their scores.
    flush_traces()
    span = Span.objects.get(trace_id=run.trace_id, kind="custom", name="file_search")
    assert span.data["data"]["query"] == "calibrate the Zephyr"
    found = span.data["data"]["results"]
    assert found[0]["file"] == "zephyr.pdf"
    assert set(found[0]["scores"]) >= {"vector", "keyword", "rrf"}
    assert Span.objects.filter(trace_id=run.trace_id, kind="function", name="file_search").exists()


def test_the_chat_page_shows_the_citations_under_the_answer(
    team, api, api_client, page_client, fake_provider, fake_openai, media, celery_worker
):
    store = store_create(actor=team, name="Manuals", chunk_size=300, chunk_overlap=0)
    ingest(api_client(team), store.pk, "zephyr.pdf", make_pdf(PAGES))
    agent = api("POST", "/agents", {"name": "Support"}).json()
    api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": store.pk})
    fake_openai.script(ToolCall("file_search", {"query": "calibrate violet button"}), Reply("See [1]."))
    run_id = api("POST", f"/agents/{agent['id']}/run", {"message": "Calibrate?"}).json()["run_id"]
    meta = page_client(team).get(f"/agents/runs/{run_id}/meta/")
    assert meta.status_code == 200
    page = meta.content.decode()
    assert 'aria-label="Sources"' in page
    assert "zephyr.pdf" in page
    assert "page 2" in page
    assert "violet button" in page
    assert f"/knowledge/{store.pk}/?file=" in page
    run_page = page_client(team).get(f"/agents/runs/{run_id}/").content.decode()
    assert "Sources" in run_page
    assert "zephyr.pdf" in run_page
    assert "page 2" in run_page


def test_file_search_tool_names_and_defaults(team, api, fake_provider):
    store = store_create(actor=team, name="Docs")
    agent = api("POST", "/agents", {"name": "Reader"}).json()
    first = api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": store.pk})
    second = api(
        "POST",
        f"/agents/{agent['id']}/file-search-tool",
        {"vector_store_id": str(store.pk), "description": "Policies.", "similarity_threshold": 0.4},
    )
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert second.json()["name"] == "file_search_2"
    assert second.json()["params"] == {"vector_store_id": store.pk, "max_num_results": 3, "similarity_threshold": 0.4}
    taken = api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": store.pk, "name": "file_search"})
    assert taken.status_code == 422
    assert taken.json()["errors"][0]["field"] == "name"
    stored = Agent.objects.get(pk=agent["id"]).tools
    assert [t["name"] for t in stored] == ["file_search", "file_search_2"]
    bad = api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": store.pk, "max_results": 0})
    assert bad.status_code == 422


def test_another_workspaces_or_a_private_store_cannot_be_searched_by_an_agent(
    team, outsider, teammate, api, api_client, fake_provider
):
    foreign = store_create(actor=outsider, name="Theirs")
    agent = api("POST", "/agents", {"name": "Nosy"}).json()
    response = api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": foreign.pk})
    assert response.status_code == 404
    assert response.json()["detail"] == "Vector store not found."
    tool = {"name": "docs", "type": "file_search", "params": {"vector_store_id": foreign.pk}}
    patched = api("PATCH", f"/agents/{agent['id']}", {"tools": [tool]})
    assert patched.status_code == 422
    assert patched.json()["errors"][0]["field"] == "tools.0.params.vector_store_id"
    assert Agent.objects.get(pk=agent["id"]).tools == []

    # A member's private store: another member cannot point an agent at it...
    private = store_create(actor=team, name="Mine", is_public=False)
    member = api_client(teammate)
    refused = member.post(
        f"/api/v1/agents/{agent['id']}/file-search-tool",
        {"vector_store_id": private.pk},
        content_type="application/json",
    )
    assert refused.status_code == 404
    # ...but may edit an agent its owner gave it to, without losing the tool.
    api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": private.pk})
    edited = member.patch(
        f"/api/v1/agents/{agent['id']}", {"instructions": "Be brief."}, content_type="application/json"
    )
    assert edited.status_code == 200, edited.content
    assert edited.json()["tools"][0]["params"]["vector_store_id"] == private.pk


def test_an_openai_vector_store_uses_the_hosted_tool_only_on_openai(team, api, fake_provider, fake_openai):
    agent = api("POST", "/agents", {"name": "Hosted"}).json()
    refused = api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": "vs_abc123"})
    assert refused.status_code == 422
    assert "OpenAI provider" in refused.json()["errors"][0]["message"]
    malformed = api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": "../etc"})
    assert malformed.status_code == 422

    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        openai = provider_create(
            actor=team,
            type="openai",
            name="OpenAI",
            api_key="sk-test-0123456789",
            base_url=fake_openai.base_url,
            models=["gpt-test"],
        )
    on_openai = api("POST", "/agents", {"name": "OnOpenAI", "provider_id": openai.pk}).json()
    added = api(
        "POST",
        f"/agents/{on_openai['id']}/file-search-tool",
        {"vector_store_id": "vs_abc123", "max_results": 4, "similarity_threshold": 0.5},
    )
    assert added.status_code == 201, added.text
    fake_openai.script(Reply("From the hosted store."))
    response = api("POST", f"/agents/{on_openai['id']}/run", {"message": "Find it"})
    assert response.status_code == 200, response.text
    sent = fake_openai.requests_to("/v1/responses")[-1].body["tools"]
    assert sent == [
        {
            "type": "file_search",
            "vector_store_ids": ["vs_abc123"],
            "max_num_results": 4,
            "ranking_options": {"score_threshold": 0.5},
        }
    ]
    # Moved to a provider that cannot search OpenAI's stores, the agent is refused with the reason.
    moved = api("PATCH", f"/agents/{on_openai['id']}", {"provider_id": fake_provider.pk})
    assert moved.status_code == 422
    assert "OpenAI provider" in moved.json()["errors"][0]["message"]


def test_a_deleted_store_is_reported_to_the_model_not_failing_the_run(team, api, fake_provider, fake_openai):
    store = store_create(actor=team, name="Soon gone")
    agent = api("POST", "/agents", {"name": "Reader"}).json()
    api("POST", f"/agents/{agent['id']}/file-search-tool", {"vector_store_id": store.pk})
    api("DELETE", f"/vector-stores/{store.pk}")
    fake_openai.script(ToolCall("file_search", {"query": "anything"}), Reply("I could not search."))
    response = api("POST", f"/agents/{agent['id']}/run", {"message": "Look it up"})
    assert response.status_code == 200, response.text
    assert response.json()["citations"] == []
    [given] = tool_outputs(fake_openai)
    assert json.loads(given) == {"error": f"The knowledge base {store.pk} no longer exists."}
    flush_traces()
    span = Span.objects.get(trace_id=response.json()["trace_id"], kind="function")
    assert "no longer exists" in span.error["message"]


def test_viewers_cannot_add_a_file_search_tool(team, api_client, fake_provider, viewer):
    store = store_create(actor=team, name="Docs")
    helper = agent_create(actor=team, name="Helper")
    response = api_client(viewer).post(
        f"/api/v1/agents/{helper.pk}/file-search-tool", {"vector_store_id": store.pk}, content_type="application/json"
    )
    assert response.status_code == 403
    assert Agent.objects.get(pk=helper.pk).tools == []
