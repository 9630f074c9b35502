"""Any change to an agent, handoff, context or provider, through any interface, is seen by the next run.

Each test runs the agent through the API (so the process's definition cache holds it), changes something
through one interface (service, API, page, admin and its inlines, the ORM in ``manage.py shell``, delete),
and runs again: the model must see the change. The admin's edits go through the services, so they are
validated as everywhere else.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import override_settings

from agents_app.models import Agent, AgentContext, AgentHandoff
from agents_app.services import agent_create, agent_update, context_create, handoff_add
from providers_app.models import Provider
from tests.fakes import Reply, ToolCall

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run_agent(team, api_client, fake_openai):
    """Run an agent through the API; return what its (first) model request carried: the system prompt, the
    tools offered, and the key it was sent with."""
    client = api_client(team)

    def run(agent: Agent, *script) -> dict:
        fake_openai.script(*(script or (Reply("ok"),)))
        before = len(fake_openai.requests_to("/v1/chat/completions"))
        response = client.post(
            f"/api/v1/agents/{agent.pk}/run", data=json.dumps({"message": "Hi"}), content_type="application/json"
        )
        assert response.status_code == 200, response.content
        request = fake_openai.requests_to("/v1/chat/completions")[before]
        return {
            "system": request.body["messages"][0]["content"],
            "tools": [t["function"]["name"] for t in request.body.get("tools", [])],
            "key": request.headers["Authorization"].removeprefix("Bearer "),
            "answer": response.json(),
        }

    return run


def _agent_form(agent: Agent, **changes) -> dict:
    """The admin change form's fields for ``agent`` (no inline rows), with ``changes``."""
    data = {
        "name": agent.name,
        "instructions": agent.instructions,
        "provider": agent.provider_id or "",
        "model": agent.model,
        "model_settings": json.dumps(agent.model_settings),
        "handoff_description": agent.handoff_description,
        "output_type": json.dumps(agent.output_type) if agent.output_type is not None else "",
        "tools": json.dumps(agent.tools),
        "input_guardrails": json.dumps(agent.input_guardrails),
        "output_guardrails": json.dumps(agent.output_guardrails),
        "metadata": json.dumps(agent.metadata),
        "max_turns": agent.max_turns,
    }
    for prefix in ("handoffs", "contexts"):
        data |= {f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000}
    return data | changes


def test_a_service_edit_is_seen(team, helper, run_agent):
    assert run_agent(helper)["system"] == "You help."
    agent_update(actor=team, agent_id=helper.pk, changes={"instructions": "Be brief."})
    assert run_agent(helper)["system"] == "Be brief."


