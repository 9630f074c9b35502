"""The tenancy matrix: every API operation (from the OpenAPI document) and every page with an object in its path
(from the URL conf), tried against objects of one workspace by an outsider (404), an anonymous client (401, or the
sign-in page), a viewer (reads only) and a member; and every body field that names another object tried with
another workspace's id. The lists come from the app itself: an operation or page without an entry below fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts_app.actor import Actor
from accounts_app.models import Role
from accounts_app.services import api_token_create
from accounts_app.services.workspaces import invitation_create
from agents_app.models import Agent, AgentRun, Conversation
from agents_app.runs.lifecycle import start_run
from agents_app.services import agent_create, context_create, handoff_add
from config.api import api
from knowledge_app.ingestion import file_upload
from knowledge_app.models import File
from knowledge_app.services import store_create
from providers_app.services import provider_create
from tests.conftest import SUMMARY
from tests.factories import add_member, make_user
from traces_app.models import Span, Trace
from workflows_app.engine import start_workflow_run
from workflows_app.models import Workflow, WorkflowRun
from workflows_app.services import workflow_create

pytestmark = pytest.mark.django_db

# Per operation: a valid body (validation must not answer before the role check), and the least role that may
# call it ("viewer" for reads). Operations on objects only their owner may touch name who that is.
OPERATIONS: dict[str, dict[str, Any]] = {
    "me_get": {},
    "my_invitations": {},
    "my_invitation_accept": {"only": "invitee"},
    "my_invitation_decline": {"only": "invitee"},
    "workspace_list": {},
    "workspace_create": {"body": {"name": "New"}, "role": "viewer"},  # a new workspace of one's own
    "workspace_get": {},
    "workspace_rename": {"body": {"name": "Renamed"}, "role": "admin"},
    "workspace_delete": {"role": "owner"},
    "member_list": {},
    "member_update": {"body": {"role": "viewer"}, "role": "admin"},
    "member_remove": {"role": "admin"},
    "invitation_list": {"role": "admin"},
    "invitation_create": {"body": {"email": "new@example.com", "role": "member"}, "role": "admin"},
    "invitation_cancel": {"role": "admin"},
    "token_list": {},
    "token_create": {"body": {"name": "mine"}, "role": "viewer"},
    "token_revoke": {"only": "owner of the token"},
    "credits_balance": {},
    "credits_ledger": {},
    "provider_list": {},
    "provider_create": {"body": {"type": "openai", "name": "P2", "api_key": "sk-test"}},
    "provider_get": {},
    "provider_update": {"body": {"name": "Renamed"}},
    "provider_delete": {},
    "provider_test_local": {},
    "provider_test": {},
    "provider_default_preview": {},
    "provider_default_preview_local": {},
    "provider_make_default": {},
    "provider_make_default_local": {},
    "agent_list": {},
    "agent_create": {"body": {"name": "Gamma"}},
    "agent_import": {"body": {"document": {"format": "x"}}},
    "agent_export": {},
    "agent_get": {},
    "agent_update": {"body": {"instructions": "Changed."}},
    "agent_delete": {},
    "agent_model": {"body": {"model": "m"}},
    "handoff_add": {"body": {"target_id": "{beta}"}},
    "handoff_remove": {},
    "tool_try": {"body": {"arguments": {"x": 2}}},
    "guardrail_try": {"body": {"sample": "x marks it"}},
    "context_list": {},
    "context_create": {"body": {"name": "c2", "content": {}}},
    "context_get": {},
    "context_update": {"body": {"name": "c3"}},
    "context_delete": {},
    "agent_run": {"body": {"message": "Hi"}},
    "agent_runs": {},
    "run_list": {},
    "run_get": {},
    "run_events_stream": {},
    "agent_trace_list": {},
    "trace_list": {},
    "retention_get": {},
    "retention_set": {"body": {"retention_days": 7}, "role": "admin"},
    "forwarding_get": {},
    "forwarding_set": {"body": {"openai_provider_id": None}, "role": "admin"},
    "trace_get": {},
    "span_get": {},
    "store_list": {},
    "store_create": {"body": {"name": "KB2"}},
    "store_get": {},
    "store_update": {"body": {"description": "Changed."}},
    "store_delete": {},
    "store_files": {},
    "store_search": {"body": {"text": "knowledge", "mode": "keyword"}, "role": "viewer"},
    # Multipart; the store named in the form is the object an outsider must not reach.
    "file_upload": {"multipart": {"vector_store_id": "{vector_store_id}"}, "has_object": True},
    "file_get": {},
    "file_delete": {},
    "file_reingest": {},
    "file_search_tool_add": {"body": {"vector_store_id": "{vector_store_id}"}},
    "workflow_list": {},
    "workflow_create": {"body": {"name": "Flow2", "steps": [{"id": "a", "agent_id": "{agent_id}"}]}},
    "workflow_import": {"body": {"document": {"format": "x"}}},
    "workflow_export": {},
    "template_list": {},
    # A template is no workspace's object: everybody may use it, in their own workspace.
    "template_use": {"body": {"vector_store_id": None}, "has_object": False},
    "workflow_get": {},
    "workflow_update": {"body": {"description": "Changed."}},
    "workflow_delete": {},
    "workflow_run": {"body": {"message": "Hi"}},
    "workflow_runs": {},
    "workflow_run_list": {},
    "workflow_run_get": {},
    "workflow_run_cancel": {},
    "workflow_run_events": {},
}

# Pages with an object in their path, by URL name: "get" pages show it, "post" pages change it.
PAGES: dict[str, dict[str, Any]] = {
    "agents:run": {"method": "get"},
    "agents:run_meta": {"method": "get"},
    "agents:detail": {"method": "get"},
    "agents:edit": {"method": "get", "role": "member"},
    "agents:delete": {"method": "post"},
    "agents:chat": {"method": "get"},
    "agents:try": {"method": "post", "data": {"target": "tool:echo", "sample": "{}"}},
    "agents:handoff_add": {"method": "post", "data": {"target_id": "{beta}"}},
    "agents:handoff_remove": {"method": "post"},
    "agents:context_add": {"method": "post", "data": {"name": "c9", "content": "{}"}},
    "agents:context_delete": {"method": "post"},
    "providers:edit": {"method": "get", "role": "member"},
    "providers:test": {"method": "post"},
    "providers:default": {"method": "get", "role": "member"},
    "providers:delete": {"method": "post"},
    "traces:detail": {"method": "get"},
    "traces:span": {"method": "get"},
    "invitation_respond": {"method": "post", "only": "invitee"},
    "member_role": {"method": "post", "data": {"role": "viewer"}, "role": "admin"},
    "member_remove": {"method": "post", "role": "admin"},
    "invitation_cancel": {"method": "post", "role": "admin"},
    "token_revoke": {"method": "post", "only": "owner of the token"},
    "knowledge:store": {"method": "get"},
    "knowledge:edit": {"method": "get", "role": "member"},
    "knowledge:delete": {"method": "post"},
    "knowledge:upload": {"method": "post"},
    "knowledge:search": {
        "method": "post",
        "data": {"text": "knowledge", "mode": "keyword", "max_results": 5},
        "role": "viewer",
    },
    "knowledge:file_delete": {"method": "post"},
    "knowledge:file_reingest": {"method": "post"},
    "workflows:detail": {"method": "get"},
    "workflows:edit": {"method": "get", "role": "member"},
    "workflows:delete": {"method": "post"},
    "workflows:run_start": {"method": "post", "data": {"message": "Hi"}},
    "workflows:run": {"method": "get"},
    "workflows:run_cancel": {"method": "post"},
}
# Not a workspace's object: addressed by a secret (the link works for whoever holds it), or the same for everybody
# (a workflow template, used in one's own workspace: tests/workflows_app/test_pages.py).
NOT_WORKSPACE_OBJECTS = {"accounts:invitation_accept_link", "workflows:template"}

RANKS = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}


@dataclass
class World:
    """One workspace's objects, and the people who try them."""

    team: Actor
    ids: dict[str, Any]
    actors: dict[str, Actor | None]


