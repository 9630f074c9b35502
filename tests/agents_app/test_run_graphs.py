"""Runs of agent graphs where every agent has a provider of its own: handoff chains, cycles and agents used
as tools, plain (through Django's endpoint and through the run hot path), streamed and in the background.

Through the real HTTP API, the real model resolver and the scripted server; nothing of ours is patched.
The team has no default provider, so an agent that fell back to it would reach the bundled local model
(not running in tests) instead of its own provider, and fail.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx2
import pytest
from django.test import override_settings

from accounts_app.services import api_token_create
from agents_app.models import AgentRun
from agents_app.services import agent_create, handoff_add
from providers_app.services import provider_create
from tests.conftest import streamed_run_events
from tests.fakes import Reply, ToolCall

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def providers(team, fake_openai):
    """Two priced providers on the fake server, with their own keys and models; neither is the default."""
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        made = {
            name: provider_create(
                actor=team,
                type="custom",
                name=name,
                api_key=f"sk-{name.lower()}-0123456789",
                base_url=fake_openai.base_url,
                models=[f"{name.lower()}-model"],
                config={"prices": {f"{name.lower()}-model": {"input": price, "output": price * 2}}},
                is_default=False,
            )
            for name, price in (("Alpha", 1000), ("Beta", 10_000))
        }
        yield made


@pytest.fixture
def alpha_beta(team, providers):
    """Agents Alpha and Beta, each on its own provider."""
    alpha = agent_create(actor=team, name="Alpha", instructions="Route.", provider_id=providers["Alpha"].pk)
    beta = agent_create(actor=team, name="Beta", instructions="Answer.", provider_id=providers["Beta"].pk)
    return alpha, beta


def _keys_and_models(fake_openai) -> list[tuple[str, str]]:
    return [
        (r.headers["Authorization"].removeprefix("Bearer "), r.body["model"])
        for r in fake_openai.requests_to("/v1/chat/completions")
    ]


ALPHA = ("sk-alpha-0123456789", "alpha-model")
BETA = ("sk-beta-0123456789", "beta-model")


@pytest.fixture
def post_run(api_server, team):
    """POST /api/v1/agents/{id}/run with a token, through the run hot path and through Django alone
    (``api_server``). Returns (status, body)."""
    token = api_token_create(actor=team, name="graphs").raw

    def post(agent_id: int, body: dict) -> tuple[int, dict]:
        response = httpx2.post(
            f"{api_server}/api/v1/agents/{agent_id}/run",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        return response.status_code, response.json()

    return post


def test_a_handoff_runs_the_target_on_its_own_provider(team, alpha_beta, fake_openai, post_run):
    alpha, beta = alpha_beta
    handoff_add(actor=team, agent_id=alpha.pk, target_id=beta.pk)
    fake_openai.script(ToolCall("transfer_to_beta"), Reply("Beta answers.", usage=(100, 10)))
    status, body = post_run(alpha.pk, {"message": "Hi"})
    assert status == 200, body
    assert (body["output"], body["last_agent"]) == ("Beta answers.", "Beta")
    assert _keys_and_models(fake_openai) == [ALPHA, BETA]


def test_a_handoff_cycle_alternates_providers(team, alpha_beta, fake_openai, post_run):
    alpha, beta = alpha_beta
    handoff_add(actor=team, agent_id=alpha.pk, target_id=beta.pk)
    handoff_add(actor=team, agent_id=beta.pk, target_id=alpha.pk)
    fake_openai.script(ToolCall("transfer_to_beta"), ToolCall("transfer_to_alpha"), Reply("Back at Alpha."))
    status, body = post_run(alpha.pk, {"message": "Hi"})
    assert status == 200, body
    assert body["last_agent"] == "Alpha"
    assert _keys_and_models(fake_openai) == [ALPHA, BETA, ALPHA]


def test_an_agent_used_as_a_tool_runs_on_its_own_provider(team, alpha_beta, fake_openai, post_run):
    alpha, beta = alpha_beta
    from agents_app.services import agent_update

    agent_update(
        actor=team,
        agent_id=alpha.pk,
        changes={"tools": [{"type": "agent", "name": "ask_beta", "params": {"agent_id": beta.pk}}]},
    )
    fake_openai.script(ToolCall("ask_beta", {"input": "What?"}), Reply("Beta says 42."), Reply("It is 42."))
    status, body = post_run(alpha.pk, {"message": "Hi"})
    assert status == 200, body
    assert (body["output"], body["last_agent"]) == ("It is 42.", "Alpha")
    assert _keys_and_models(fake_openai) == [ALPHA, BETA, ALPHA]
    # The tool agent's request is counted, and priced, as Beta's.
    by_agent = {entry["agent"]: entry for entry in body["usage"]["agents"]}
    assert (by_agent["Alpha"]["requests"], by_agent["Beta"]["requests"], body["usage"]["requests"]) == (2, 1, 3)
    assert by_agent["Beta"]["model"] == "beta-model"


def test_a_streamed_handoff_runs_the_target_on_its_own_provider(team, alpha_beta, fake_openai, asgi_server):
    alpha, beta = alpha_beta
    handoff_add(actor=team, agent_id=alpha.pk, target_id=beta.pk)
    fake_openai.script(ToolCall("transfer_to_beta"), Reply("Streamed from Beta."))
    events = streamed_run_events(asgi_server, alpha.pk, api_token_create(actor=team, name="stream").raw)
    names = [n for n, _ in events]
    assert "error" not in names, events
    assert ("handoff", {"from": "Alpha", "to": "Beta"}) in events
    done = events[-1]
    assert (done[0], done[1]["status"], done[1]["output"]) == ("done", "succeeded", "Streamed from Beta.")
    assert _keys_and_models(fake_openai) == [ALPHA, BETA]


@pytest.mark.slow
def test_a_background_handoff_runs_the_target_on_its_own_provider(
    team, alpha_beta, fake_openai, api_client, celery_worker
):
    alpha, beta = alpha_beta
    handoff_add(actor=team, agent_id=alpha.pk, target_id=beta.pk)
    fake_openai.script(ToolCall("transfer_to_beta"), Reply("Beta, in the background."))
    client = api_client(team)
    response = client.post(
        f"/api/v1/agents/{alpha.pk}/run",
        data=json.dumps({"message": "Hi", "background": True}),
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    deadline = time.monotonic() + 30
    while (run := client.get(f"/api/v1/runs/{run_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the worker did not finish the run"
        time.sleep(0.2)
    assert (run["status"], run["final_output"], run["last_agent_name"]) == (
        "succeeded",
        "Beta, in the background.",
        "Beta",
    ), run["error"]
    assert _keys_and_models(fake_openai) == [ALPHA, BETA]


def test_each_model_request_is_priced_at_its_own_provider_and_model(team, alpha_beta, fake_openai, post_run):
    alpha, beta = alpha_beta
    handoff_add(actor=team, agent_id=alpha.pk, target_id=beta.pk)
    fake_openai.script(ToolCall("transfer_to_beta"), Reply("Beta answers.", usage=(100, 10)))
    status, body = post_run(alpha.pk, {"message": "Hi"})
    assert status == 200, body
    run = AgentRun.objects.get(pk=body["run_id"])
    by_agent = {entry["agent"]: entry for entry in run.usage["agents"]}
    assert set(by_agent) == {"Alpha", "Beta"}
    alpha_usage, beta_usage = by_agent["Alpha"], by_agent["Beta"]
    assert (alpha_usage["provider_id"], alpha_usage["model"]) == (alpha.provider_id, "alpha-model")
    assert (beta_usage["provider_id"], beta_usage["model"]) == (beta.provider_id, "beta-model")
    assert (beta_usage["requests"], beta_usage["input_tokens"], beta_usage["output_tokens"]) == (1, 100, 10)
    # Alpha's tokens at 1000/2000 per million, Beta's at 10000/20000.
    expected = (
        Decimal(alpha_usage["input_tokens"]) * 1000
        + Decimal(alpha_usage["output_tokens"]) * 2000
        + Decimal(100) * 10_000
        + Decimal(10) * 20_000
    ) / 1_000_000
    assert run.cost == expected
    assert Decimal(body["cost"]) == expected
    assert Decimal(beta_usage["cost"]) == Decimal("1.2")
    totals = body["usage"]
    assert totals["input_tokens"] == alpha_usage["input_tokens"] + 100
    assert totals["requests"] == 2
