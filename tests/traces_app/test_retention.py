"""Retention: old traces go, in batches, each workspace by its own setting; the setting's API."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts_app.models import Role, Workspace
from tests.accounts_app.test_api import assert_error
from tests.factories import add_member, make_user
from traces_app.models import Span, Trace
from traces_app.services import traces_delete_expired
from traces_app.tasks import traces_delete_expired as delete_task

pytestmark = pytest.mark.django_db(transaction=True)


def aged_trace(workspace, n: int, days: float) -> Trace:
    trace = Trace.objects.create(
        trace_id=f"trace_{workspace.pk:08x}{n:024x}",
        workspace=workspace,
        started_at=timezone.now() - timedelta(days=days),
    )
    for i in range(3):
        Span.objects.create(trace=trace, span_id=f"span_{i}", kind="custom")
    return trace


def test_only_old_traces_of_each_workspace_go(team, outsider):
    Workspace.objects.filter(pk=team.workspace.pk).update(trace_retention_days=7)
    old = [aged_trace(team.workspace, n, days=8 + n) for n in range(5)]
    recent = aged_trace(team.workspace, 10, days=6)
    elsewhere = aged_trace(outsider.workspace, 1, days=20)  # the outsider keeps 30 days
    ancient = aged_trace(outsider.workspace, 2, days=31)
    assert traces_delete_expired(batch_size=2) == 6  # three batches for the team, one for the outsider
    assert set(Trace.objects.values_list("trace_id", flat=True)) == {recent.trace_id, elsewhere.trace_id}
    assert not Span.objects.filter(trace_id__in=[t.trace_id for t in [*old, ancient]]).exists()
    assert Span.objects.filter(trace_id=recent.trace_id).count() == 3
    assert traces_delete_expired() == 0


@pytest.mark.slow
def test_a_real_worker_runs_a_background_run_and_stores_its_trace_then_retention_deletes_it(
    team,
    helper,
    fake_openai,
    api_client,
    celery_worker,  # the worker last: it inherits the egress allowlist
):
    from tests.fakes import Reply

    fake_openai.script(Reply("From the worker."))
    queued = api_client(team).post(
        f"/api/v1/agents/{helper.pk}/run", {"message": "Hi", "background": True}, content_type="application/json"
    )
    assert queued.status_code == 202
    trace_id = queued.json()["trace_id"]
    deadline = time.monotonic() + 30
    while not Trace.objects.filter(trace_id=trace_id, status="ok").exists():
        assert time.monotonic() < deadline, "the worker's trace never arrived"
        time.sleep(0.1)
    assert Span.objects.filter(trace_id=trace_id, kind="generation").exists()
    Trace.objects.filter(trace_id=trace_id).update(started_at=timezone.now() - timedelta(days=31))
    delete_task.delay()
    while Trace.objects.filter(trace_id=trace_id).exists():
        assert time.monotonic() < deadline + 30, "the worker did not delete the expired trace"
        time.sleep(0.1)
    assert not Span.objects.filter(trace_id=trace_id).exists()


def test_the_retention_setting(team, viewer, api_client):
    assert api_client(viewer).get("/api/v1/traces/retention").json() == {"retention_days": 30}
    admin = add_member(actor=team, user=make_user(username="ada"), role=Role.ADMIN)
    member = add_member(actor=team, user=make_user(username="mo"), role=Role.MEMBER)
    put = api_client(admin).put("/api/v1/traces/retention", {"retention_days": 90}, content_type="application/json")
    assert put.json() == {"retention_days": 90}
    assert Workspace.objects.get(pk=team.workspace.pk).trace_retention_days == 90
    for days in (0, 3651):
        body = {"retention_days": days}
        response = api_client(admin).put("/api/v1/traces/retention", body, content_type="application/json")
        assert assert_error(response, 422, "validation_error")["errors"][0]["field"] == "retention_days"
    refused = api_client(member).put("/api/v1/traces/retention", {"retention_days": 1}, content_type="application/json")
    assert_error(refused, 403, "permission_denied")
    assert Workspace.objects.get(pk=team.workspace.pk).trace_retention_days == 90