@pytest.fixture
def world(team, outsider, settings, tmp_path) -> World:
    echo = {"code": "def main(x=1):\n    return x\n", "allow_code_execution": True}
    alpha = agent_create(
        actor=team,
        name="Alpha",
        instructions="Route.",
        tools=[{"type": "function", "name": "echo", "params": echo}],
        input_guardrails=[{"name": "echo", "implementation": "regex", "config": {"pattern": "x"}}],
    )
    beta = agent_create(actor=team, name="Beta")
    handoff_add(actor=team, agent_id=alpha.pk, target_id=beta.pk)
    context = context_create(actor=team, agent_id=alpha.pk, name="ctx", content={"k": 1})
    store = store_create(actor=team, name="KB")
    settings.MEDIA_ROOT = tmp_path / "media"
    stored, _ = file_upload(actor=team, store_id=store.pk, name="kb.txt", content=ContentFile(b"Knowledge."))
    File.objects.filter(pk=stored.pk).update(status="error", message="x")  # so it may be processed again
    provider = provider_create(actor=team, type="openai", name="P", api_key="sk-team", is_default=False)
    run = async_to_sync(start_run)(actor=team, agent_id=alpha.pk, message="Hi")
    AgentRun.objects.filter(pk=run.run.pk).update(status="failed", error="x", error_code="x")
    trace = Trace.objects.create(trace_id="trace_" + "a" * 32, workspace=team.workspace, name="Alpha")
    Span.objects.create(trace=trace, span_id="span_" + "b" * 24, kind="agent", name="Alpha")
    teammate = add_member(actor=team, user=make_user(username="tina"), role=Role.MEMBER)
    invitation = invitation_create(actor=team, email="dave@example.com").invitation
    token = api_token_create(actor=team, name="owner's").token
    workflow = workflow_create(actor=team, name="Flow", steps=[{"id": "a", "agent_id": alpha.pk}])
    workflow_run = start_workflow_run(actor=team, workflow_id=workflow.pk, message="Hi").run
    WorkflowRun.objects.filter(pk=workflow_run.pk).update(status="failed", error="x", error_code="x")
    ids = {
        "agent_id": alpha.pk,
        "beta": beta.pk,
        "target_id": beta.pk,
        "context_id": context.pk,
        "provider_id": provider.pk,
        "run_id": run.run.pk,
        "trace_id": trace.trace_id,
        "span_id": "span_" + "b" * 24,
        "workspace_id": team.workspace.pk,
        "user_id": teammate.user.pk,
        "invitation_id": invitation.pk,
        "token_id": token.pk,
        "answer": "accept",
        "name": "echo",
        "kind": "input",
        "vector_store_id": store.pk,
        "store_id": store.pk,
        "file_id": stored.pk,
        "workflow_id": workflow.pk,
        "workflow_run_id": workflow_run.pk,
        "key": "document-analysis",
    }
    actors: dict[str, Actor | None] = {
        "outsider": outsider,
        "anonymous": None,
        "viewer": add_member(actor=team, user=make_user(username="vera"), role=Role.VIEWER),
        "member": add_member(actor=team, user=make_user(username="mo"), role=Role.MEMBER),
    }
    return World(team=team, ids=ids, actors=actors)


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    text = json.dumps(value)
    for name, object_id in ids.items():
        text = text.replace(f'"{{{name}}}"', json.dumps(object_id))
    return json.loads(text)


