"""Agents API. No `from __future__ import annotations`: ninja reads annotations at runtime."""

import json
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import Query, Router, Status
from ninja.pagination import paginate

from agents_app import guardrails, portability, selectors, services, tools
from agents_app.events import agent_run_feed, feed_response, last_event_id, sse_response
from agents_app.exceptions import InvalidInputError
from agents_app.models import Agent, AgentContext, AgentRun
from agents_app.runs.answer import queued_answer, run_answer
from agents_app.runs.execution import execute_run, stream_run
from agents_app.runs.lifecycle import start_run
from agents_app.schemas import (
    RUN_ANSWERS,
    AgentIn,
    AgentOut,
    AgentPatch,
    AgentRunInput,
    AgentSummaryOut,
    ContextIn,
    ContextOut,
    ContextPatch,
    FileSearchToolCreate,
    GuardrailTryIn,
    GuardrailTryOut,
    HandoffIn,
    HandoffOut,
    ImportIn,
    ModelIn,
    RunDetailOut,
    RunFilter,
    RunOut,
    ToolOut,
    ToolTryIn,
    TryOut,
)
from agents_app.tasks import queue_run
from config.auth import BrowserSessionAuth, DeferredTokenAuth, request_actor, request_actor_async
from config.db import db_call
from config.downloads import attachment
from config.paginators import LimitOffset

router = Router(tags=["agents"])
runs_router = Router(tags=["runs"])


_OUT_FIELDS = ("id", *sorted(services.AGENT_FIELDS), "version", "created_at", "updated_at")


def agent_out(agent: Agent) -> dict[str, Any]:
    handoffs = list(agent.handoffs.select_related("target").all())
    return {
        **{field: getattr(agent, field) for field in _OUT_FIELDS},
        "user_id": agent.created_by_id,
        "handoffs": [
            {
                "target_id": h.target_id,
                "target_name": h.target.name,
                "tool_name": h.tool_name,
                "tool_description": h.tool_description,
            }
            for h in handoffs
        ],
        "contexts": list(agent.contexts.all()),
    }


def _fresh(request: HttpRequest, agent_id: int) -> dict[str, Any]:
    return agent_out(selectors.agent_get(actor=request_actor(request), agent_id=agent_id))


@router.get("", response=list[AgentSummaryOut], summary="The workspace's agents")
@paginate(LimitOffset)
def agent_list(request: HttpRequest, search: str = ""):  # type: ignore[no-untyped-def]
    return selectors.agent_list(actor=request_actor(request), search=search[:100])


@router.post("", response={201: AgentOut}, summary="Create an agent")
def agent_create(request: HttpRequest, payload: AgentIn) -> Status:
    agent = services.agent_create(actor=request_actor(request), **payload.service_values())
    return Status(201, _fresh(request, agent.pk))


@router.post("/import", response={201: AgentOut}, summary="Import agents from an export (JSON or YAML)")
def agent_import(request: HttpRequest, payload: ImportIn) -> Status:
    document = payload.document if payload.document is not None else portability.parse_document(payload.text or "")
    root = portability.agent_import(actor=request_actor(request), document=document)
    return Status(201, _fresh(request, root.pk))


@router.get(
    "/{agent_id}/export",
    summary="Export the agent and every agent it reaches",
    description="`format=json` (default) or `yaml`: a document `POST /agents/import` reads back; `python`: a "
    "runnable openai-agents script.",
)
def agent_export(request: HttpRequest, agent_id: int, format: str = "json") -> HttpResponse:
    actor = request_actor(request)
    name = selectors.agent_get(actor=actor, agent_id=agent_id).name
    if format == "yaml":
        body, content_type, ext = (
            portability.agent_export_yaml(actor=actor, agent_id=agent_id),
            "application/yaml",
            "yaml",
        )
    elif format == "python":
        body, content_type, ext = portability.agent_export_python(actor=actor, agent_id=agent_id), "text/x-python", "py"
    elif format == "json":
        body = json.dumps(portability.agent_export(actor=actor, agent_id=agent_id), indent=2, ensure_ascii=False)
        content_type, ext = "application/json", "json"
    else:
        raise InvalidInputError("Unknown format.", fields={"format": "Choose json, yaml or python."})
    return attachment(body, name=name or "agent", ext=ext, content_type=content_type)


@router.get("/{agent_id}", response=AgentOut)
def agent_get(request: HttpRequest, agent_id: int) -> dict[str, Any]:
    return _fresh(request, agent_id)