def test_an_api_edit_is_seen(team, helper, api_client, run_agent):
    run_agent(helper)
    response = api_client(team).patch(
        f"/api/v1/agents/{helper.pk}",
        data=json.dumps({"instructions": "From the API."}),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert run_agent(helper)["system"] == "From the API."


def test_a_page_edit_is_seen(team, helper, page_client, run_agent):
    run_agent(helper)
    response = page_client(team).post(
        f"/agents/{helper.pk}/edit/", {"name": "Helper", "instructions": "From the page.", "max_turns": 10}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert run_agent(helper)["system"] == "From the page."


def test_an_admin_edit_is_seen_and_moves_the_version(helper, operator, run_agent):
    run_agent(helper)
    response = operator.post(
        f"/admin/agents_app/agent/{helper.pk}/change/", _agent_form(helper, instructions="From the admin.")
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert run_agent(helper)["system"] == "From the admin."
    assert Agent.objects.get(pk=helper.pk).version == 2


def test_the_admin_validates_through_the_services(helper, operator):
    response = operator.post(
        f"/admin/agents_app/agent/{helper.pk}/change/",
        _agent_form(helper, instructions="Changed", output_type=json.dumps({"type": "array"})),
        follow=True,
    )
    assert "Not saved: The agent could not be saved. (output_type: The output schema must have &quot;type&quot;" in (
        response.content.decode()
    )
    helper.refresh_from_db()
    assert (helper.instructions, helper.output_type, helper.version) == ("You help.", None, 1)


def test_an_admin_inline_context_is_seen(helper, operator, run_agent):
    run_agent(helper)
    data = _agent_form(helper) | {
        "contexts-TOTAL_FORMS": 1,
        "contexts-0-name": "vip",
        "contexts-0-is_default": "on",
        "contexts-0-content": json.dumps({"tier": "gold"}),
    }
    response = operator.post(f"/admin/agents_app/agent/{helper.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert '"tier": "gold"' in run_agent(helper)["system"]


def test_an_admin_inline_handoff_is_seen_and_refused_across_workspaces(
    team,
    helper,
    outsider,
    operator,
    run_agent,
):
    other = agent_create(actor=team, name="Other")
    foreign = agent_create(actor=outsider, name="Foreign")
    assert run_agent(helper)["tools"] == []
    url = f"/admin/agents_app/agent/{helper.pk}/change/"
    data = _agent_form(helper) | {"handoffs-TOTAL_FORMS": 1, "handoffs-0-target": foreign.pk}
    refused = operator.post(url, data, follow=True)
    assert "Target agent not found" in refused.content.decode()
    assert not AgentHandoff.objects.exists()
    data["handoffs-0-target"] = other.pk
    assert operator.post(url, data).status_code == 302
    assert run_agent(helper)["tools"] == ["transfer_to_other"]
    assert Agent.objects.get(pk=helper.pk).version == 2  # the handoff is part of its definition
    handoff = AgentHandoff.objects.get()
    removed = _agent_form(helper) | {
        "handoffs-TOTAL_FORMS": 1,
        "handoffs-INITIAL_FORMS": 1,
        "handoffs-0-id": handoff.pk,
        "handoffs-0-source": helper.pk,
        "handoffs-0-target": other.pk,
        "handoffs-0-DELETE": "on",
    }
    assert operator.post(url, removed).status_code == 302
    assert run_agent(helper)["tools"] == []


def test_an_admin_context_edit_is_seen(team, helper, operator, run_agent):
    context = context_create(actor=team, agent_id=helper.pk, name="plan", content={"plan": "free"})
    assert '"plan": "free"' in run_agent(helper)["system"]
    response = operator.post(
        f"/admin/agents_app/agentcontext/{context.pk}/change/",
        {"name": "plan", "is_default": "on", "content": json.dumps({"plan": "gold"})},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert '"plan": "gold"' in run_agent(helper)["system"]
    assert operator.post(f"/admin/agents_app/agentcontext/{context.pk}/delete/", {"post": "yes"}).status_code == 302
    assert "# Context" not in run_agent(helper)["system"]


def test_a_provider_key_rotated_in_the_admin_is_used_by_the_next_run(
    helper,
    fake_provider,
    operator,
    run_agent,
):
    assert run_agent(helper)["key"] == "sk-fake-0123456789"
    form = {
        "name": fake_provider.name,
        "new_api_key": "sk-rotated-9876543210",
        "base_url": fake_provider.base_url,
        "organization": "",
        "model_names": json.dumps(fake_provider.model_names),
        "default_model": fake_provider.default_model,
        "config": json.dumps(fake_provider.config),
        "is_default": "on",
    }
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        response = operator.post(f"/admin/providers_app/provider/{fake_provider.pk}/change/", form)
        assert response.status_code == 302, response.content.decode()[:3000]
        assert run_agent(helper)["key"] == "sk-rotated-9876543210"
        page = operator.get(f"/admin/providers_app/provider/{fake_provider.pk}/change/").content.decode()
    assert "sk-rotated-9876543210" not in page
    assert "sk-...3210" in page


def test_the_provider_admin_refuses_an_internal_url(fake_provider, operator):
    form = {
        "name": fake_provider.name,
        "base_url": "http://169.254.169.254/v1",
        "organization": "",
        "model_names": json.dumps(fake_provider.model_names),
        "default_model": fake_provider.default_model,
        "config": json.dumps(fake_provider.config),
        "is_default": "on",
    }
    response = operator.post(f"/admin/providers_app/provider/{fake_provider.pk}/change/", form, follow=True)
    assert "Not saved" in response.content.decode()
    assert Provider.objects.get(pk=fake_provider.pk).base_url == fake_provider.base_url


def test_an_orm_edit_in_the_shell_is_seen(helper, fake_provider, run_agent):
    first = run_agent(helper)
    assert (first["system"], first["key"]) == ("You help.", "sk-fake-0123456789")
    call_command(
        "shell",
        command=(
            "from agents_app.models import Agent; from providers_app.models import Provider; "
            f"Agent.objects.filter(pk={helper.pk}).update(instructions='From the shell.'); "
            f"p = Provider.objects.get(pk={fake_provider.pk}); p.api_key = 'sk-shell-5555555555'; p.save()"
        ),
    )
    second = run_agent(helper)
    assert (second["system"], second["key"]) == ("From the shell.", "sk-shell-5555555555")
    # A bulk update that never touches updated_at still reaches the provider's client.
    Provider.objects.filter(pk=fake_provider.pk).update(api_key="sk-bulk-4444444444")
    assert run_agent(helper)["key"] == "sk-bulk-4444444444"


def test_a_deleted_handoff_target_is_gone_from_the_next_run(team, helper, run_agent):
    other = agent_create(actor=team, name="Other")
    handoff_add(actor=team, agent_id=helper.pk, target_id=other.pk)
    assert run_agent(helper)["tools"] == ["transfer_to_other"]
    Agent.objects.filter(pk=other.pk).delete()
    assert run_agent(helper)["tools"] == []
    assert Agent.objects.get(pk=helper.pk).version == 3  # added, then removed with its target


def test_an_admin_delete_is_seen(team, helper, operator, run_agent):
    other = agent_create(actor=team, name="Other")
    handoff_add(actor=team, agent_id=helper.pk, target_id=other.pk)
    run_agent(helper, ToolCall("transfer_to_other"), Reply("Other here."))
    assert operator.post(f"/admin/agents_app/agent/{other.pk}/delete/", {"post": "yes"}).status_code == 302
    assert run_agent(helper)["tools"] == []
    assert not AgentContext.objects.exists()


def test_an_agent_added_in_the_admin_runs_and_a_provider_deleted_there_is_gone(
    team, fake_provider, operator, run_agent
):
    data = _agent_form(Agent(name="Made by ops", instructions="Ops made me.", max_turns=5)) | {
        "workspace": team.workspace.pk,
        "provider": fake_provider.pk,
    }
    response = operator.post("/admin/agents_app/agent/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    agent = Agent.objects.get(name="Made by ops")
    assert (agent.workspace_id, agent.provider_id, agent.version) == (team.workspace.pk, fake_provider.pk, 1)
    assert run_agent(agent)["system"] == "Ops made me."
    deleted = operator.post(f"/admin/providers_app/provider/{fake_provider.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not Provider.objects.exists()
    assert Agent.objects.get(pk=agent.pk).provider_id is None  # it falls back to the workspace default