def _expected(entry: dict[str, Any], actor_name: str, *, has_object: bool, method: str) -> str:
    """Return what ``actor_name`` must get: "ok", "403", "404" or "401"."""
    if actor_name == "anonymous":
        return "401"
    if actor_name == "outsider":
        return "404" if has_object else "ok"
    if "only" in entry:
        return "404"  # the invitee alone, or the token's owner: for everybody else it does not exist
    least = entry.get("role", "viewer" if method == "get" else "member")
    return "ok" if RANKS[actor_name] >= RANKS[least] else "403"


def _verdict(status: int) -> str:
    if status in (401, 403, 404):
        return str(status)
    assert status < 500 or status == 502, status  # 502: a run whose model failed, answered as documented
    return "ok"


def _api_operations() -> list[tuple[str, str, str]]:
    document = api.get_openapi_schema()
    return [(op["operationId"], method, path) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_operation_and_page_has_a_matrix_entry(request):
    operations = {op_id for op_id, _, _ in _api_operations()}
    assert operations == set(OPERATIONS), operations ^ set(OPERATIONS)
    assert set(_object_pages()) == set(PAGES) | NOT_WORKSPACE_OBJECTS
    request.config.stash[SUMMARY] = (  # printed at the end of the run (tests/conftest.py)
        f"tenancy matrix: {len(operations)} API operations and {len(PAGES)} pages, each tried by 4 actors; "
        f"{len(REFERENCES) + len(NESTED_REFERENCES)} body fields tried with another workspace's id"
    )


@pytest.mark.parametrize("actor_name", ["outsider", "anonymous", "viewer", "member"])
@pytest.mark.parametrize(("operation_id", "method", "path"), _api_operations())
def test_api_operation(world, actor_name, operation_id, method, path):
    entry = OPERATIONS[operation_id]
    actor = world.actors[actor_name]
    headers = {"Authorization": f"Bearer {api_token_create(actor=actor, name='m').raw}"} if actor else {}
    url = path.format(**world.ids)
    body = _fill(entry.get("body", {}), world.ids) if method != "get" else None
    if "multipart" in entry:
        form = {**_fill(entry["multipart"], world.ids), "file": SimpleUploadedFile("m.txt", b"matrix text")}
        response = Client(headers=headers).post(url, data=form)
    else:
        response = getattr(Client(headers=headers), method)(
            url, data=json.dumps(body) if body is not None else None, content_type="application/json"
        )
    expected = _expected(entry, actor_name, has_object=entry.get("has_object", "{" in path), method=method)
    assert _verdict(response.status_code) == expected, (actor_name, method, url, response.content[:300])
    if response.status_code in (401, 403, 404):
        assert response.json()["code"] in {"not_authenticated", "permission_denied", "not_found"}


def _object_pages() -> dict[str, str]:
    """Return every page URL with an object in its path, by namespaced name: its route."""
    found: dict[str, str] = {}

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}:{pattern.namespace}" if namespace and pattern.namespace else pattern.namespace
                walk(pattern.url_patterns, prefix + str(pattern.pattern), inner or namespace)
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                if "<" in route and not route.startswith(("api/", "admin/")):
                    found[f"{namespace}:{pattern.name}" if namespace else str(pattern.name)] = "/" + route

    walk(get_resolver().url_patterns, "", "")
    return found


