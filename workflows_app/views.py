"""Workflow pages: the list with templates and import, the designer (steps drawn as a graph while they are typed),
a workflow's page with its run form and run history, and a run's page with its live progress and path. Every write
goes through the services the API uses."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts_app.http import WorkspaceRequest
from agents_app.models import Agent, AgentContext
from agents_app.portability import parse_document
from agents_app.views import failure_text, import_text
from config.errors import ApplicationError
from workflows_app import engine, portability, selectors, services
from workflows_app.definition import OPERATORS
from workflows_app.exceptions import ConflictError, InvalidInputError
from workflows_app.forms import CONDITION_TYPES, apply_action, designer_rows, steps_from_form
from workflows_app.graph import END_ID, workflow_diagram
from workflows_app.models import Workflow, WorkflowRun, WorkflowRunStatus

RUNS_ON_DETAIL = 20


def _agents(request: WorkspaceRequest) -> list[tuple[int, str]]:
    return list(Agent.objects.filter(workspace=request.actor.workspace).order_by("name").values_list("pk", "name"))


@login_required
@require_GET
def workflow_list(request: WorkspaceRequest) -> HttpResponse:
    workflows = list(selectors.workflow_list(actor=request.actor))
    last_runs: dict[int, WorkflowRun] = {}
    latest = WorkflowRun.objects.filter(workflow__in=workflows).order_by("workflow_id", "-created_at", "-id")
    for run in latest.distinct("workflow_id"):  # each workflow's last run, in one query
        if run.workflow_id is not None:
            last_runs[run.workflow_id] = run
    rows = [(workflow, last_runs.get(workflow.pk)) for workflow in workflows]
    context = {"rows": rows, "templates": portability.TEMPLATES, "has_agents": bool(_agents(request))}
    return render(request, "workflows_app/list.html", context)


def _designer(
    request: WorkspaceRequest,
    *,
    workflow: Workflow | None,
    name: str,
    description: str,
    steps: list[dict[str, Any]],
    errors: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
    part: str = "",
) -> HttpResponse:
    agents = _agents(request)
    rows, other_errors = designer_rows(steps, errors or {})
    context = {
        "workflow": workflow,
        "name": name,
        "description": description,
        "rows": rows,
        "errors": other_errors,
        "error_message": message,
        "agents": agents,
        "diagram": workflow_diagram(steps, dict(agents)),
        "step_ids": [s.get("id") for s in steps if s.get("id")],
        "condition_types": CONDITION_TYPES,
        "operators": OPERATORS,
    }
    template = "workflows_app/designer.html"
    if request.htmx:
        template += "#diagram" if part == "diagram" else "#designer"
    return render(request, template, context, status=status)


def _design(request: WorkspaceRequest, workflow: Workflow | None) -> HttpResponse:
    """Show the designer; on POST apply its button (add, remove or move a step or condition) or save."""
    request.actor.require_write()
    if request.method == "GET":
        if workflow is not None:
            steps, name, description = workflow.steps, workflow.name, workflow.description
        else:
            steps, name, description = [{"id": "step1", "kind": "agent", "input_source": "user"}], "", ""
        return _designer(request, workflow=workflow, name=name, description=description, steps=steps)
    name = request.POST.get("name", "").strip()
    description = request.POST.get("description", "").strip()
    steps = steps_from_form(request.POST)
    action = request.POST.get("action", "save")
    if action == "preview":  # a field changed: redraw the graph only
        return _designer(request, workflow=workflow, name=name, description=description, steps=steps, part="diagram")
    if action != "save":
        steps = apply_action(steps, action)
        return _designer(request, workflow=workflow, name=name, description=description, steps=steps)
    try:
        if workflow is None:
            saved = services.workflow_create(actor=request.actor, name=name, steps=steps, description=description)
        else:
            changes = {"name": name, "description": description, "steps": steps}
            saved = services.workflow_update(actor=request.actor, workflow_id=workflow.pk, changes=changes)
    except InvalidInputError as exc:
        return _designer(
            request,
            workflow=workflow,
            name=name,
            description=description,
            steps=steps,
            errors=exc.fields,
            message=exc.message,
            status=422,
        )
    messages.success(request, f"Saved “{saved.name}”.")
    if request.htmx:  # the designer posts with htmx: go to the page, not into the designer's box
        return HttpResponse(status=204, headers={"HX-Redirect": reverse("workflows:detail", args=[saved.pk])})
    return redirect("workflows:detail", saved.pk)


@login_required
@require_http_methods(["GET", "POST"])
def workflow_new(request: WorkspaceRequest) -> HttpResponse:
    return _design(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def workflow_edit(request: WorkspaceRequest, workflow_id: int) -> HttpResponse:
    return _design(request, selectors.workflow_get(actor=request.actor, workflow_id=workflow_id))


@login_required
@require_GET
def workflow_detail(request: WorkspaceRequest, workflow_id: int) -> HttpResponse:
    workflow = selectors.workflow_get(actor=request.actor, workflow_id=workflow_id)
    agents = dict(_agents(request))
    runs = list(selectors.workflow_run_list(actor=request.actor, workflow_id=workflow.pk)[:RUNS_ON_DETAIL])
    agent_ids = [s["agent_id"] for s in workflow.steps if s.get("agent_id")]
    contexts = AgentContext.objects.filter(agent_id__in=agent_ids, agent__workspace=request.actor.workspace)
    context = {
        "workflow": workflow,
        "diagram": workflow_diagram(workflow.steps, agents),
        "agents": agents,
        "runs": runs,
        "contexts": list(contexts.select_related("agent").order_by("agent__name", "name")),
    }
    return render(request, "workflows_app/detail.html", context)


@login_required
@require_POST
def workflow_delete(request: WorkspaceRequest, workflow_id: int) -> HttpResponse:
    workflow = selectors.workflow_get(actor=request.actor, workflow_id=workflow_id)
    services.workflow_delete(actor=request.actor, workflow_id=workflow.pk)
    messages.success(request, f"Deleted “{workflow.name}”. Its past runs are kept.")
    return redirect("workflows:index")


@login_required
@require_POST
def workflow_run(request: WorkspaceRequest, workflow_id: int) -> HttpResponse:
    """Start a run in the background (a worker runs it) and go to its page, which follows it live."""
    workflow = selectors.workflow_get(actor=request.actor, workflow_id=workflow_id)
    request.actor.require_write()
    context_id = request.POST.get("context_id", "")
    try:
        start = engine.start_workflow_run(
            actor=request.actor,
            workflow_id=workflow.pk,
            message=request.POST.get("message", ""),
            context_id=int(context_id) if context_id.isdigit() else None,
            mode="background",
        )
    except ApplicationError as exc:  # an empty message, credits, an agent deleted since: said on the page
        text = failure_text(exc) if isinstance(exc, InvalidInputError) else exc.message
        messages.error(request, f"The run could not start: {text}")
        return redirect("workflows:detail", workflow.pk)
    engine.queue_workflow_run(start.run.pk)
    return redirect("workflows:run", start.run.pk)


def _run_context(run: WorkflowRun) -> dict[str, Any]:
    """Return what a run's page shows: its steps' rows, and its graph with what ran and the jumps it took."""
    step_runs = list(run.step_runs.select_related("agent_run").order_by("sequence", "id"))
    statuses: dict[str, str] = {}
    counts: dict[str, int] = {}
    for row in step_runs:
        statuses[row.step_id] = row.status
        counts[row.step_id] = counts.get(row.step_id, 0) + 1
    path = list(run.path)
    taken = set(itertools.pairwise(path))
    if run.status == WorkflowRunStatus.SUCCEEDED and path:
        taken.add((path[-1], END_ID))
        statuses[END_ID] = "succeeded"
    agents = dict(Agent.objects.filter(workspace_id=run.workspace_id).values_list("pk", "name"))
    return {
        "run": run,
        "step_runs": step_runs,
        "diagram": workflow_diagram(run.steps, agents, statuses=statuses, runs=counts, taken=taken),
        "live": not run.is_terminal,
    }


@login_required
@require_GET
def run_detail(request: WorkspaceRequest, workflow_run_id: int) -> HttpResponse:
    """A run's page; with ``?part=progress`` only its progress (polled every second until the run ends)."""
    run = selectors.workflow_run_get(actor=request.actor, run_id=workflow_run_id)
    if request.GET.get("part") == "progress":
        return render(request, "workflows_app/run.html#progress", _run_context(run))
    return render(request, "workflows_app/run.html", _run_context(run))


