"""``POST /api/v1/workflows/{id}/run``: steps run through the one run lifecycle on the scripted model; branches,
loops, budgets, parallel groups, failures and credits, seen through the API and the rows it leaves."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from agents import flush_traces
from django.test import override_settings

from accounts_app.models import CreditAccount
from agents_app.models import AgentRun
from agents_app.services import agent_create
from tests.fakes import Error, Reply
from traces_app.models import Span, Trace
from workflows_app.models import StepRun, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def writer(team, fake_provider):
    return agent_create(actor=team, name="Writer", instructions="Write.")


@pytest.fixture
def editor(team, fake_provider):
    return agent_create(actor=team, name="Editor", instructions="Edit.")


def create(client, steps, name="Flow"):
    response = client.post("/api/v1/workflows", data={"name": name, "steps": steps}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def run(client, workflow_id, message="Start", **extra):
    return client.post(
        f"/api/v1/workflows/{workflow_id}/run",
        data={"message": message, **extra},
        content_type="application/json",
    )


def last_user_text(request) -> str:
    messages = request.body.get("messages") or request.body.get("input")
    users = [m for m in messages if m.get("role") == "user"]
    content = users[-1]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def test_a_linear_chain_passes_each_output_on_and_answers_keyed_by_step(team, api_client, writer, editor, fake_openai):
    client = api_client(team)
    workflow_id = create(
        client,
        [
            {"id": "draft", "agent_id": writer.pk, "input_source": "user"},
            {"id": "edit", "agent_id": editor.pk, "input_source": "previous_step", "input_source_id": "draft"},
            {"id": "sign", "agent_id": editor.pk, "input_template": "Sign '{{steps.edit.output}}' for {{input}}"},
        ],
    )
    fake_openai.script(Reply("A draft.", usage=(10, 3)), Reply("An edited draft.", usage=(20, 4)), Reply("Signed."))
    response = run(client, workflow_id, "Write about otters")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["output"], body["path"]) == ("succeeded", "Signed.", ["draft", "edit", "sign"])
    assert [body["results"][s]["output"] for s in ("draft", "edit", "sign")] == [
        "A draft.",
        "An edited draft.",
        "Signed.",
    ]
    requests = fake_openai.requests_to("/v1/chat/completions") or fake_openai.requests_to("/v1/responses")
    assert [last_user_text(r) for r in requests] == [
        "Write about otters",
        "A draft.",
        "Sign 'An edited draft.' for Write about otters",
    ]
    # Each step is an agent run of its own, recorded and charged; the workflow adds them up.
    runs = {r.pk: r for r in AgentRun.objects.all()}
    assert len(runs) == 3
    assert all(r.status == "succeeded" for r in runs.values())
    assert body["results"]["edit"]["usage"]["input_tokens"] == 20
    assert body["usage"]["input_tokens"] == sum(r.usage["input_tokens"] for r in runs.values())
    assert Decimal(body["cost"]) == sum((r.cost for r in runs.values()), Decimal(0))
    # The later steps saw the earlier results in their context, as the spec says.
    edit_run = runs[int(body["results"]["edit"]["run_id"])]
    assert edit_run.context_data["workflow_results"] == {"draft": {"output": "A draft."}}
    system = json.dumps(requests[1].body["messages"][0])  # the context reaches the model with the instructions
    assert "workflow_results" in system
    assert "A draft." in system
    detail = client.get(f"/api/v1/workflow-runs/{body['workflow_run_id']}").json()
    assert [(s["step_id"], s["status"], s["agent_run_id"]) for s in detail["step_runs"]] == [
        ("draft", "succeeded", int(body["results"]["draft"]["run_id"])),
        ("edit", "succeeded", int(body["results"]["edit"]["run_id"])),
        ("sign", "succeeded", int(body["results"]["sign"]["run_id"])),
    ]
    assert detail["step_runs"][1]["input"] == "A draft."
    # One trace for the workflow run: a span per step, each step's run beneath it.
    flush_traces()
    trace = Trace.objects.get(trace_id=body["trace_id"])
    assert trace.workflow_run_id == int(body["workflow_run_id"])
    assert {r.trace_id for r in runs.values()} == {body["trace_id"]}
    spans = list(Span.objects.filter(trace=trace))
    steps = {s.name: s for s in spans if s.name.startswith("Step ")}
    assert set(steps) == {"Step draft", "Step edit", "Step sign"}
    by_id = {s.span_id: s for s in spans}

    def root_of(span: Span) -> Span:
        while span.parent_id:
            span = by_id[span.parent_id]
        return span

    assert {root_of(s).name for s in spans} == set(steps)  # nothing outside the steps
    agents = sorted((root_of(s).name, s.name) for s in spans if s.kind == "agent")
    assert agents == [("Step draft", "Writer"), ("Step edit", "Editor"), ("Step sign", "Editor")]


def test_a_branch_follows_the_first_condition_that_holds(team, api_client, writer, editor, fake_openai):
    client = api_client(team)
    workflow_id = create(
        client,
        [
            {
                "id": "triage",
                "agent_id": writer.pk,
                "conditions": [{"type": "contains", "value": "urgent", "target_step_id": "escalate"}],
                "next_step_id": "answer",
            },
            {"id": "escalate", "agent_id": editor.pk, "next_step_id": "end"},
            {"id": "answer", "agent_id": editor.pk},
        ],
    )
    fake_openai.script(Reply("This is URGENT."), Reply("Escalated."))
    body = run(client, workflow_id).json()
    assert (body["path"], body["output"]) == (["triage", "escalate"], "Escalated.")
    fake_openai.script(Reply("Routine."), Reply("Answered."))
    body = run(client, workflow_id).json()
    assert (body["path"], body["output"]) == (["triage", "answer"], "Answered.")
    assert "escalate" not in body["results"]


def loop(writer, editor, max_iterations=5):
    return [
        {"id": "draft", "agent_id": writer.pk},
        {
            "id": "review",
            "agent_id": editor.pk,
            "input_template": "Review: {{steps.draft.output}}",
            "conditions": [
                {"type": "contains", "value": "redo", "target_step_id": "draft", "max_iterations": max_iterations}
            ],
        },
    ]


def test_a_loop_goes_round_until_its_condition_stops_holding(team, api_client, writer, editor, fake_openai):
    client = api_client(team)
    workflow_id = create(client, loop(writer, editor))
    fake_openai.script(Reply("v1"), Reply("redo"), Reply("v2"), Reply("redo"), Reply("v3"), Reply("Fine."))
    body = run(client, workflow_id).json()
    assert body["status"] == "succeeded"
    assert body["path"] == ["draft", "review"] * 3
    assert (body["results"]["draft"]["output"], body["output"]) == ("v3", "Fine.")
    iterations = list(StepRun.objects.filter(step_id="draft").order_by("iteration").values_list("iteration", "output"))
    assert iterations == [(1, "v1"), (2, "v2"), (3, "v3")]


def test_a_loop_stops_at_its_maximum_and_the_run_goes_on(team, api_client, writer, editor, fake_openai):
    client = api_client(team)
    workflow_id = create(client, loop(writer, editor, max_iterations=2))
    fake_openai.script(*[Reply("redo")] * 6)
    body = run(client, workflow_id).json()
    assert body["status"] == "succeeded"
    assert body["path"] == ["draft", "review"] * 3  # twice back, then the jump no longer holds
    assert fake_openai.pending() == 0


def test_the_step_budget_stops_a_runaway_run(team, api_client, writer, editor, fake_openai):
    client = api_client(team)
    workflow_id = create(client, loop(writer, editor, max_iterations=50))
    fake_openai.script(*[Reply("redo")] * 10)
    with override_settings(WORKFLOW_MAX_STEP_RUNS=5):
        response = run(client, workflow_id)
    assert response.status_code == 502
    body = response.json()
    assert (body["status"], body["code"]) == ("failed", "step_budget_exceeded")
    assert "stopped after 5 steps" in body["detail"]
    assert len(body["path"]) == 5
    assert AgentRun.objects.count() == 5


def test_a_parallel_group_gathers_every_branch_before_the_next_step(team, api_client, writer, editor, fake_openai):
    client = api_client(team)
    workflow_id = create(
        client,
        [
            {"id": "both", "kind": "parallel", "branches": ["pros", "cons"]},
            {"id": "pros", "agent_id": writer.pk, "input_template": "Pros of {{input}}"},
            {"id": "cons", "agent_id": editor.pk, "input_template": "Cons of {{input}}"},
            {"id": "weigh", "agent_id": editor.pk, "input_template": "{{steps.pros.output}} vs {{steps.cons.output}}"},
        ],
    )
    fake_openai.echo = True
    fake_openai.script(Reply("A", delay=0.3), Reply("B", delay=0.3))  # both wait: they must overlap to finish fast
    response = run(client, workflow_id, "tea")
    body = response.json()
    assert response.status_code == 200, body
    assert body["path"] == ["both", "weigh"]
    gathered = body["results"]["both"]["output"]
    assert set(gathered) == {"pros", "cons"}
    assert sorted(gathered.values()) == ["A", "B"]
    assert body["output"] == f"{gathered['pros']} vs {gathered['cons']}"
    rows = {r.step_id: r for r in StepRun.objects.all()}
    assert (rows["pros"].group_id, rows["cons"].group_id) == ("both", "both")
    pros_done, cons_done = rows["pros"].finished_at, rows["cons"].finished_at
    assert pros_done is not None
    assert cons_done is not None
    assert rows["pros"].started_at < cons_done
    assert rows["cons"].started_at < pros_done  # they ran at the same time


def test_a_failing_step_fails_the_run_and_later_steps_do_not_run(team, api_client, writer, editor, fake_openai):
    client = api_client(team)
    workflow_id = create(client, [{"id": "draft", "agent_id": writer.pk}, {"id": "edit", "agent_id": editor.pk}])
    fake_openai.script(*[Error(401, "Incorrect API key")] * 3)
    response = run(client, workflow_id)
    assert response.status_code == 502
    body = response.json()
    assert body["status"] == "failed"
    assert body["detail"].startswith("Step 'draft' failed: ")
    assert body["path"] == ["draft"]
    assert body["results"]["draft"]["status"] == "failed"
    assert "edit" not in body["results"]
    assert AgentRun.objects.count() == 1
    row = WorkflowRun.objects.get()
    assert (row.status, row.finished_at is not None, row.next_step_id) == ("failed", True, "")
    assert StepRun.objects.get().status == "failed"


def test_a_workflow_its_credits_cannot_cover_is_refused_before_its_first_step(
    team, api_client, writer, editor, fake_openai
):
    client = api_client(team)
    workflow_id = create(client, [{"id": "draft", "agent_id": writer.pk}, {"id": "edit", "agent_id": editor.pk}])
    CreditAccount.objects.filter(workspace=team.workspace).update(balance=Decimal("0.01"))
    response = run(client, workflow_id)
    assert response.status_code == 402, response.content
    assert "the workflow (each of its steps once) needs" in response.json()["detail"]
    assert not WorkflowRun.objects.exists()
    assert not AgentRun.objects.exists()
    assert fake_openai.requests_to("/v1/chat/completions") == []


def test_runs_are_listed_and_another_workspaces_run_is_a_404(team, outsider, viewer, api_client, writer, fake_openai):
    client = api_client(team)
    workflow_id = create(client, [{"id": "draft", "agent_id": writer.pk}])
    fake_openai.script(Reply("Done."))
    run_id = run(client, workflow_id).json()["workflow_run_id"]
    assert [r["id"] for r in client.get(f"/api/v1/workflows/{workflow_id}/runs").json()["items"]] == [int(run_id)]
    assert [r["id"] for r in client.get("/api/v1/workflow-runs").json()["items"]] == [int(run_id)]
    assert api_client(outsider).get(f"/api/v1/workflow-runs/{run_id}").status_code == 404
    assert run(api_client(outsider), workflow_id).status_code == 404
    assert run(api_client(viewer), workflow_id).status_code == 403
    assert run(client, workflow_id, message="").status_code == 422
