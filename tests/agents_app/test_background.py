from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync

from accounts_app.models import CreditAccount
from agents_app.models import AgentRun
from agents_app.runs.lifecycle import start_run
from agents_app.tasks import agent_run_execute
from tests.accounts_app.test_api import assert_error, post
from tests.fakes import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_background_run_is_answered_202_and_handed_to_a_worker_once_recorded(team, helper, api_client, monkeypatch):
    sent = []

    def delay(**kwargs):
        # The worker may pick the task up at once: the run must already be committed and queued.
        sent.append((kwargs, AgentRun.objects.get(pk=kwargs["run_id"]).status))

    monkeypatch.setattr(agent_run_execute, "delay", delay)
    response = post(api_client(team), f"/api/v1/agents/{helper.pk}/run", {"message": "Hi", "background": True})
    assert response.status_code == 202, response.content
    body = response.json()
    run = AgentRun.objects.get(pk=body["run_id"])
    assert body == {
        "run_id": str(run.pk),
        "status": "queued",
        "conversation_id": run.conversation_id,
        "trace_id": run.trace_id,
    }
    assert sent == [({"run_id": run.pk}, "queued")]


def test_the_task_runs_it_once(team, helper, fake_openai, monkeypatch):
    monkeypatch.setattr(agent_run_execute, "delay", lambda **kwargs: None)
    fake_openai.script(Reply("Done in the background."))
    run = async_to_sync(start_run)(actor=team, agent_id=helper.pk, message="Hi", mode="background").run
    assert agent_run_execute.run(run_id=run.pk) == "succeeded"
    assert agent_run_execute.run(run_id=run.pk) == "skipped"  # a redelivery does nothing
    run.refresh_from_db()
    assert (run.status, run.final_output) == ("succeeded", "Done in the background.")
    assert len(fake_openai.requests_to("/v1/chat/completions")) == 1


def test_a_deleted_agent_fails_the_run_and_refunds(team, helper, monkeypatch):
    monkeypatch.setattr(agent_run_execute, "delay", lambda **kwargs: None)
    run = async_to_sync(start_run)(actor=team, agent_id=helper.pk, message="Hi", mode="background").run
    helper.delete()
    assert agent_run_execute.run(run_id=run.pk) == "failed"
    run.refresh_from_db()
    assert (run.status, run.error_code) == ("failed", "not_found")
    assert run.reservation.status == "refunded"
    assert CreditAccount.objects.get(workspace=team.workspace).balance == 100


@pytest.mark.slow
def test_a_real_worker_runs_a_background_run_from_the_api(team, helper, fake_openai, api_client, celery_worker):
    fake_openai.script(Reply("Worker says hi."))
    response = post(api_client(team), f"/api/v1/agents/{helper.pk}/run", {"message": "Hi", "background": True})
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    deadline = time.monotonic() + 30
    while (status := api_client(team).get(f"/api/v1/runs/{run_id}").json()["status"]) in ("queued", "running"):
        assert time.monotonic() < deadline, "the worker did not finish the run"
        time.sleep(0.2)
    assert status == "succeeded", AgentRun.objects.get(pk=run_id).error
    assert AgentRun.objects.get(pk=run_id).final_output == "Worker says hi."


def test_stream_and_background_together_is_422(team, helper, api_client):
    response = post(
        api_client(team), f"/api/v1/agents/{helper.pk}/run", {"message": "Hi", "background": True, "stream": True}
    )
    assert_error(response, 422, "validation_error")
