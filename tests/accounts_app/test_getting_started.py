"""The dashboard's getting-started checklist ticks itself off as the workspace is used, then goes away."""

from __future__ import annotations

import re

import pytest
from agents import flush_traces
from django.test import override_settings

from agents_app.models import Agent
from providers_app.services import provider_create
from tests.agents_app.test_runs import run_sync
from tests.fakes import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def done_steps(html: str) -> list[str]:
    return re.findall(r'class="step done" data-step="(\w+)"', html)


def test_the_checklist_follows_what_was_done(team, viewer, page_client, fake_openai):
    client = page_client(team)
    first = client.get("/").content.decode()
    assert "Getting started" in first
    assert "0 of 4 done" in first
    assert done_steps(first) == []
    assert 'class="btn primary" href="/agents/new/">New agent</a>' in first  # the next step is the primary one

    assert (
        client.post("/agents/new/", {"name": "Greeter", "instructions": "Greet.", "max_turns": 10}).status_code == 302
    )
    agent = Agent.objects.get(workspace=team.workspace, name="Greeter")
    html = client.get("/").content.decode()
    assert done_steps(html) == ["agent"]
    assert f'class="btn primary" href="/agents/{agent.pk}/chat/">Open the chat</a>' in html

    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider_create(actor=team, type="custom", name="Fake", base_url=fake_openai.base_url, models=["m"])
        Agent.objects.filter(pk=agent.pk).update(provider_id=agent.workspace.providers.get().pk)
        fake_openai.script(Reply("Hello."))
        run = run_sync(team, Agent.objects.get(pk=agent.pk))
    flush_traces()
    html = client.get("/").content.decode()
    assert done_steps(html) == ["agent", "chat", "provider"]
    assert f'href="/traces/{run.trace_id}/">Open the trace</a>' in html

    page_client(viewer).get(f"/traces/{run.trace_id}/")  # another member's visit is theirs, not ours
    assert done_steps(client.get("/").content.decode()) == ["agent", "chat", "provider"]
    assert client.get(f"/traces/{run.trace_id}/").status_code == 200
    client.get(f"/traces/{run.trace_id}/")  # recorded once
    assert "Getting started" not in client.get("/").content.decode()  # all done: the checklist is gone


def test_empty_sections_say_what_to_do_with_one_action(team, page_client):
    client = page_client(team)
    html = client.get("/workflows/").content.decode()  # no agents yet: build them first
    assert "No workflows yet" in html
    assert html.count('class="btn primary"') == 1
    assert 'href="/agents/new/"' in html
    knowledge = client.get("/knowledge/").content.decode()
    assert "No knowledge bases yet" in knowledge
    assert knowledge.count('class="btn primary"') == 1
    dashboard = client.get("/").content.decode()
    assert "tools, guardrails" not in dashboard  # no promise of what does not run yet
