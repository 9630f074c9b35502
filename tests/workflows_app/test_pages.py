"""Workflow pages through the browser's requests: the list, the designer (buttons, errors at their step, the graph
redrawn), a workflow's page, runs started in the background with a real worker and followed live, cancel, templates
and import."""

from __future__ import annotations

import json
import re
import time

import pytest

from agents_app.models import Agent
from agents_app.services import agent_create
from knowledge_app.models import VectorStore
from tests.fakes import Reply
from workflows_app.models import Workflow, WorkflowRun
from workflows_app.portability import workflow_export
from workflows_app.services import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)
HX = {"HX-Request": "true"}


@pytest.fixture
def agents(team, fake_provider):
    return (
        agent_create(actor=team, name="Writer", instructions="Write."),
        agent_create(actor=team, name="Editor", instructions="Edit."),
    )


def designer_post(client, url, data, htmx=False):
    return client.post(url, data, headers=HX if htmx else {})


def test_the_list_says_what_to_do_first_and_then_lists_workflows(team, viewer, page_client, agents):
    client = page_client(team)
    empty = client.get("/workflows/").content.decode()
    assert "No workflows yet" in empty
    assert 'href="/workflows/new/"' in empty
    assert 'data-template="document-analysis"' in empty
    writer, _ = agents
    workflow = workflow_create(actor=team, name="Article", steps=[{"id": "draft", "agent_id": writer.pk}])
    WorkflowRun.objects.create(
        workspace=team.workspace, workflow=workflow, workflow_name="Article", message="x", status="failed"
    )
    listed = client.get("/workflows/").content.decode()
    row = listed.split(f'href="/workflows/{workflow.pk}/"')[1].split("</tr>")[0]
    assert "Article" in row
    assert 'class="badge status-failed"' in row
    seen_by_viewer = page_client(viewer).get("/workflows/").content.decode()
    assert "New workflow" not in seen_by_viewer
    assert "Use this template" not in seen_by_viewer


def test_the_designer_builds_a_branching_workflow_and_names_each_error_at_its_step(team, page_client, agents):
    writer, editor = agents
    client = page_client(team)
    page = client.get("/workflows/new/").content.decode()
    assert 'name="steps[0].id"' in page
    assert 'data-testid="workflow-graph"' in page

    typed = {
        "name": "Article",
        "steps[0].id": "draft",
        "steps[0].kind": "agent",
        "steps[0].agent_id": str(writer.pk),
    }
    # Buttons change the typed steps without saving: add a step, then a condition to the first one.
    added = designer_post(client, "/workflows/new/", {**typed, "action": "add_step"}, htmx=True).content.decode()
    assert 'id="designer"' in added
    assert "<html" not in added  # only the designer, swapped in place
    assert 'name="steps[1].id" value="step2"' in added
    assert re.search(r'name="steps\[0\]\.id" value="draft"', added)
    typed |= {"steps[1].id": "polish", "steps[1].kind": "agent", "steps[1].agent_id": str(editor.pk)}
    with_condition = designer_post(client, "/workflows/new/", {**typed, "action": "add_condition:0"}, htmx=True)
    assert 'name="steps[0].conditions[0].type"' in with_condition.content.decode()
    assert not Workflow.objects.exists()

    # A jump to a step that does not exist: refused, the message at the condition's step, what was typed kept.
    typed |= {
        "steps[0].conditions[0].type": "contains",
        "steps[0].conditions[0].value": "ready",
        "steps[0].conditions[0].ignore_case": "on",
        "steps[0].conditions[0].target_step_id": "polsh",
        "steps[0].next_step_id": "end",
    }
    refused = designer_post(client, "/workflows/new/", {**typed, "action": "save"}, htmx=True)
    assert refused.status_code == 422
    html = refused.content.decode()
    card = html.split('data-step-index="0"')[1].split('data-step-index="1"')[0]
    assert "polsh" in card
    assert "error-text" in card
    assert 'value="ready"' in card
    assert not Workflow.objects.exists()

    # The graph is redrawn from what is typed, without saving.
    typed["steps[0].conditions[0].target_step_id"] = "polish"
    preview = designer_post(client, "/workflows/new/", {**typed, "action": "preview"}, htmx=True).content.decode()
    assert preview.startswith('<figure class="workflow-graph" id="diagram"')
    assert "contains “ready”" in preview
    assert 'class="wf-edge wf-condition' in preview

    saved = designer_post(client, "/workflows/new/", {**typed, "action": "save"})
    workflow = Workflow.objects.get(name="Article")
    assert saved.status_code == 302
    assert saved["Location"] == f"/workflows/{workflow.pk}/"
    assert workflow.steps == [
        {
            "id": "draft",
            "agent_id": writer.pk,
            "conditions": [{"type": "contains", "value": "ready", "target_step_id": "polish"}],
            "next_step_id": "end",
        },
        {"id": "polish", "agent_id": editor.pk},
    ]
    detail = client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert "contains “ready”" in detail
    assert 'id="no-runs"' in detail

    # Editing: a loop back with its maximum, a JSON field test, and the version moves.
    edited = {
        **typed,
        "steps[0].conditions[0].target_step_id": "polish",
        "steps[1].conditions[0].type": "json_field",
        "steps[1].conditions[0].field": "score",
        "steps[1].conditions[0].operator": "lt",
        "steps[1].conditions[0].value": "0.8",
        "steps[1].conditions[0].target_step_id": "draft",
        "steps[1].conditions[0].max_iterations": "3",
        "action": "save",
    }
    # Every jump of a loop needs its maximum: said at the step that lacks one.
    refused = designer_post(client, f"/workflows/{workflow.pk}/edit/", edited).content.decode()
    assert "max_iterations" in refused.split('data-step-index="0"')[1].split('data-step-index="1"')[0]
    edited["steps[0].conditions[0].max_iterations"] = "5"
    response = designer_post(client, f"/workflows/{workflow.pk}/edit/", edited)
    assert response.status_code == 302, re.findall(r"error-text[^>]*>([^<]*)", response.content.decode())
    workflow.refresh_from_db()
    assert workflow.version == 2
    assert workflow.steps[1]["conditions"] == [
        {
            "type": "json_field",
            "field": "score",
            "operator": "lt",
            "value": 0.8,
            "target_step_id": "draft",
            "max_iterations": 3,
        }
    ]
    again = client.get(f"/workflows/{workflow.pk}/edit/").content.decode()
    assert 'name="steps[1].conditions[0].value" value="0.8"' in again
    assert 'class="wf-edge wf-loop' in again
    assert "score lt 0.8 · at most 3 times" in again


