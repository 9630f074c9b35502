"""The workflows API: ``/api/v1/workflows`` (the spec's section 6.2)."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import Router, Status
from ninja.pagination import paginate

from agents_app.events import feed_response, last_event_id, sse_response
from agents_app.portability import parse_document
from config.auth import BrowserSessionAuth, DeferredTokenAuth, request_actor, request_actor_async
from config.db import db_call
from config.downloads import attachment
from config.paginators import LimitOffset
from workflows_app import engine, portability, selectors, services
from workflows_app.engine import (
    execute_workflow,
    queue_workflow_run,
    start_workflow_run_async,
    stream_workflow,
    workflow_run_feed,
    workflow_run_fields,
)
from workflows_app.exceptions import InvalidInputError
from workflows_app.models import Workflow, WorkflowRun, WorkflowRunStatus
from workflows_app.schemas import (
    TemplateOut,
    TemplateUseIn,
    WorkflowCreate,
    WorkflowImportIn,
    WorkflowOut,
    WorkflowPatch,
    WorkflowRunAnswer,
    WorkflowRunDetailOut,
    WorkflowRunFailed,
    WorkflowRunInput,
    WorkflowRunOut,
    WorkflowRunQueued,
)

router = Router(tags=["workflows"])
runs_router = Router(tags=["workflows"])


def workflow_out(workflow: Workflow) -> dict[str, Any]:
    return {name: getattr(workflow, name) for name in WorkflowOut.model_fields}


@router.get("", response=list[WorkflowOut], summary="The workspace's workflows, by name")
def workflow_list(request: HttpRequest) -> list[dict[str, Any]]:
    return [workflow_out(w) for w in selectors.workflow_list(actor=request_actor(request))]


@router.post(
    "",
    response={201: WorkflowOut},
    summary="Create a workflow of agents",
    description="Steps are checked as a whole: a 422 names each bad step and field (unknown steps or agents, "
    "another workspace's agents, unreachable steps, loops without max_iterations or a way out).",
)
def workflow_create(request: HttpRequest, payload: WorkflowCreate) -> Status:
    return Status(201, workflow_out(services.workflow_create(actor=request_actor(request), **payload.service_values())))


@router.post(
    "/import",
    response={201: WorkflowOut},
    summary="Import a workflow with its agents (JSON or YAML)",
    description="Reads what `GET /workflows/{id}/export` writes: the workflow's agents are created (names that "
    "exist get a suffix), then the workflow, its steps pointing at them. All or nothing.",
)
def workflow_import(request: HttpRequest, payload: WorkflowImportIn) -> Status:
    document = payload.document if payload.document is not None else parse_document(payload.text or "")
    workflow = portability.workflow_import(actor=request_actor(request), document=document, name=payload.name)
    return Status(201, workflow_out(workflow))


@router.get("/templates", response=list[TemplateOut], summary="Ready-made workflows")
def template_list(request: HttpRequest) -> list[portability.Template]:
    request_actor(request)
    return list(portability.TEMPLATES)


@router.post(
    "/templates/{key}",
    response={201: WorkflowOut},
    summary="Create a ready-made workflow and its agents",
    description="A template whose agents search documents uses `vector_store_id`, or a new empty knowledge base "
    "named after the workflow: upload documents to it, then run.",
)
def template_use(request: HttpRequest, key: str, payload: TemplateUseIn) -> Status:
    workflow = portability.workflow_from_template(
        actor=request_actor(request), key=key, name=payload.name, vector_store_id=payload.vector_store_id
    )
    return Status(201, workflow_out(workflow))


@router.get(
    "/{workflow_id}/export",
    summary="Export the workflow with its agents",
    description="`format=json` (default) or `yaml`: a document `POST /workflows/import` reads back. Steps name their "
    "agents by name; providers are named, never included; endpoint header values are left out.",
)
def workflow_export(request: HttpRequest, workflow_id: int, format: str = "json") -> HttpResponse:
    actor = request_actor(request)
    if format == "yaml":
        body, content_type = portability.workflow_export_yaml(actor=actor, workflow_id=workflow_id), "application/yaml"
    elif format == "json":
        document = portability.workflow_export(actor=actor, workflow_id=workflow_id)
        body, content_type = json.dumps(document, indent=2, ensure_ascii=False), "application/json"
    else:
        raise InvalidInputError("Unknown format.", fields={"format": "Choose json or yaml."})
    name = selectors.workflow_get(actor=actor, workflow_id=workflow_id).name
    return attachment(body, name=name or "workflow", ext=format, content_type=content_type)


@router.get("/{workflow_id}", response=WorkflowOut, summary="A workflow")
def workflow_get(request: HttpRequest, workflow_id: int) -> dict[str, Any]:
    return workflow_out(selectors.workflow_get(actor=request_actor(request), workflow_id=workflow_id))


@router.patch("/{workflow_id}", response=WorkflowOut, summary="Change a workflow (steps: all of them)")
def workflow_update(request: HttpRequest, workflow_id: int, payload: WorkflowPatch) -> dict[str, Any]:
    actor = request_actor(request)
    return workflow_out(
        services.workflow_update(actor=actor, workflow_id=workflow_id, changes=payload.service_changes())
    )


@router.delete("/{workflow_id}", response={204: None}, summary="Delete a workflow (its runs stay)")
def workflow_delete(request: HttpRequest, workflow_id: int) -> Status:
    services.workflow_delete(actor=request_actor(request), workflow_id=workflow_id)
    return Status(204, None)


def workflow_run_answer(run: WorkflowRun) -> tuple[int, dict[str, Any]]:
    """Return the status and body of a finished workflow run's answer: 200 when it succeeded, else 502 with what
    failed (``detail``) and the results of the steps that ran."""
    fields = workflow_run_fields(run)
    if run.status == WorkflowRunStatus.SUCCEEDED:
        return 200, fields
    return 502, fields | {"detail": run.error or f"The workflow run ended {run.status}."}


@router.post(
    "/{workflow_id}/run",
    auth=[DeferredTokenAuth(), BrowserSessionAuth()],
    response={200: WorkflowRunAnswer, 202: WorkflowRunQueued, 502: WorkflowRunFailed},
    summary="Run the workflow on a message",
    description=(
        "Runs the steps in order, following conditions, loops and parallel groups, and answers with `results` "
        "keyed by step id (each step's `output`, `messages`, `usage`, `cost`, `run_id`), the `path` taken and the "
        "last step's `output`. Every agent step is an agent run with its own credits and trace spans, beneath the "
        "workflow's trace. 502 when a step failed (later steps do not run); 402 when the workspace's credits "
        "cannot cover every step's reservation (nothing runs). With `background: true` the answer is 202 with the "
        "`workflow_run_id`: a worker runs it (resuming after its last finished step if the worker dies); follow "
        "`GET /api/v1/workflow-runs/{id}/events`. With `stream: true` the answer is `text/event-stream`: "
        "`workflow_run`, then `step` events (`status: running`, then the step's result) and finally `done` with "
        "the answer's fields; closing the connection cancels the run."
    ),
)
async def workflow_run(request: HttpRequest, workflow_id: int, payload: WorkflowRunInput) -> Any:
    if payload.stream and payload.background:
        raise InvalidInputError(
            "Choose stream or background, not both.", fields={"background": "Cannot be combined with stream."}
        )
    mode = "background" if payload.background else "stream" if payload.stream else "sync"
    actor = await request_actor_async(request)
    start = await start_workflow_run_async(
        actor=actor,
        workflow_id=workflow_id,
        message=payload.message,
        context_id=payload.context_id,
        mode=mode,
        metadata=payload.metadata,
    )
    if payload.background:
        await db_call(queue_workflow_run, start.run.pk)
        run = start.run
        return Status(202, {"workflow_run_id": str(run.pk), "status": run.status, "trace_id": run.trace_id})
    if payload.stream:
        return sse_response(stream_workflow(start))
    return Status(*workflow_run_answer(await execute_workflow(start)))


@router.get("/{workflow_id}/runs", response=list[WorkflowRunOut], summary="Runs of this workflow, newest first")
@paginate(LimitOffset)
def workflow_runs(request: HttpRequest, workflow_id: int):  # type: ignore[no-untyped-def]
    return selectors.workflow_run_list(actor=request_actor(request), workflow_id=workflow_id)


@runs_router.get("", response=list[WorkflowRunOut], summary="All workflow runs of the workspace, newest first")
@paginate(LimitOffset)
def workflow_run_list(request: HttpRequest):  # type: ignore[no-untyped-def]
    return selectors.workflow_run_list(actor=request_actor(request))


@runs_router.get("/{workflow_run_id}", response=WorkflowRunDetailOut, summary="A workflow run with each step's run")
def workflow_run_get(request: HttpRequest, workflow_run_id: int) -> WorkflowRun:
    return selectors.workflow_run_get(actor=request_actor(request), run_id=workflow_run_id)


@runs_router.post(
    "/{workflow_run_id}/cancel",
    response=WorkflowRunDetailOut,
    summary="Cancel a queued or running workflow run",
    description="Its running step's agent run is cancelled (credits refunded) within a second; steps that "
    "finished keep their results. 409 when the run has already ended.",
)
def workflow_run_cancel(request: HttpRequest, workflow_run_id: int) -> WorkflowRun:
    return engine.workflow_run_cancel(actor=request_actor(request), workflow_run_id=workflow_run_id)


@runs_router.get(
    "/{workflow_run_id}/events",
    auth=[DeferredTokenAuth(), BrowserSessionAuth()],
    summary="Follow a workflow run's events as Server-Sent Events",
    description=(
        "The same events as a streamed workflow run (`workflow_run`, `step`, `done`), each with an `id`. Reconnect "
        "with `Last-Event-ID` to get only what you missed. A finished run whose events have expired "
        "(RUN_EVENTS_TTL_SECONDS) answers with its `done` event alone; without Redis: `status` when its status "
        "changes, then `done`."
    ),
    response={200: None},
)
async def workflow_run_events(request: HttpRequest, workflow_run_id: int) -> StreamingHttpResponse:
    after = last_event_id(request)

    def check() -> WorkflowRun:
        return selectors.workflow_run_get(actor=request_actor(request), run_id=workflow_run_id)

    return feed_response(workflow_run_feed(await db_call(check)), after)
