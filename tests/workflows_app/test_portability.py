"""Workflows move between workspaces with their agents (JSON or YAML), and templates create one in a click: through
the API, then run on the scripted model."""

from __future__ import annotations

import json

import pytest
import yaml

from agents_app.models import Agent
from agents_app.services import agent_create, handoff_add
from knowledge_app.models import VectorStore
from knowledge_app.services import store_create
from tests.accounts_app.test_api import assert_error
from tests.factories import make_fake_provider
from tests.fakes import Reply, ToolCall
from tests.knowledge_app.files import make_pdf
from tests.knowledge_app.test_file_search_tool import ingest
from tests.workflows_app.test_runs import create, last_user_text, run
from workflows_app.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def flow(team, fake_provider, api_client):
    """Draft (which can hand off to Fact checker) then, on a condition, Polish; else the run ends."""
    draft = agent_create(actor=team, name="Drafter", instructions="Draft.", provider_id=fake_provider.pk)
    checker = agent_create(actor=team, name="Fact checker", instructions="Check facts.")
    handoff_add(actor=team, agent_id=draft.pk, target_id=checker.pk)
    polish = agent_create(actor=team, name="Polisher", instructions="Polish.")
    steps = [
        {
            "id": "draft",
            "agent_id": draft.pk,
            "conditions": [{"type": "contains", "value": "ready", "target_step_id": "polish"}],
            "next_step_id": "end",
        },
        {"id": "polish", "agent_id": polish.pk, "input_template": "Polish: {{steps.draft.output}}"},
    ]
    return create(api_client(team), steps, name="Article")


def export(client, workflow_id, fmt="json"):
    response = client.get(f"/api/v1/workflows/{workflow_id}/export?format={fmt}")
    assert response.status_code == 200, response.content
    return response


def test_a_workflow_moves_to_another_workspace_with_its_agents_and_runs_there(
    team, outsider, flow, api_client, fake_openai
):
    response = export(api_client(team), flow)
    assert response["Content-Disposition"] == 'attachment; filename="article.json"'
    document = response.json()
    assert (document["format"], document["version"]) == ("agents-platform/workflow", 1)
    steps = document["workflow"]["steps"]
    assert [s.get("agent") for s in steps] == ["Drafter", "Polisher"]
    assert not any("agent_id" in s for s in steps)  # ids belong to one workspace
    assert steps[0]["conditions"][0]["target_step_id"] == "polish"
    # The agents the steps use, and the one they reach by a handoff.
    assert {a["name"] for a in document["agents"]} == {"Drafter", "Fact checker", "Polisher"}
    drafter = next(a for a in document["agents"] if a["name"] == "Drafter")
    assert drafter["handoffs"][0]["target"] == "Fact checker"
    assert drafter["provider"] == "Fake"

    make_fake_provider(outsider, fake_openai.base_url)
    theirs = api_client(outsider)
    imported = theirs.post("/api/v1/workflows/import", data={"document": document}, content_type="application/json")
    assert imported.status_code == 201, imported.content
    body = imported.json()
    assert body["name"] == "Article"
    agents = {a.name: a for a in Agent.objects.filter(workspace=outsider.workspace)}
    assert set(agents) == {"Drafter", "Fact checker", "Polisher"}
    assert [s["agent_id"] for s in body["steps"]] == [agents["Drafter"].pk, agents["Polisher"].pk]
    assert list(agents["Drafter"].handoffs.values_list("target__name", flat=True)) == ["Fact checker"]

    fake_openai.script(Reply("The draft is ready."), Reply("Polished."))
    answer = run(theirs, body["id"], "Write about tides")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["path"], answer.json()["output"]) == (["draft", "polish"], "Polished.")
    assert last_user_text(fake_openai.requests_to("/v1/chat/completions")[-1]) == "Polish: The draft is ready."


def test_yaml_round_trips_and_a_second_import_gets_new_names(team, flow, api_client):
    client = api_client(team)
    text = export(client, flow, "yaml").content.decode()
    assert yaml.safe_load(text)["workflow"]["name"] == "Article"
    imported = client.post("/api/v1/workflows/import", data={"text": text}, content_type="application/json")
    assert imported.status_code == 201, imported.content
    assert imported.json()["name"] == "Article (2)"
    copies = Agent.objects.filter(workspace=team.workspace, name__endswith="(2)")
    assert set(copies.values_list("name", flat=True)) == {"Drafter (2)", "Fact checker (2)", "Polisher (2)"}
    assert imported.json()["steps"][0]["agent_id"] == copies.get(name="Drafter (2)").pk
    named = client.post(
        "/api/v1/workflows/import", data={"text": text, "name": "Tides"}, content_type="application/json"
    )
    assert named.json()["name"] == "Tides"


