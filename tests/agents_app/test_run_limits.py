"""Per-workspace run limits, on both transports (the hot path and Django): runs in flight (open credit
reservations) and runs started per minute, each answered 429 with ``Retry-After`` when exceeded, with nothing
written; the workspace's own limits (set in the admin) win over the settings."""

from __future__ import annotations

import time

import httpx2
import pytest

from accounts_app.models import CreditAccount, Workspace
from accounts_app.services import api_token_create
from accounts_app.services.credits import credits_refund, credits_reserve
from agents_app.models import AgentRun
from tests.fakes import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def post_run(server: str, team, agent_id: int, **body) -> httpx2.Response:
    token = api_token_create(actor=team, name="limits").raw
    return httpx2.post(
        f"{server}/api/v1/agents/{agent_id}/run",
        json={"message": "Hi", **body},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_runs_in_flight_are_limited(api_server, team, helper, fake_openai):
    Workspace.objects.filter(pk=team.workspace.pk).update(run_concurrency_limit=1)
    held = credits_reserve(workspace=team.workspace, amount="0.01", purpose="a run in flight")
    for extra in ({}, {"stream": True}, {"background": True}):
        refused = post_run(api_server, team, helper.pk, **extra)
        assert refused.status_code == 429, refused.text
        assert (refused.json()["code"], refused.headers["Retry-After"]) == ("run_concurrency_limit", "1")
        assert "1 runs in flight" in refused.json()["detail"]
    assert not AgentRun.objects.exists()  # nothing written
    credits_refund(reservation=held)
    fake_openai.script(Reply("Now there is room."))
    assert post_run(api_server, team, helper.pk).status_code == 200
    assert CreditAccount.objects.get(workspace=team.workspace).open_reservations == 0  # ended runs leave the count


def test_runs_per_minute_are_limited(api_server, team, helper, fake_openai):
    Workspace.objects.filter(pk=team.workspace.pk).update(run_rate_limit_per_minute=2)
    while time.time() % 60 > 50:  # three runs inside one minute
        time.sleep(0.5)
    fake_openai.script(Reply("One."), Reply("Two."))
    assert [post_run(api_server, team, helper.pk).status_code for _ in range(2)] == [200, 200]
    refused = post_run(api_server, team, helper.pk)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "run_rate_limit"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert AgentRun.objects.count() == 2


def test_the_settings_apply_when_the_workspace_sets_nothing_and_zero_is_no_limit(team, settings):
    settings.RUN_CONCURRENCY_LIMIT = 3
    settings.RUN_RATE_LIMIT_PER_MINUTE = 0
    workspace = Workspace.objects.get(pk=team.workspace.pk)
    assert workspace.run_limits() == (3, 0)
    workspace.run_concurrency_limit = 0
    assert workspace.run_limits() == (0, 0)
    for _ in range(5):  # no limit: five reservations open at once
        credits_reserve(workspace=workspace, amount="0.01")
    assert CreditAccount.objects.get(workspace=workspace).open_reservations == 5


def test_operators_set_and_see_the_limits_in_the_admin(team, operator):
    page = operator.get(f"/admin/accounts_app/workspace/{team.workspace.pk}/change/").content.decode()
    assert "Run limits in force" in page
    assert "Runs in flight" in page
    assert 'name="run_concurrency_limit"' in page
