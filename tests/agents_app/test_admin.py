from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from agents_app.runs.lifecycle import start_run
from agents_app.services import agent_create, context_create, handoff_add


@pytest.fixture
def agents_data(team, fake_provider):
    for i in range(8):
        a = agent_create(actor=team, name=f"agent {i}")
        context_create(actor=team, agent_id=a.pk, name="c", content={"i": i})
        if i:
            handoff_add(actor=team, agent_id=a.pk, target_id=a.pk - 1)
        async_to_sync(start_run)(actor=team, agent_id=a.pk, message=f"hello {i}")


@pytest.mark.parametrize("model", ["agent", "agentcontext", "conversation", "agentrun"])
def test_changelists_load_without_n_plus_one(operator, agents_data, model, django_assert_max_num_queries):
    with django_assert_max_num_queries(15):
        assert operator.get(f"/admin/agents_app/{model}/").status_code == 200
    assert operator.get(f"/admin/agents_app/{model}/?q=agent").status_code == 200


def test_runs_are_read_only(operator, agents_data):
    from agents_app.models import AgentRun

    run = AgentRun.objects.first()
    assert operator.get(f"/admin/agents_app/agentrun/{run.pk}/change/").status_code == 200
    assert operator.post(f"/admin/agents_app/agentrun/{run.pk}/change/", {"status": "succeeded"}).status_code == 403
    assert operator.get("/admin/agents_app/agentrun/add/").status_code == 403


def test_agent_change_page(operator, agents_data):
    from agents_app.models import Agent

    agent = Agent.objects.last()
    assert operator.get(f"/admin/agents_app/agent/{agent.pk}/change/").status_code == 200
    assert operator.get(f"/admin/agents_app/conversation/{agent.conversations.first().pk}/change/").status_code == 200