def _page_url(route: str, ids: dict[str, Any]) -> str:
    import re

    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids[m.group(1)]), route)


@pytest.mark.parametrize("actor_name", ["outsider", "anonymous", "viewer", "member"])
@pytest.mark.parametrize("page", sorted(PAGES))
def test_page(world, page_client, actor_name, page):
    entry = PAGES[page]
    actor = world.actors[actor_name]
    client = page_client(actor) if actor is not None else Client()
    url = _page_url(_object_pages()[page], world.ids)
    method = entry["method"]
    data = _fill(entry.get("data", {}), world.ids) if method == "post" else None
    response = getattr(client, method)(url, data) if data is not None else getattr(client, method)(url)
    if actor_name == "anonymous":
        assert response.status_code == 302, (url, response.status_code)
        assert response["Location"].startswith("/accounts/login/")
        return
    expected = _expected(entry, actor_name, has_object=True, method=method)
    status = response.status_code
    verdict = "ok" if status in (200, 302, 422) else str(status)
    assert verdict == expected, (actor_name, method, url, status)


# Body fields that name another object, per operation: each is tried with another workspace's object.
REFERENCES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("post", "/api/v1/agents", "provider_id", {"name": "X"}),
    ("patch", "/api/v1/agents/{agent_id}", "provider_id", {}),
    ("post", "/api/v1/agents/{agent_id}/model", "provider_id", {"model": "m"}),
    ("post", "/api/v1/agents/{agent_id}/handoffs", "target_id", {}),
    ("post", "/api/v1/agents/{agent_id}/run", "context_id", {"message": "Hi"}),
    ("post", "/api/v1/agents/{agent_id}/run", "conversation_id", {"message": "Hi"}),
    ("post", "/api/v1/agents/{agent_id}/run", "provider_id", {"message": "Hi"}),
    ("put", "/api/v1/traces/forwarding", "openai_provider_id", {}),
    ("post", "/api/v1/vector-stores", "embedding_provider_id", {"name": "Theirs"}),
    ("post", "/api/v1/agents/{agent_id}/file-search-tool", "vector_store_id", {}),
    ("post", "/api/v1/workflows/templates/document-analysis", "vector_store_id", {}),
]