def test_removing_and_moving_steps(team, page_client, agents):
    writer, editor = agents
    client = page_client(team)
    typed = {
        "name": "Two",
        "steps[0].id": "a",
        "steps[0].agent_id": str(writer.pk),
        "steps[1].id": "b",
        "steps[1].agent_id": str(editor.pk),
    }
    moved = designer_post(client, "/workflows/new/", {**typed, "action": "move_up:1"}, htmx=True).content.decode()
    assert moved.index('name="steps[0].id" value="b"') < moved.index('name="steps[1].id" value="a"')
    removed = designer_post(client, "/workflows/new/", {**typed, "action": "remove_step:0"}, htmx=True)
    html = removed.content.decode()
    assert 'name="steps[0].id" value="b"' in html
    assert 'name="steps[1].id"' not in html


def test_a_parallel_group_is_drawn_as_a_box_holding_its_branches(team, page_client, agents):
    writer, editor = agents
    steps = [
        {"id": "both", "kind": "parallel", "branches": ["short", "long"]},
        {"id": "short", "agent_id": writer.pk},
        {"id": "long", "agent_id": editor.pk},
        {"id": "merge", "agent_id": editor.pk},
    ]
    workflow = workflow_create(actor=team, name="Fan out", steps=steps)
    html = page_client(team).get(f"/workflows/{workflow.pk}/").content.decode()
    assert 'class="wf-group" data-step="both"' in html
    assert 'class="wf-node wf-branch" data-step="short"' in html
    assert 'class="wf-node wf-branch" data-step="long"' in html
    assert "1 parallel group(s)" in html
    designer = page_client(team).get(f"/workflows/{workflow.pk}/edit/").content.decode()
    defaults = re.findall(r'<option value="">Default \(([^)]*)\)</option>', designer)
    # A branch runs on its group's input, a main-flow step after the first on the previous step's output.
    assert defaults == ["the input of its group both", "the input of its group both", "the previous step's output"]