@login_required
@require_POST
def run_cancel(request: WorkspaceRequest, workflow_run_id: int) -> HttpResponse:
    run = selectors.workflow_run_get(actor=request.actor, run_id=workflow_run_id)
    try:
        engine.workflow_run_cancel(actor=request.actor, workflow_run_id=run.pk)
    except ConflictError as exc:  # it ended meanwhile
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cancelled. Steps that finished keep their results.")
    return redirect("workflows:run", run.pk)


@login_required
@require_POST
def workflow_import(request: WorkspaceRequest) -> HttpResponse:
    """Import an export (uploaded file or pasted text); goes to the new workflow."""
    request.actor.require_write()
    try:
        workflow = portability.workflow_import(actor=request.actor, document=parse_document(import_text(request)))
    except InvalidInputError as exc:
        messages.error(request, f"Import failed: {failure_text(exc)}")
        return redirect("workflows:index")
    messages.success(request, f"Imported “{workflow.name}” and the agents it uses.")
    return redirect("workflows:detail", workflow.pk)


@login_required
@require_POST
def template_use(request: WorkspaceRequest, key: str) -> HttpResponse:
    """Create a template's workflow and agents (and its knowledge base, when it needs one); goes to it."""
    try:
        workflow = portability.workflow_from_template(actor=request.actor, key=key)
    except InvalidInputError as exc:
        messages.error(request, exc.message)
        return redirect("workflows:index")
    note = ""
    if portability.template_get(key).needs_knowledge_base:
        note = " Upload documents to its knowledge base under Knowledge, then run it."
    messages.success(request, f"Created “{workflow.name}” and its agents.{note}")
    return redirect("workflows:detail", workflow.pk)