@pytest.fixture
def foreign(outsider) -> dict[str, int]:
    """The outsider's own objects: what a client of the team must never reach by id."""
    agent = agent_create(actor=outsider, name="Theirs")
    context = context_create(actor=outsider, agent_id=agent.pk, name="theirs", content={"secret": 1})
    provider = provider_create(actor=outsider, type="openai", name="Theirs", api_key="sk-theirs")
    conversation = Conversation.objects.create(workspace=outsider.workspace, agent=agent, title="theirs")
    return {
        "provider_id": provider.pk,
        "openai_provider_id": provider.pk,
        "embedding_provider_id": provider.pk,
        "target_id": agent.pk,
        "agent_id": agent.pk,
        "context_id": context.pk,
        "conversation_id": conversation.pk,
        "vector_store_id": store_create(actor=outsider, name="Theirs").pk,
    }


@pytest.mark.parametrize(("method", "path", "field", "body"), REFERENCES)
def test_another_workspaces_object_in_a_body_is_refused(world, foreign, method, path, field, body):
    client = Client(headers={"Authorization": f"Bearer {api_token_create(actor=world.team, name='ref').raw}"})
    url = path.format(**world.ids)
    before = (Agent.objects.filter(provider_id=foreign["provider_id"]).count(), AgentRun.objects.count())
    response = getattr(client, method)(
        url, data=json.dumps({**body, field: foreign[field]}), content_type="application/json"
    )
    assert response.status_code in (404, 422), (url, field, response.content[:300])
    after = (Agent.objects.filter(provider_id=foreign["provider_id"]).count(), AgentRun.objects.count())
    assert after == before
    assert not Agent.objects.filter(workspace=world.team.workspace, handoffs__pk=foreign["target_id"]).exists()


# The agent and knowledge base ids inside an agent's tools and guardrails (agents_app.tool_specs.referenced_agent_ids,
# agents_app.file_search.store_ids).
NESTED_REFERENCES = [
    ("tools", {"type": "agent", "name": "t", "params": {}}, "params", "tools.0.params.agent_id"),
    ("tools", {"type": "file_search", "name": "t", "params": {}}, "params", "tools.0.params.vector_store_id"),
    (
        "input_guardrails",
        {"name": "g", "implementation": "agent", "config": {}},
        "config",
        "input_guardrails.0.config.agent_id",
    ),
    (
        "output_guardrails",
        {"name": "g", "implementation": "agent", "config": {}},
        "config",
        "output_guardrails.0.config.agent_id",
    ),
]


@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_workflow_step_naming_another_workspaces_agent_is_refused(world, foreign, method):
    client = Client(headers={"Authorization": f"Bearer {api_token_create(actor=world.team, name='ref').raw}"})
    steps = [{"id": "a", "agent_id": world.ids["agent_id"]}, {"id": "b", "agent_id": foreign["agent_id"]}]
    url = "/api/v1/workflows" if method == "post" else f"/api/v1/workflows/{world.ids['workflow_id']}"
    response = getattr(client, method)(
        url, data=json.dumps({"name": "Theirs", "steps": steps}), content_type="application/json"
    )
    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["steps[1].agent_id"]
    assert Workflow.objects.get(pk=world.ids["workflow_id"]).version == 1
    assert not Workflow.objects.filter(name="Theirs").exists()


@pytest.mark.parametrize(("key", "entry", "part", "field"), NESTED_REFERENCES)
@pytest.mark.parametrize("method", ["post", "patch"])
def test_an_agent_tool_or_judge_naming_another_workspaces_object_is_refused(
    world, foreign, key, entry, part, field, method
):
    client = Client(headers={"Authorization": f"Bearer {api_token_create(actor=world.team, name='ref').raw}"})
    reference = field.rsplit(".", 1)[1]
    body = {"name": "Tooled", key: [{**entry, part: {reference: foreign[reference]}}]}
    url = "/api/v1/agents" if method == "post" else f"/api/v1/agents/{world.ids['agent_id']}"
    before = Agent.objects.get(pk=world.ids["agent_id"]).version
    response = getattr(client, method)(url, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert not Agent.objects.filter(name="Tooled").exists()
    assert Agent.objects.get(pk=world.ids["agent_id"]).version == before
