"""A client written from the spec's models alone (``AgentCreate`` with ``ToolCreate`` and ``GuardrailCreate``,
``ProviderConfig``, ``ContextCreate``, ``ModelConfig``, ``AgentRunInput``/``AgentRunResponse``) posts their bodies
and reads back everything it sent. The models below are the spec's, as written there (its closing data models)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import pytest
from django.test import Client, override_settings
from pydantic import BaseModel

from accounts_app.services import api_token_create
from agents_app.services import agent_create
from tests.fakes import Reply

pytestmark = pytest.mark.django_db


class ToolType(str, Enum):  # noqa: UP042 (as the spec writes it)
    WEB_SEARCH = "web_search"
    FILE_SEARCH = "file_search"
    COMPUTER = "computer"
    FUNCTION = "function"
    AGENT = "agent"


class GuardrailType(str, Enum):  # noqa: UP042
    INPUT = "input"
    OUTPUT = "output"


class ToolCreate(BaseModel):
    name: str
    description: str
    type: ToolType
    params: dict[str, Any]


class GuardrailCreate(BaseModel):
    name: str
    description: str
    type: GuardrailType
    implementation: str
    config: dict[str, Any]


class AgentBase(BaseModel):
    name: str
    instructions: str
    model: str | None = "gpt-4o"
    handoff_description: str | None = None
    input_guardrails: list[GuardrailCreate] | None = None
    output_guardrails: list[GuardrailCreate] | None = None
    output_type: dict[str, Any] | None = None
    tools: list[ToolCreate] | None = None
    metadata: dict[str, Any] | None = None


class AgentCreate(AgentBase):
    pass


class AgentResponse(AgentBase):
    id: int
    user_id: int
    created_at: datetime
    updated_at: datetime


class ProviderType(str, Enum):  # noqa: UP042
    OPENAI = "openai"
    CUSTOM = "custom"


class ProviderConfig(BaseModel):
    type: ProviderType
    api_key: str
    base_url: str | None = None
    models: list[str]
    default_model: str
    organization_id: str | None = None
    additional_config: dict[str, Any] | None = None


class AgentRunInput(BaseModel):
    message: str
    context_id: int | None = None
    stream: bool = False
    provider_id: int | None = None
    metadata: dict[str, Any] | None = None


class AgentRunResponse(BaseModel):
    output: str | dict[str, Any]
    messages: list[dict[str, Any]]
    usage: dict[str, Any]
    trace_id: str | None = None
    run_id: str


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
    assert (answer["provider_id"], answer["model"]) == (provider["id"], "gpt-4o")
    assert answer["model_settings"] == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 512, "extra": {"seed": 7}}


def test_agent_create_with_tools_and_guardrails(client, team):
    helper = agent_create(
        actor=team,
        name="Researcher",
        output_type={"type": "object", "properties": {"tripwire_triggered": {"type": "boolean"}}},
    )
    sent = AgentCreate(
        name="Analyst",
        instructions="Analyse documents.",
        handoff_description="Answers questions about documents",
        output_type={"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]},
        tools=[
            ToolCreate(
                name="research", description="Ask the researcher.", type="agent", params={"agent_id": helper.pk}
            ),
            ToolCreate(
                name="calculate",
                description="Evaluate a sum.",
                type="function",
                params={
                    "code": "def main(a, b):\n    return a + b\n",
                    "allow_code_execution": True,
                    "parameters": [
                        {"name": "a", "type": "int", "description": "first"},
                        {"name": "b", "type": "int", "default": 0, "description": "second"},
                    ],
                },
            ),
            ToolCreate(
                name="search", description="Search the web.", type="web_search", params={"max_search_results": 5}
            ),
        ],
        input_guardrails=[
            GuardrailCreate(
                name="no_pins",
                description="Refuse PIN codes.",
                type="input",
                implementation="regex",
                config={"pattern": "\\b\\d{4}\\b", "message": "Do not send PINs."},
            )
        ],
        output_guardrails=[
            GuardrailCreate(
                name="reviewed",
                description="A second agent reviews the answer.",
                type="output",
                implementation="agent",
                config={"agent_id": helper.pk},
            )
        ],
        metadata={"team": "research"},
    )
    body = sent.model_dump(mode="json")  # as a spec client sends it: every optional field, null or not
    created = post(client, "/api/v1/agents", body)
    read = AgentResponse.model_validate(client.get(f"/api/v1/agents/{created['id']}").json())
    assert read.model_dump(mode="json", include=set(body)) == body
    assert read.user_id == team.user.pk

    # The spec's defaults: null for what a client leaves out, and "gpt-4o" as the model.
    bare = post(client, "/api/v1/agents", AgentCreate(name="Bare", instructions="Hi.").model_dump(mode="json"))
    read = AgentResponse.model_validate(bare)
    assert (read.model, read.tools, read.input_guardrails, read.handoff_description) == ("gpt-4o", [], [], "")

    changed = post(client, f"/api/v1/agents/{created['id']}", {"tools": None, "model": None}, method="patch")
    assert (changed["tools"], changed["model"], changed["input_guardrails"][0]["name"]) == ([], "", "no_pins")


@override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"])
def test_agent_run_input_and_response(client, team, fake_openai):
    provider = post(
        client,
        "/api/v1/providers",
        {
            "type": "custom",
            "api_key": "sk-run-0123456789",
            "base_url": fake_openai.base_url,
            "models": ["m"],
            "default_model": "m",
        },
    )
    agent = post(
        client, "/api/v1/agents", AgentCreate(name="Runner", instructions="Answer.", model="m").model_dump(mode="json")
    )
    fake_openai.script(Reply("Forty-two."))
    sent = AgentRunInput(message="The answer?", provider_id=provider["id"])  # metadata: null
    answer = AgentRunResponse.model_validate(
        post(client, f"/api/v1/agents/{agent['id']}/run", sent.model_dump(mode="json"))
    )
    assert answer.output == "Forty-two."
    assert answer.usage["total_tokens"] > 0
    run = client.get(f"/api/v1/runs/{answer.run_id}").json()  # the spec's string id opens the run
    assert (run["status"], run["metadata"], run["trace_id"]) == ("succeeded", {}, answer.trace_id)


def test_a_provider_config_with_its_optional_fields_null(client):
    sent = ProviderConfig(type="openai", api_key="sk-null-0123456789", models=["gpt-4o"], default_model="gpt-4o")
    created = post(client, "/api/v1/providers", sent.model_dump(mode="json"))  # base_url etc. sent as null
    assert (created["base_url"], created["organization_id"], created["additional_config"]) == (
        "https://api.openai.com/v1",
        "",
        {},
    )