def test_bad_imports_are_refused_whole(team, viewer, flow, api_client):
    client = api_client(team)
    document = export(client, flow).json()
    before = (Agent.objects.count(), Workflow.objects.count())

    wrong = client.post("/api/v1/workflows/import", data={"document": {"format": "x"}}, content_type="application/json")
    assert "format" in assert_error(wrong, 422, "validation_error")["errors"][0]["field"]

    document["workflow"]["steps"][1]["agent"] = "Nobody"
    unknown = client.post("/api/v1/workflows/import", data={"document": document}, content_type="application/json")
    body = assert_error(unknown, 422, "validation_error")
    errors = {e["field"]: e["message"] for e in body["errors"]}
    assert errors == {"workflow.steps[1].agent": "The export holds no agent of this name."}

    document["workflow"]["steps"][1]["agent"] = "Polisher"
    document["workflow"]["steps"][0]["conditions"][0]["target_step_id"] = "nowhere"
    graph = client.post("/api/v1/workflows/import", data={"document": document}, content_type="application/json")
    fields = [e["field"] for e in assert_error(graph, 422, "validation_error")["errors"]]
    assert any(f.startswith("workflow.steps[0]") for f in fields), fields

    not_yaml = client.post("/api/v1/workflows/import", data={"text": "{: ["}, content_type="application/json")
    assert_error(not_yaml, 422, "validation_error")
    assert (Agent.objects.count(), Workflow.objects.count()) == before  # nothing was created by any of them

    denied = api_client(viewer).post(
        "/api/v1/workflows/import", data={"document": document}, content_type="application/json"
    )
    assert_error(denied, 403, "permission_denied")
    assert_error(client.get(f"/api/v1/workflows/{flow}/export?format=xml"), 422, "validation_error")


def test_another_workspaces_workflow_cannot_be_exported(outsider, flow, api_client):
    assert_error(api_client(outsider).get(f"/api/v1/workflows/{flow}/export"), 404, "not_found")


def test_the_document_analysis_template_searches_an_uploaded_document_then_analyses_it(
    team, api_client, fake_provider, fake_openai, media, celery_worker
):
    client = api_client(team)
    listed = client.get("/api/v1/workflows/templates").json()
    assert {k: listed[0][k] for k in ("key", "needs_knowledge_base")} == {
        "key": "document-analysis",
        "needs_knowledge_base": True,
    }
    created = client.post("/api/v1/workflows/templates/document-analysis", data={}, content_type="application/json")
    assert created.status_code == 201, created.content
    workflow = created.json()
    assert workflow["name"] == "Document analysis"
    store = VectorStore.objects.get(workspace=team.workspace)
    assert store.name == "Document analysis documents"  # a new, empty knowledge base for its documents
    retriever = Agent.objects.get(workspace=team.workspace, name="Document Retriever")
    assert retriever.tools[0]["params"]["vector_store_id"] == store.pk
    assert [s["agent_id"] for s in workflow["steps"]] == [
        retriever.pk,
        Agent.objects.get(workspace=team.workspace, name="Document Analyzer").pk,
    ]

    pages = ["Tide tables for Brest.", "High tide at Brest on 3 March is at 06:42, with a coefficient of 98."]
    ingest(client, store.pk, "tides.pdf", make_pdf(pages))
    fake_openai.script(
        ToolCall("file_search", {"query": "high tide Brest 3 March"}),
        Reply("High tide on 3 March: 06:42 (tides.pdf, page 2)."),
        Reply("The high tide is at 06:42; the coefficient of 98 means a spring tide."),
    )
    answer = run(client, workflow["id"], "When is high tide in Brest on 3 March?")
    assert answer.status_code == 200, answer.content
    results = answer.json()["results"]
    assert results["retrieve"]["output"] == "High tide on 3 March: 06:42 (tides.pdf, page 2)."
    retriever_second = fake_openai.requests_to("/v1/chat/completions")[1]  # after its search
    [found] = [m["content"] for m in retriever_second.body["messages"] if m.get("role") == "tool"]
    assert "06:42" in json.loads(found)["results"][0]["text"]
    analyst_asked = last_user_text(fake_openai.requests_to("/v1/chat/completions")[-1])
    assert analyst_asked.startswith("Based on the following retrieved information, answer: When is high tide")
    assert "High tide on 3 March: 06:42 (tides.pdf, page 2)." in analyst_asked
    assert answer.json()["output"].startswith("The high tide is at 06:42")


def test_a_template_uses_a_given_knowledge_base_and_refuses_unknown_ones(team, outsider, api_client, fake_provider):
    client = api_client(team)
    mine = store_create(actor=team, name="Handbooks")
    created = client.post(
        "/api/v1/workflows/templates/document-analysis",
        data={"vector_store_id": mine.pk, "name": "Handbook answers"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["name"] == "Handbook answers"
    assert Agent.objects.get(name="Document Retriever").tools[0]["params"]["vector_store_id"] == mine.pk
    assert VectorStore.objects.filter(workspace=team.workspace).count() == 1  # no new one

    theirs = store_create(actor=outsider, name="Theirs")
    refused = client.post(
        "/api/v1/workflows/templates/document-analysis",
        data={"vector_store_id": theirs.pk},
        content_type="application/json",
    )
    assert_error(refused, 404, "not_found")
    unknown = client.post("/api/v1/workflows/templates/no-such", data={}, content_type="application/json")
    assert "document-analysis" in assert_error(unknown, 422, "validation_error")["errors"][0]["message"]
    assert Workflow.objects.filter(workspace=team.workspace).count() == 1
