"""Workflow runs no request waits for, streamed ones, cancel, and resume: through the API, with real Celery workers
(one killed with SIGKILL mid-step) and the scripted model."""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts_app.models import CreditAccount, CreditReservation
from accounts_app.services import api_token_create
from agents_app.models import AgentRun
from agents_app.services import agent_create
from tests.conftest import sse_events
from tests.fakes import Reply
from tests.workers import celery_worker_process
from tests.workflows_app.test_runs import create, last_user_text, run
from workflows_app.engine import resume_stalled_workflow_runs, start_workflow_run
from workflows_app.models import StepRun, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = "/v1/chat/completions"


@pytest.fixture
def writer(team, fake_provider):
    return agent_create(actor=team, name="Writer", instructions="Write.")


@pytest.fixture
def three_steps(team, api_client, writer):
    return create(
        api_client(team),
        [
            {"id": "one", "agent_id": writer.pk, "input_template": "first: {{input}}"},
            {"id": "two", "agent_id": writer.pk, "input_template": "second: {{steps.one.output}}"},
            {"id": "three", "agent_id": writer.pk, "input_template": "third: {{steps.two.output}}"},
        ],
    )


def wait_for(condition, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def finished(run_id: str | int) -> WorkflowRun:
    return wait_for(
        lambda: WorkflowRun.objects.filter(pk=run_id, status__in=("succeeded", "failed", "cancelled")).first(),
        "the run to end",
        60,
    )


def test_a_background_run_answers_202_and_a_worker_runs_it_with_resumable_events(
    team, api_client, three_steps, fake_openai, celery_worker, asgi_server
):
    fake_openai.script(Reply("A"), Reply("B"), Reply("C"))
    response = run(api_client(team), three_steps, "go", background=True)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    run_id = body["workflow_run_id"]
    token = api_token_create(actor=team, name="events").raw
    events = sse_events(asgi_server, f"/api/v1/workflow-runs/{run_id}/events", token)
    names = [name for name, _ in events]
    assert names[0] == "workflow_run"
    assert names[-1] == "done"
    done = events[-1][1]
    assert (done["status"], done["output"], done["path"]) == ("succeeded", "C", ["one", "two", "three"])
    steps = [(d["step_id"], d.get("status"), d.get("output")) for n, d in events if n == "step"]
    assert steps == [
        ("one", "running", None),
        ("one", "succeeded", "A"),
        ("two", "running", None),
        ("two", "succeeded", "B"),
        ("three", "running", None),
        ("three", "succeeded", "C"),
    ]
    # A reader that reconnects with the id of the last event it saw gets only what it missed.
    middle = events[3][1]["_id"]
    rest = sse_events(asgi_server, f"/api/v1/workflow-runs/{run_id}/events", token, headers={"Last-Event-ID": middle})
    assert rest == events[4:]
    row = WorkflowRun.objects.get(pk=run_id)
    assert (row.mode, row.attempts, row.status) == ("background", 1, "succeeded")
    assert [last_user_text(r) for r in fake_openai.requests_to(CHAT)] == ["first: go", "second: A", "third: B"]
    bad = api_client(team).get(f"/api/v1/workflow-runs/{run_id}/events", headers={"Last-Event-ID": "nope"})
    assert bad.status_code == 422


def test_a_streamed_run_sends_each_step_as_it_happens(team, three_steps, fake_openai, asgi_server):
    fake_openai.script(Reply("A"), Reply("B"), Reply("C"))
    token = api_token_create(actor=team, name="stream").raw
    events = sse_events(asgi_server, f"/api/v1/workflows/{three_steps}/run", token, {"message": "go", "stream": True})
    assert [n for n, _ in events] == ["workflow_run"] + ["step"] * 6 + ["done"]
    assert events[-1][1]["results"]["two"]["output"] == "B"
    assert WorkflowRun.objects.get().mode == "stream"


def test_stream_and_background_together_are_refused(team, api_client, three_steps):
    response = run(api_client(team), three_steps, stream=True, background=True)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["background"]
    assert not WorkflowRun.objects.exists()


def test_a_closed_stream_cancels_the_run_and_refunds_its_step(team, three_steps, fake_openai, asgi_server):
    import httpx2

    fake_openai.script(Reply("A"), Reply("B", delay=20))
    token = api_token_create(actor=team, name="stream").raw
    with httpx2.stream(
        "POST",
        f"{asgi_server}/api/v1/workflows/{three_steps}/run",
        json={"message": "go", "stream": True},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if '"step_id": "two"' in line:
                # Hang up only once step two has asked the model: leaving the loop closes the stream at once.
                wait_for(lambda: len(fake_openai.requests_to(CHAT)) == 2, "step two to ask the model")
                break
    row = finished(WorkflowRun.objects.get().pk)
    assert (row.status, row.path) == ("cancelled", ["one"])
    two = wait_for(lambda: AgentRun.objects.filter(metadata__step_id="two", status="cancelled").first(), "a refund")
    assert two.reservation.status == "refunded"


def test_cancel_stops_a_running_step_and_keeps_finished_results(
    team, viewer, api_client, three_steps, fake_openai, celery_worker
):
    fake_openai.script(Reply("A"), Reply("B", delay=30))
    client = api_client(team)
    run_id = run(client, three_steps, background=True).json()["workflow_run_id"]
    wait_for(lambda: len(fake_openai.requests_to(CHAT)) == 2, "step two to ask the model")
    assert api_client(viewer).post(f"/api/v1/workflow-runs/{run_id}/cancel").status_code == 403
    response = client.post(f"/api/v1/workflow-runs/{run_id}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    two = wait_for(
        lambda: AgentRun.objects.filter(metadata__step_id="two").exclude(status="running").first(),
        "the step's agent run to stop",
        10,
    )
    assert two.status == "cancelled"
    assert CreditReservation.objects.get(pk=two.reservation_id).status == "refunded"
    row = WorkflowRun.objects.get(pk=run_id)
    assert (row.status, row.error_code, row.path, row.results["one"]["output"]) == (
        "cancelled",
        "cancelled",
        ["one"],
        "A",
    )
    assert "three" not in row.results
    assert set(StepRun.objects.filter(workflow_run=row).values_list("step_id", "status")) == {
        ("one", "succeeded"),
        ("two", "cancelled"),
    }
    again = client.post(f"/api/v1/workflow-runs/{run_id}/cancel")
    assert again.status_code == 409
    assert "already ended (cancelled)" in again.json()["detail"]


def test_a_queued_run_cancelled_before_a_worker_takes_it_never_runs(
    team, api_client, three_steps, fake_openai, tmp_path
):
    client = api_client(team)
    start = start_workflow_run(actor=team, workflow_id=three_steps, message="go", mode="background")
    assert client.post(f"/api/v1/workflow-runs/{start.run.pk}/cancel").json()["status"] == "cancelled"
    from workflows_app.tasks import workflow_run_execute

    assert workflow_run_execute(start.run.pk) == "skipped"
    assert fake_openai.requests_to(CHAT) == []


def test_a_worker_killed_mid_step_is_replaced_and_finished_steps_never_run_again(
    team, api_client, three_steps, fake_openai, tmp_path
):
    fake_openai.script(Reply("A"), Reply("never sent", delay=60), Reply("B"), Reply("C"))
    client = api_client(team)
    balance = CreditAccount.objects.get(workspace=team.workspace).balance
    with celery_worker_process(tmp_path / "first.log") as first:
        run_id = run(client, three_steps, "go", background=True).json()["workflow_run_id"]
        wait_for(lambda: len(fake_openai.requests_to(CHAT)) == 2, "step two to ask the model")
        first.process.send_signal(signal.SIGKILL)  # no warm shutdown, no acknowledgement, no clean-up
        first.process.wait(timeout=10)
    stuck = WorkflowRun.objects.get(pk=run_id)
    assert (stuck.status, stuck.path, stuck.next_step_id, stuck.attempts) == ("running", ["one"], "two", 1)
    interrupted = AgentRun.objects.get(metadata__step_id="two")
    assert interrupted.status == "running"
    # Not stalled yet: the sweep leaves it alone.
    assert resume_stalled_workflow_runs() == (0, 0)
    with celery_worker_process(tmp_path / "second.log", queue=first.queue):
        assert resume_stalled_workflow_runs(now=timezone.now() + timedelta(minutes=5)) == (1, 0)
        row = finished(run_id)
    assert (row.status, row.path, row.final_output, row.attempts) == ("succeeded", ["one", "two", "three"], "C", 2)
    asked = [last_user_text(r) for r in fake_openai.requests_to(CHAT)]
    assert asked == ["first: go", "second: A", "second: A", "third: B"]  # step one ran once, step two again
    interrupted.refresh_from_db()
    assert (interrupted.status, interrupted.error_code) == ("failed", "worker_lost")
    assert interrupted.reservation.status == "refunded"
    steps = list(StepRun.objects.filter(workflow_run_id=run_id).values_list("step_id", "iteration", "status"))
    assert sorted(steps) == [("one", 1, "succeeded"), ("three", 1, "succeeded"), ("two", 1, "succeeded")]
    agent_runs = AgentRun.objects.filter(metadata__workflow_run_id=str(run_id))
    assert sorted(agent_runs.values_list("metadata__step_id", "status")) == [
        ("one", "succeeded"),
        ("three", "succeeded"),
        ("two", "failed"),
        ("two", "succeeded"),
    ]
    # The workspace paid for the three steps that ran, not for the interrupted one.
    spent = balance - CreditAccount.objects.get(workspace=team.workspace).balance
    assert spent == sum(r.cost for r in agent_runs)
    assert row.cost == sum(r.cost for r in agent_runs.filter(status="succeeded"))


def test_the_sweep_fails_stalled_runs_that_cannot_resume(team, three_steps, fake_openai):
    sync = start_workflow_run(actor=team, workflow_id=three_steps, message="go").run
    tired = start_workflow_run(actor=team, workflow_id=three_steps, message="go", mode="background").run
    WorkflowRun.objects.filter(pk=tired.pk).update(status="running", attempts=3, claimed_at=timezone.now())
    assert resume_stalled_workflow_runs(now=timezone.now() + timedelta(minutes=5)) == (0, 2)
    sync.refresh_from_db()
    tired.refresh_from_db()
    assert (sync.status, sync.error_code) == ("failed", "abandoned")
    assert "its process ended" in sync.error
    assert (tired.status, tired.error) == ("failed", "The run stopped 3 times without finishing (its process ended).")


def test_a_queued_run_no_worker_took_is_sent_again(team, three_steps, fake_openai, tmp_path):
    fake_openai.script(Reply("A"), Reply("B"), Reply("C"))
    start = start_workflow_run(actor=team, workflow_id=three_steps, message="go", mode="background")
    with celery_worker_process(tmp_path / "worker.log"):
        assert resume_stalled_workflow_runs() == (0, 0)  # just queued
        assert resume_stalled_workflow_runs(now=timezone.now() + timedelta(minutes=5)) == (1, 0)
        assert finished(start.run.pk).status == "succeeded"


def test_a_background_run_whose_starter_left_fails_with_the_reason(team, api_client, three_steps, fake_openai):
    from accounts_app.models import Membership
    from workflows_app.tasks import workflow_run_execute

    start = start_workflow_run(actor=team, workflow_id=three_steps, message="go", mode="background")
    Membership.objects.filter(user=team.user, workspace=team.workspace).update(role="viewer")
    assert workflow_run_execute(start.run.pk) == "failed"
    row = WorkflowRun.objects.get(pk=start.run.pk)
    assert row.error_code == "permission_denied"
    assert "viewer" in row.error
    assert fake_openai.requests_to(CHAT) == []


@override_settings(WORKFLOW_HEARTBEAT_SECONDS=1)
def test_a_run_that_lost_its_claim_stops_and_writes_nothing_more(team, three_steps, fake_openai):
    """As if this process were presumed dead: another claim takes the run; the first execution stops at once."""
    from asgiref.sync import async_to_sync

    from workflows_app.engine import execute_workflow

    fake_openai.script(Reply("A", delay=3))
    start = start_workflow_run(actor=team, workflow_id=three_steps, message="go")
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.setdefault("run", async_to_sync(execute_workflow)(start)))
    thread.start()
    wait_for(lambda: fake_openai.requests_to(CHAT), "step one to ask the model")
    WorkflowRun.objects.filter(pk=start.run.pk).update(attempts=2)  # another worker's claim
    thread.join(timeout=10)
    assert not thread.is_alive()
    row = WorkflowRun.objects.get(pk=start.run.pk)
    assert (row.status, row.path, row.attempts) == ("running", [], 2)  # left to the newer claim
    assert AgentRun.objects.get().status == "cancelled"


def test_one_process_watches_all_its_runs_after_the_first_request_ends(
    team, api_client, writer, fake_openai, asgi_server
):
    """The web process checks all its running workflow runs together; the request that began the checks ending
    must not stop them: a run started later is still stopped by its cancel."""
    import json
    import urllib.error
    import urllib.request

    one_step = create(api_client(team), [{"id": "only", "agent_id": writer.pk}], name="One step")
    fake_openai.script(Reply("First.", delay=1.5), Reply("Never sent.", delay=30))
    token = api_token_create(actor=team, name="watch").raw
    answers: dict[str, int] = {}

    def post(name: str) -> None:
        request = urllib.request.Request(
            f"{asgi_server}/api/v1/workflows/{one_step}/run",
            data=json.dumps({"message": name}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answers[name] = response.status
        except urllib.error.HTTPError as exc:
            answers[name] = exc.code

    first = threading.Thread(target=post, args=("first",))
    first.start()
    wait_for(lambda: len(fake_openai.requests_to(CHAT)) == 1, "the first run's model call")
    second = threading.Thread(target=post, args=("second",))
    second.start()
    wait_for(lambda: len(fake_openai.requests_to(CHAT)) == 2, "the second run's model call")
    first.join(30)
    assert answers["first"] == 200  # its request (which began the checks) has ended
    later = WorkflowRun.objects.get(message="second")
    started = time.monotonic()
    cancelled = api_client(team).post(f"/api/v1/workflow-runs/{later.pk}/cancel")
    assert cancelled.status_code == 200, cancelled.content
    second.join(15)
    assert not second.is_alive(), "the cancelled run went on"
    assert time.monotonic() - started < 10
    assert answers["second"] == 502
    assert StepRun.objects.get(workflow_run=later).status == "cancelled"
    assert AgentRun.objects.filter(metadata__step_id="only", status="cancelled").count() == 1  # refunded
