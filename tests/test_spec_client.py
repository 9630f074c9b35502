"""A client written from the spec's models alone (``ProviderConfig``, ``ContextCreate``, ``ModelConfig``,
``AgentRunInput``) posts their bodies and reads back everything it sent."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts_app.services import api_token_create
from agents_app.services import agent_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(team) -> Client:
    return Client(headers={"Authorization": f"Bearer {api_token_create(actor=team, name='spec').raw}"})


def post(client: Client, path: str, body: dict, method: str = "post") -> dict:
    response = getattr(client, method)(path, data=body, content_type="application/json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def test_provider_config(client):
    sent = {
        "type": "custom",
        "api_key": "sk-spec-0123456789abcdef",
        "base_url": "https://llm.example.com/v1",
        "models": ["m-large", "m-small"],
        "default_model": "m-small",
        "organization_id": "org-42",
        "additional_config": {"prices": {"m-small": {"input": 0.1, "output": 0.2}}},
    }
    created = post(client, "/api/v1/providers", sent)
    assert created["name"] == "Custom"  # ProviderConfig has no name: derived from the type
    read = client.get(f"/api/v1/providers/{created['id']}").json()
    for field in ("type", "base_url", "models", "default_model", "organization_id", "additional_config"):
        assert read[field] == sent[field], field
    assert read["has_key"] is True
    assert "sk-spec" not in str(read)  # the key is write-only
    changed = post(client, f"/api/v1/providers/{created['id']}", {"organization_id": "org-43"}, method="patch")
    assert changed["organization_id"] == "org-43"


def test_context_create(client, team):
    agent = agent_create(actor=team, name="Ctx")
    sent = {"agent_id": agent.pk, "name": "customer", "content": {"tier": "gold", "since": 2019}, "is_default": True}
    created = post(client, f"/api/v1/agents/{agent.pk}/contexts", sent)
    read = client.get(f"/api/v1/agents/{agent.pk}/contexts/{created['id']}").json()
    assert {k: read[k] for k in sent} == sent
    assert client.get(f"/api/v1/agents/{agent.pk}").json()["contexts"][0]["content"] == sent["content"]
    other = agent_create(actor=team, name="Other")
    response = client.post(
        f"/api/v1/agents/{agent.pk}/contexts", data={**sent, "agent_id": other.pk}, content_type="application/json"
    )
    assert response.status_code == 422
    assert "agent_id" in {e["field"] for e in response.json()["errors"]}


def test_model_config(client, team):
    agent = agent_create(actor=team, name="Modelled")
    provider = post(client, "/api/v1/providers", {"type": "openai", "api_key": "sk-model-0123456789"})
    sent = {
        "provider_id": provider["id"],
        "model": "gpt-4o",
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 512,
        "additional_params": {"seed": 7},
    }
    answer = post(client, f"/api/v1/agents/{agent.pk}/model", sent)
    assert (answer["provider_id"], answer["model_name"]) == (provider["id"], "gpt-4o")
    assert answer["model_settings"] == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 512, "extra": {"seed": 7}}