@router.patch("/{agent_id}", response=AgentOut, summary="Change some fields")
def agent_update(request: HttpRequest, agent_id: int, payload: AgentPatch) -> dict[str, Any]:
    services.agent_update(actor=request_actor(request), agent_id=agent_id, changes=payload.service_values(partial=True))
    return _fresh(request, agent_id)


@router.delete("/{agent_id}", response={204: None})
def agent_delete(request: HttpRequest, agent_id: int) -> Status:
    services.agent_delete(actor=request_actor(request), agent_id=agent_id)
    return Status(204, None)


@router.post("/{agent_id}/model", response=AgentOut, summary="Set the provider, model and model settings")
def agent_model(request: HttpRequest, agent_id: int, payload: ModelIn) -> dict[str, Any]:
    services.agent_set_model(
        actor=request_actor(request),
        agent_id=agent_id,
        provider_id=payload.provider_id,
        model=payload.model,
        model_settings=payload.model_settings(),
    )
    return _fresh(request, agent_id)


@router.post("/{agent_id}/handoffs", response={201: HandoffOut}, summary="Let this agent hand off to another")
def handoff_add(request: HttpRequest, agent_id: int, payload: HandoffIn) -> Status:
    handoff = services.handoff_add(
        actor=request_actor(request),
        agent_id=agent_id,
        target_id=payload.target_id,
        tool_name=payload.tool_name,
        tool_description=payload.tool_description,
    )
    return Status(
        201,
        {
            "target_id": handoff.target_id,
            "target_name": handoff.target.name,
            "tool_name": handoff.tool_name,
            "tool_description": handoff.tool_description,
        },
    )


