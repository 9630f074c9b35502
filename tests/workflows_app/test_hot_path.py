"""``POST /api/v1/workflows/{id}/run`` on the API hot path (workflows_app/hot_path.py): plain token runs served on
the event loop with one statement per write, everything else handed to Django. Through uvicorn, as deployed."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from agents import flush_traces

from accounts_app.models import CreditAccount, Role
from agents_app.models import Agent, AgentRun
from agents_app.services import agent_create
from config.asgi import build_application
from tests.agents_app.test_hot_path import balance, bearer
from tests.conftest import serve_asgi
from tests.factories import add_member, make_user
from tests.fakes import Error, Reply
from traces_app.models import Span
from workflows_app.models import StepRun, Workflow, WorkflowRun
from workflows_app.services import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def writer(team, fake_provider) -> Agent:
    return agent_create(actor=team, name="Writer", instructions="Write.")


@pytest.fixture
def chain(team, writer) -> int:
    editor = agent_create(actor=team, name="Editor", instructions="Edit.")
    steps = [{"id": "draft", "agent_id": writer.pk, "input_source": "user"}, {"id": "edit", "agent_id": editor.pk}]
    return workflow_create(actor=team, name="Chain", steps=steps).pk


def post(server: str, workflow_id: int, headers: dict[str, str], timeout: float = 30, **body: Any) -> httpx2.Response:
    return httpx2.post(
        f"{server}/api/v1/workflows/{workflow_id}/run",
        json={"message": "Write about otters", **body},
        headers=headers,
        timeout=timeout,
    )


def test_a_plain_token_workflow_run_is_served_without_django(asgi_server, team, chain, fake_openai, handed_over):
    fake_openai.script(Reply("A draft.", usage=(100, 50)), Reply("Edited.", usage=(200, 10)))
    before = balance(team)
    response = post(asgi_server, chain, bearer(team))
    assert response.status_code == 200, response.text
    assert handed_over == []
    body = response.json()
    assert (body["status"], body["output"], body["path"]) == ("succeeded", "Edited.", ["draft", "edit"])
    assert {step: result["output"] for step, result in body["results"].items()} == {
        "draft": "A draft.",
        "edit": "Edited.",
    }
    run = WorkflowRun.objects.get(pk=body["workflow_run_id"])
    assert (run.status, run.path, run.final_output, run.next_step_id) == ("succeeded", ["draft", "edit"], "Edited.", "")
    assert run.usage == {"requests": 2, "input_tokens": 300, "output_tokens": 60, "total_tokens": 360}
    steps = list(StepRun.objects.filter(workflow_run=run).order_by("sequence"))
    assert [(s.step_id, s.status, s.output, s.input) for s in steps] == [
        ("draft", "succeeded", "A draft.", "Write about otters"),
        ("edit", "succeeded", "Edited.", "A draft."),
    ]
    agent_runs = [step.agent_run for step in steps]
    assert [r.status for r in agent_runs if r is not None] == ["succeeded", "succeeded"]
    assert {r.trace_id for r in agent_runs if r is not None} == {run.trace_id}
    # Each step was charged at its own cost, and the run adds them up.
    assert run.cost == sum(r.cost for r in agent_runs if r is not None) > 0
    assert balance(team) == before - run.cost
    flush_traces()
    deadline = time.monotonic() + 10
    while Span.objects.filter(trace__trace_id=run.trace_id, name__startswith="Step ").count() < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_hot_path_answers_exactly_as_django_does(asgi_server, team, chain, fake_openai, handed_over):
    fake_openai.script(*(Reply(text, usage=(10, 5)) for text in ("A draft.", "Edited.") * 2))
    headers = bearer(team)
    hot = post(asgi_server, chain, headers, metadata={"k": 1})
    assert handed_over == []
    with serve_asgi(build_application(hot_path=False)) as django_only:
        full = post(django_only, chain, headers, metadata={"k": 1})
    assert hot.status_code == full.status_code == 200

    def comparable(response: httpx2.Response) -> tuple[dict[str, str], dict[str, Any]]:
        varying_headers = {"content-length", "date", "server"}
        response_headers = {k: v for k, v in response.headers.items() if k not in varying_headers}
        body = {k: v for k, v in response.json().items() if k not in {"workflow_run_id", "trace_id", "duration_ms"}}
        for result in body["results"].values():
            result.pop("run_id")
            for message in result["messages"]:
                message["provider_data"].pop("response_id")  # the model's own id for each answer
        return response_headers, body

    assert comparable(hot) == comparable(full)
    assert hot.headers["x-frame-options"] == "DENY"
    runs = list(WorkflowRun.objects.order_by("pk").values_list("metadata", "status", "cost", "path"))
    assert runs[0] == runs[1] == ({"k": 1}, "succeeded", Decimal("0.04"), ["draft", "edit"])


def test_a_warm_workflow_run_reads_nothing_and_writes_one_statement_at_a_time(
    asgi_server, team, chain, fake_openai, handed_over, statements
):
    fake_openai.script(*(Reply(text) for text in ("A draft.", "Edited.") * 2))
    headers = bearer(team)
    for _ in range(2):
        assert post(asgi_server, chain, headers).status_code == 200
    assert handed_over == []
    tokens = [index for index, sql in enumerate(statements) if "token_hash" in sql]
    second = statements[tokens[1] :]

    def kind(sql: str) -> str:
        for marker, name in (
            ("token_hash", "token"),
            ("wf_run AS", "workflow start"),
            ("step_row AS", "step opened"),
            ("run_row AS", "agent run start"),
            ("run_claimed AS", "agent run end"),
            ("step_closed AS", "step recorded"),
            ("wf_ended AS", "workflow end"),
        ):
            if marker in sql:
                return name
        return sql

    step = ["step opened", "agent run start", "agent run end", "step recorded"]
    assert [kind(sql) for sql in second] == ["token", "workflow start", *step, *step, "workflow end"]


def test_a_workflow_changed_outside_the_services_is_run_as_changed(
    asgi_server, team, chain, writer, fake_openai, handed_over
):
    fake_openai.script(Reply("A draft."), Reply("Edited."), Reply("Only a draft."))
    headers = bearer(team)
    assert post(asgi_server, chain, headers).json()["path"] == ["draft", "edit"]
    # As the admin or a shell would: no service, so only the database's trigger tells the processes.
    Workflow.objects.filter(pk=chain).update(name="Short", steps=[{"id": "draft", "agent_id": writer.pk}])
    response = post(asgi_server, chain, headers)
    assert response.status_code == 200, response.text
    assert (response.json()["path"], response.json()["output"]) == (["draft"], "Only a draft.")
    assert WorkflowRun.objects.get(pk=response.json()["workflow_run_id"]).workflow_name == "Short"
    Agent.objects.filter(pk=writer.pk).delete()
    refused = post(asgi_server, chain, headers)
    assert refused.status_code == 422, refused.text
    assert "steps[0].agent_id" in {error["field"] for error in refused.json()["errors"]}
    assert len(handed_over) == 1


def test_a_failing_step_is_a_502_with_the_results_so_far(asgi_server, team, chain, fake_openai, handed_over):
    fake_openai.script(Reply("A draft."), Error(401))
    before = balance(team)
    response = post(asgi_server, chain, bearer(team))
    assert response.status_code == 502, response.text
    assert handed_over == []
    body = response.json()
    assert (body["status"], body["code"], body["path"]) == ("failed", "provider_auth_failed", ["draft", "edit"])
    assert body["results"]["draft"]["output"] == "A draft."
    assert body["results"]["edit"]["status"] == "failed"
    assert body["detail"] == WorkflowRun.objects.get().error
    edit = AgentRun.objects.get(agent__name="Editor")
    assert (edit.status, StepRun.objects.get(step_id="edit").status) == ("failed", "failed")
    assert balance(team) == before - AgentRun.objects.get(agent__name="Writer").cost  # the failed step refunded


def test_a_client_that_leaves_cancels_the_workflow_run(asgi_server, team, chain, fake_openai, handed_over):
    fake_openai.script(Reply("Too late.", delay=5))
    before = balance(team)
    with pytest.raises(httpx2.ReadTimeout):
        post(asgi_server, chain, bearer(team), timeout=1)
    deadline = time.monotonic() + 10
    while not WorkflowRun.objects.filter(status="cancelled").exists():
        assert time.monotonic() < deadline, list(WorkflowRun.objects.values_list("status", flat=True))
        time.sleep(0.05)
    assert list(StepRun.objects.values_list("step_id", "status")) == [("draft", "cancelled")]
    assert AgentRun.objects.get().status == "cancelled"
    assert balance(team) == before
    assert handed_over == []


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("viewer", 403),
        ("outsider", 404),
        ("no credits", 402),
        ("empty message", 422),
        ("stream and background", 422),
        ("background", 202),
        ("stream", 200),
    ],
)
def test_what_the_hot_path_does_not_serve_gets_djangos_answer(
    asgi_server, team, outsider, chain, fake_openai, handed_over, case, status
):
    fake_openai.script(Reply("A draft."), Reply("Edited."))
    headers = bearer(team)
    body: dict[str, Any] = {}
    if case == "viewer":
        headers = bearer(add_member(actor=team, user=make_user(username="victor"), role=Role.VIEWER))
    elif case == "outsider":
        headers = bearer(outsider)
    elif case == "no credits":
        CreditAccount.objects.filter(workspace=team.workspace).update(balance=Decimal("0.01"))
    elif case == "empty message":
        body = {"message": " "}
    elif case == "stream and background":
        body = {"stream": True, "background": True}
    else:
        body = {case: True}
    response = post(asgi_server, chain, headers, **body)
    assert response.status_code == status, response.text
    assert [call["path"] for call in handed_over] == [f"/api/v1/workflows/{chain}/run"]
    assert b"message" in handed_over[0]["body"]  # Django read the whole body the hot path had read
    if status >= 400:
        assert not WorkflowRun.objects.exists()
        assert fake_openai.requests_to("/v1/chat/completions") == []


def test_concurrent_runs_of_one_workflow_each_record_their_own_steps(asgi_server, team, chain, fake_openai):
    fake_openai.script(*(Reply(f"Answer {n}.", delay=0.05) for n in range(16)))
    headers = bearer(team)
    answers: list[httpx2.Response] = []
    callers = [threading.Thread(target=lambda: answers.append(post(asgi_server, chain, headers))) for _ in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(60)
    assert sorted(a.status_code for a in answers) == [200] * 8
    for run in WorkflowRun.objects.all():
        steps = list(run.step_runs.order_by("sequence").values_list("step_id", "status", "agent_run__status"))
        assert steps == [("draft", "succeeded", "succeeded"), ("edit", "succeeded", "succeeded")]
        assert run.results["edit"]["output"] == StepRun.objects.get(workflow_run=run, step_id="edit").output