def test_a_run_from_its_page_goes_to_the_worker_and_its_page_follows_it_to_the_end(
    team, page_client, agents, fake_openai, celery_worker
):
    writer, editor = agents
    workflow = workflow_create(
        actor=team,
        name="Article",
        steps=[{"id": "draft", "agent_id": writer.pk}, {"id": "polish", "agent_id": editor.pk}],
    )
    fake_openai.script(Reply("A draft.", delay=0.5), Reply("Polished."))
    client = page_client(team)
    started = client.post(f"/workflows/{workflow.pk}/run/", {"message": "Tides"})
    run = WorkflowRun.objects.get(workflow=workflow)
    assert started["Location"] == f"/workflows/runs/{run.pk}/"
    page = client.get(started["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in page  # follows the run while it goes on
    deadline = time.monotonic() + 60
    while True:
        progress = client.get(f"/workflows/runs/{run.pk}/?part=progress").content.decode()
        if 'data-status="succeeded"' in progress.split(">")[0]:
            break
        assert time.monotonic() < deadline, progress[:500]
        time.sleep(0.3)
    assert "hx-trigger" not in progress.split(">")[0]  # ended: no more polling
    assert 'id="run-path">draft → polish<' in progress
    assert 'data-step="draft" data-status="succeeded"' in progress
    assert "Polished." in progress
    assert f'href="/traces/{run.trace_id}/"' in client.get(f"/workflows/runs/{run.pk}/").content.decode()
    history = client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert f'href="/workflows/runs/{run.pk}/"' in history


def test_a_run_that_cannot_start_says_why_and_a_queued_run_can_be_cancelled(team, viewer, page_client, agents):
    writer, _ = agents
    workflow = workflow_create(actor=team, name="Article", steps=[{"id": "draft", "agent_id": writer.pk}])
    client = page_client(team)
    empty = client.post(f"/workflows/{workflow.pk}/run/", {"message": "  "}, follow=True).content.decode()
    assert "The run could not start" in empty
    assert not WorkflowRun.objects.exists()
    assert page_client(viewer).post(f"/workflows/{workflow.pk}/run/", {"message": "Hi"}).status_code == 403

    client.post(f"/workflows/{workflow.pk}/run/", {"message": "Tides"})  # no worker here: it stays queued
    run = WorkflowRun.objects.get()
    assert run.status == "queued"
    assert page_client(viewer).post(f"/workflows/runs/{run.pk}/cancel/").status_code == 403
    cancelled = client.post(f"/workflows/runs/{run.pk}/cancel/", follow=True).content.decode()
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert "Cancelled." in cancelled
    again = client.post(f"/workflows/runs/{run.pk}/cancel/", follow=True).content.decode()
    assert "already ended" in again


def test_templates_and_imports_from_the_list(team, viewer, outsider, page_client, agents):
    client = page_client(team)
    created = client.post("/workflows/templates/document-analysis/", follow=True)
    workflow = Workflow.objects.get(workspace=team.workspace, name="Document analysis")
    assert created.redirect_chain[-1][0] == f"/workflows/{workflow.pk}/"
    assert "Upload documents to its knowledge base" in created.content.decode()
    assert page_client(viewer).post("/workflows/templates/document-analysis/").status_code == 403
    unknown = client.post("/workflows/templates/no-such/", follow=True).content.decode()
    assert "Unknown template" in unknown

    document = workflow_export(actor=team, workflow_id=workflow.pk)
    retriever = next(a for a in document["agents"] if a["name"] == "Document Retriever")
    # The knowledge base is named, not numbered: ids belong to one workspace.
    assert retriever["tools"][0]["params"] == {"vector_store": "Document analysis documents", "max_num_results": 5}
    imported = page_client(outsider).post("/workflows/import/", {"text": json.dumps(document)}, follow=True)
    copy = Workflow.objects.get(workspace=outsider.workspace)
    assert imported.redirect_chain[-1][0] == f"/workflows/{copy.pk}/"
    # Theirs is a knowledge base of their own with that name (created empty, for their documents).
    store = VectorStore.objects.get(workspace=outsider.workspace)
    assert store.name == "Document analysis documents"
    their_retriever = Agent.objects.get(workspace=outsider.workspace, name="Document Retriever")
    assert their_retriever.tools[0]["params"]["vector_store_id"] == store.pk
    bad = client.post("/workflows/import/", {"text": "[1, 2]"}, follow=True).content.decode()
    assert "Import failed" in bad


def test_the_graph_leaves_room_for_every_label(team, page_client, agents):
    writer, editor = agents
    steps = [
        {
            "id": "draft",
            "agent_id": writer.pk,
            "conditions": [
                {"type": "contains", "value": "a rather long phrase", "target_step_id": "publish", "max_iterations": 3}
            ],
        },
        {
            "id": "polish",
            "agent_id": editor.pk,
            "conditions": [
                {
                    "type": "json_field",
                    "field": "review.score",
                    "operator": "lt",
                    "value": 0.8,
                    "target_step_id": "draft",
                    "max_iterations": 3,
                }
            ],
        },
        {"id": "publish", "agent_id": writer.pk},
    ]
    workflow = workflow_create(actor=team, name="Loops", steps=steps)
    html = page_client(team).get(f"/workflows/{workflow.pk}/").content.decode()
    html = html.split('data-testid="workflow-graph"')[1]
    width = int(re.search(r'<svg viewBox="0 0 (\d+) \d+"', html)[1])
    found = re.findall(r'<text class="wf-label[^"]*" x="(\d+)" y="\d+" text-anchor="(\w+)">([^<]+)</text>', html)
    labels = [label for label in found if label[2] != "otherwise"]  # those on the straight way on
    assert len(labels) == 2
    lanes = [int(x) for x in re.findall(r'class="wf-edge wf-(?:condition|loop)[^"]*" d="M \d+ \d+ H (\d+)', html)]
    for x, anchor, text in labels:
        assert anchor == "start"
        assert int(x) > max(lanes)  # beyond every lane's line
        assert int(x) + 6.5 * len(text) <= width  # 11px text: about 6.5px a character