@router.post(
    "/{agent_id}/file-search-tool",
    response={201: ToolOut},
    summary="Give this agent a tool that searches a knowledge base and cites what it finds",
    openapi_extra={
        "responses": {
            "404": {
                "description": "No such agent or vector store, or another workspace's.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        }
    },
)
def file_search_tool_add(request: HttpRequest, agent_id: int, payload: FileSearchToolCreate) -> Status:
    tool = services.file_search_tool_add(
        actor=request_actor(request),
        agent_id=agent_id,
        vector_store_id=payload.vector_store_id,
        name=payload.name,
        description=payload.description,
        max_results=payload.max_results,
        similarity_threshold=payload.similarity_threshold,
    )
    return Status(201, {"id": tool["name"], "agent_id": agent_id, **tool})


@router.delete("/{agent_id}/handoffs/{target_id}", response={204: None})
def handoff_remove(request: HttpRequest, agent_id: int, target_id: int) -> Status:
    services.handoff_remove(actor=request_actor(request), agent_id=agent_id, target_id=target_id)
    return Status(204, None)


@router.post(
    "/{agent_id}/tools/{name}/try",
    response=TryOut,
    summary="Run one function tool on sample arguments (nothing recorded, no credits)",
)
def tool_try(request: HttpRequest, agent_id: int, name: str, payload: ToolTryIn) -> dict[str, Any]:
    outcome = tools.try_tool(actor=request_actor(request), agent_id=agent_id, name=name, arguments=payload.arguments)
    return outcome.as_json()


@router.post(
    "/{agent_id}/guardrails/{kind}/{name}/try",
    response=GuardrailTryOut,
    summary="Check a sample with one guardrail (an agent judge runs as a recorded run of that agent)",
)
async def guardrail_try(
    request: HttpRequest, agent_id: int, kind: Literal["input", "output"], name: str, payload: GuardrailTryIn
) -> dict[str, Any]:
    actor = await request_actor_async(request)
    result = await guardrails.try_guardrail(actor=actor, agent_id=agent_id, kind=kind, name=name, sample=payload.sample)
    return result.as_json()


@router.get("/{agent_id}/contexts", response=list[ContextOut])
def context_list(request: HttpRequest, agent_id: int) -> list[AgentContext]:
    return list(selectors.agent_get(actor=request_actor(request), agent_id=agent_id).contexts.all())


@router.post("/{agent_id}/contexts", response={201: ContextOut})
def context_create(request: HttpRequest, agent_id: int, payload: ContextIn) -> Status:
    if payload.agent_id is not None and payload.agent_id != agent_id:
        raise InvalidInputError(
            "The body's agent_id is not the path's.", fields={"agent_id": "Omit it, or give the path's agent id."}
        )
    context = services.context_create(
        actor=request_actor(request),
        agent_id=agent_id,
        name=payload.name,
        content=payload.content,
        is_default=payload.is_default,
    )
    return Status(201, context)


@router.get("/{agent_id}/contexts/{context_id}", response=ContextOut)
def context_get(request: HttpRequest, agent_id: int, context_id: int) -> AgentContext:
    agent = selectors.agent_get(actor=request_actor(request), agent_id=agent_id)
    return selectors.context_get(agent=agent, context_id=context_id)


@router.patch("/{agent_id}/contexts/{context_id}", response=ContextOut)
def context_update(request: HttpRequest, agent_id: int, context_id: int, payload: ContextPatch) -> AgentContext:
    return services.context_update(
        actor=request_actor(request),
        agent_id=agent_id,
        context_id=context_id,
        changes=payload.dict(exclude_unset=True),
    )


@router.delete("/{agent_id}/contexts/{context_id}", response={204: None})
def context_delete(request: HttpRequest, agent_id: int, context_id: int) -> Status:
    services.context_delete(actor=request_actor(request), agent_id=agent_id, context_id=context_id)
    return Status(204, None)


@router.post(
    "/{agent_id}/run",
    auth=[DeferredTokenAuth(), BrowserSessionAuth()],
    response=RUN_ANSWERS,
    summary="Run the agent on a message",
    description=(
        "With `stream: true` the answer is `text/event-stream`: `run`, then `agent`, `text` (deltas), "
        "`tool_call`, `tool_output`, `handoff` as they happen, `error` if it fails, and finally `done` with "
        "the output, usage and cost. Closing the connection cancels the run and refunds its credits. "
        "With `background: true` the answer is 202 with the run id; poll `GET /api/v1/runs/{run_id}` or "
        "follow `GET /api/v1/runs/{run_id}/events`. "
        "402 when the workspace's credits cannot cover the run."
    ),
)
async def agent_run(request: HttpRequest, agent_id: int, payload: AgentRunInput) -> Any:
    if payload.stream and payload.background:
        raise InvalidInputError(
            "Choose stream or background, not both.", fields={"background": "Cannot be combined with stream."}
        )
    mode = "background" if payload.background else "stream" if payload.stream else "sync"
    actor = await request_actor_async(request)
    active = await start_run(actor=actor, agent_id=agent_id, mode=mode, **payload.run_fields())
    if payload.background:
        await queue_run(active.run)
        return Status(202, queued_answer(active.run))
    if payload.stream:
        return sse_response(stream_run(active))
    return Status(*run_answer(await execute_run(active)))


@router.get("/{agent_id}/runs", response=list[RunOut], summary="Runs of this agent, newest first")
@paginate(LimitOffset)
def agent_runs(request: HttpRequest, agent_id: int, filters: Query[RunFilter]):  # type: ignore[no-untyped-def]
    agent = selectors.agent_get(actor=request_actor(request), agent_id=agent_id)
    return selectors.run_list(actor=request_actor(request), agent_id=agent.pk, status=filters.status)


@runs_router.get("", response=list[RunOut], summary="All runs of the workspace, newest first")
@paginate(LimitOffset)
def run_list(request: HttpRequest, filters: Query[RunFilter]):  # type: ignore[no-untyped-def]
    return selectors.run_list(actor=request_actor(request), status=filters.status)


@runs_router.get("/{run_id}", response=RunDetailOut)
def run_get(request: HttpRequest, run_id: int) -> AgentRun:
    return selectors.run_get(actor=request_actor(request), run_id=run_id)


@runs_router.get(
    "/{run_id}/events",
    auth=[DeferredTokenAuth(), BrowserSessionAuth()],
    summary="Follow a run's events as Server-Sent Events",
    description=(
        "For background runs: the same events as a streamed run (`run`, `agent`, `text`, `tool_call`, "
        "`tool_output`, `handoff`, `error`), each with an `id`, ending with `done`. Reconnect with "
        "`Last-Event-ID` to get only what you missed. A finished run whose events have expired "
        "(RUN_EVENTS_TTL_SECONDS) answers with its `done` event alone. Without Redis there are no live "
        "events: `status` when the run's status changes, then `done`."
    ),
    response={200: None},
)
async def run_events_stream(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    after = last_event_id(request)

    def check() -> AgentRun:
        return selectors.run_get(actor=request_actor(request), run_id=run_id)  # another workspace's run is a 404

    return feed_response(agent_run_feed(await db_call(check)), after)
