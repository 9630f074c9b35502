"""The builder's "Try it" panel, and guardrail verdicts on the run and chat pages."""

from __future__ import annotations

import html
import re

import pytest

from agents_app.models import AgentRun
from agents_app.services import agent_create
from tests.agents_app.test_runs import run_sync

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HX-Request": "true"}
TOOL = {
    "type": "function",
    "name": "shout",
    "params": {
        "code": "def main(text):\n    print('shouting')\n    return text.upper()\n",
        "allow_code_execution": True,
        "parameters": [{"name": "text"}],
    },
}
PIN = {"name": "pin", "implementation": "regex", "config": {"pattern": r"\d{4}", "message": "No PINs."}}


@pytest.fixture
def agent(team, fake_provider):
    return agent_create(actor=team, name="Loud", tools=[TOOL], input_guardrails=[PIN])


def text_of(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def test_the_builder_lists_what_can_be_tried(team, page_client, agent):
    page = page_client(team).get(f"/agents/{agent.pk}/edit/").content.decode()
    assert '<option value="tool:shout">Tool shout</option>' in page
    assert '<option value="input:pin">Input guardrail pin (regex)</option>' in page
    bare = agent_create(actor=team, name="Bare")
    assert "No function tools or guardrails yet" in page_client(team).get(f"/agents/{bare.pk}/edit/").content.decode()


def test_a_tool_is_tried_in_the_sandbox_with_its_result_logs_and_time(team, page_client, agent):
    response = page_client(team).post(
        f"/agents/{agent.pk}/try/", {"target": "tool:shout", "sample": '{"text": "hi"}'}, headers=HTMX
    )
    assert response.status_code == 200
    text = text_of(response)
    assert "Result" in text
    assert '"HI"' in text
    assert "shouting" in text
    assert re.search(r"\d+\.\d ms", text)


def test_a_tool_s_error_and_bad_samples_are_shown(team, page_client, agent):
    client = page_client(team)
    response = client.post(f"/agents/{agent.pk}/try/", {"target": "tool:shout", "sample": "{}"}, headers=HTMX)
    assert response.status_code == 200
    assert "Error (arguments)" in text_of(response)
    assert "'text' is a required property" in text_of(response)
    response = client.post(f"/agents/{agent.pk}/try/", {"target": "tool:shout", "sample": "{nope"}, headers=HTMX)
    assert response.status_code == 422
    assert "The sample is not JSON." in text_of(response)
    response = client.post(f"/agents/{agent.pk}/try/", {"target": "tool:missing", "sample": "{}"}, headers=HTMX)
    assert response.status_code == 404
    assert "no tool named 'missing'" in text_of(response)


def test_a_guardrail_is_tried_and_a_plain_form_post_shows_the_builder(team, page_client, agent):
    client = page_client(team)
    response = client.post(f"/agents/{agent.pk}/try/", {"target": "input:pin", "sample": "my pin 1234"}, headers=HTMX)
    assert "Tripped: No PINs." in text_of(response)
    assert '"matched" : "1234"' in text_of(response)
    response = client.post(f"/agents/{agent.pk}/try/", {"target": "input:pin", "sample": "hello"})
    assert response.status_code == 200
    assert "Passed" in text_of(response)
    assert "Edit Loud" in text_of(response)


def test_viewers_cannot_try(viewer, page_client, agent):
    response = page_client(viewer).post(f"/agents/{agent.pk}/try/", {"target": "tool:shout", "sample": "{}"})
    assert response.status_code == 403


def test_a_blocked_run_shows_its_verdict_on_the_run_and_chat_pages(team, page_client, agent, fake_openai):
    run = run_sync(team, agent, "PIN 9876")
    assert run.status == "blocked"
    client = page_client(team)
    page = text_of(client.get(f"/agents/runs/{run.pk}/"))
    assert "Blocked by a guardrail" in page
    assert "Guardrails" in page
    assert "No PINs." in page
    assert "9876" in page
    chat = text_of(client.get(f"/agents/{agent.pk}/chat/?conversation={run.conversation_id}"))
    assert "No PINs." in chat
    assert "input guardrail pin tripped" in chat
    assert AgentRun.objects.get(pk=run.pk).guardrails[0]["output_info"] == {"matched": "9876"}
