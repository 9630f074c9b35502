"""Agent pages: list and search, builder, handoff wiring and contexts, chat, run history and run detail."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts_app.forms import apply_errors
from accounts_app.http import WorkspaceRequest
from agents_app import guardrails, portability, selectors, services, tools
from agents_app.exceptions import ConflictError, InvalidInputError
from agents_app.forms import AgentForm, ContextForm, HandoffForm
from agents_app.graph import handoff_graph
from agents_app.models import Agent, Conversation
from config.errors import ApplicationError
from providers_app.selectors import provider_for_run, provider_list

RUNS_ON_DETAIL = 20


@login_required
@require_GET
def agent_list(request: WorkspaceRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:100]
    agents = selectors.agent_list(actor=request.actor, search=search)
    template = "agents_app/list.html#agent-table" if request.htmx else "agents_app/list.html"
    return render(request, template, {"agents": agents, "q": search})


def _form(request: WorkspaceRequest, data: object = None, initial: dict[str, object] | None = None) -> AgentForm:
    providers = list(provider_list(actor=request.actor))
    return AgentForm(data, initial=initial, providers=providers)


def _model_lists(request: WorkspaceRequest) -> list[tuple[str, list[str]]]:
    """Return each provider's model names, keyed by its id ("default": the one agents without a provider use),
    for the builder's model picker (free text stays allowed)."""
    lists = [(str(p.pk), p.model_list()) for p in provider_list(actor=request.actor)]
    return [("default", provider_for_run(workspace=request.actor.workspace).model_list()), *lists]


@login_required
@require_http_methods(["GET", "POST"])
def agent_new(request: WorkspaceRequest) -> HttpResponse:
    request.actor.require_write()
    form = _form(request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            agent = services.agent_create(actor=request.actor, **form.service_values())
        except InvalidInputError as exc:
            apply_errors(form, exc, aliases={"model_settings": "temperature"})
        else:
            messages.success(request, f"Created “{agent.name}”. Say hello to it.")
            return redirect("agents:chat", agent_id=agent.pk)
    status = 422 if request.method == "POST" else 200
    return render(
        request,
        "agents_app/form.html",
        {"form": form, "agent": None, "model_lists": _model_lists(request)},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def agent_edit(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    agent = selectors.agent_get(actor=request.actor, agent_id=agent_id)
    request.actor.require_write()
    form = _form(request, request.POST or None, initial=AgentForm.initial_for(agent))
    if request.method == "POST" and form.is_valid():
        try:
            agent = services.agent_update(actor=request.actor, agent_id=agent.pk, changes=form.service_values())
        except InvalidInputError as exc:
            apply_errors(form, exc, aliases={"model_settings": "temperature"})
        else:
            messages.success(request, f"Saved “{agent.name}”.")
            return redirect("agents:detail", agent_id=agent.pk)
    status = 422 if request.method == "POST" else 200
    return render(
        request,
        "agents_app/form.html",
        _detail_context(request, agent, form=form, model_lists=_model_lists(request)),
        status=status,
    )


MAX_IMPORT_BYTES = 2_000_000


def import_text(request: WorkspaceRequest) -> str:
    """Return the export a page's import form sent: the uploaded file's text, else the pasted text.

    Raises InvalidInputError when the file is larger than MAX_IMPORT_BYTES.
    """
    upload = request.FILES.get("file")
    if upload is None:
        return request.POST.get("text", "")
    if upload.size and upload.size > MAX_IMPORT_BYTES:
        raise InvalidInputError("The file is too large (2 MB at most).")
    return upload.read().decode("utf-8", errors="replace")


def failure_text(exc: InvalidInputError) -> str:
    """Return an error's message with each field's problem, for a page's message."""
    details = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
    return exc.message + (f" ({details})" if details else "")


@login_required
@require_POST
def agent_import(request: WorkspaceRequest) -> HttpResponse:
    """Import an export (uploaded file or pasted text); goes to the imported root agent."""
    request.actor.require_write()
    try:
        root = portability.agent_import(actor=request.actor, document=portability.parse_document(import_text(request)))
    except InvalidInputError as exc:
        messages.error(request, f"Import failed: {failure_text(exc)}")
        return redirect("agents:index")
    messages.success(request, f"Imported “{root.name}” and the agents it uses.")
    return redirect("agents:detail", agent_id=root.pk)


@login_required
@require_POST
def agent_delete(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    agent = selectors.agent_get(actor=request.actor, agent_id=agent_id)
    services.agent_delete(actor=request.actor, agent_id=agent.pk)
    messages.success(request, f"Deleted “{agent.name}”. Its past runs are kept.")
    return redirect("agents:index")


def _back(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    """Return to the page the form was on (the agent page or its builder), else the agent page."""
    target = request.POST.get("next") or ""
    if target in (reverse("agents:detail", args=[agent_id]), reverse("agents:edit", args=[agent_id])):
        return redirect(target)
    return redirect("agents:detail", agent_id=agent_id)


def _detail_context(request: WorkspaceRequest, agent: Agent, **extra: object) -> dict[str, object]:
    wired = {h.target_id for h in agent.handoffs.all()}
    targets = [a for a in selectors.agent_list(actor=request.actor) if a.pk != agent.pk and a.pk not in wired]
    return {
        "agent": agent,
        "api_base": request.build_absolute_uri("/api/v1"),
        "handoff_form": HandoffForm(targets=targets),
        "can_add_handoff": bool(targets),
        "context_form": ContextForm(),
        "graph": handoff_graph(actor=request.actor, agent=agent),
        "runs": selectors.run_list(actor=request.actor, agent_id=agent.pk)[:RUNS_ON_DETAIL],
        "try_targets": try_targets(agent),
        **extra,
    }


def try_targets(agent: Agent) -> list[tuple[str, str]]:
    """Return what the builder's "Try it" panel can run: ``(value, label)`` per function tool and guardrail."""
    targets = [(f"tool:{t['name']}", f"Tool {t['name']}") for t in agent.tools or [] if t.get("type") == "function"]
    for kind in ("input", "output"):
        for guardrail in getattr(agent, f"{kind}_guardrails") or []:
            label = f"{kind.capitalize()} guardrail {guardrail['name']} ({guardrail.get('implementation')})"
            targets.append((f"{kind}:{guardrail['name']}", label))
    return targets


def _try(request: WorkspaceRequest, agent: Agent, target: str, sample: str) -> dict[str, Any]:
    """Run the panel's choice on its sample; return what the result fragment shows. Raises ApplicationError."""
    kind, _, name = target.partition(":")
    if kind == "tool":
        try:
            arguments = json.loads(sample) if sample.strip() else {}
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                "The sample is not JSON.", fields={"sample": f"Give the arguments as a JSON object ({exc.msg})."}
            ) from None
        if not isinstance(arguments, dict):
            raise InvalidInputError("Give the arguments as a JSON object.", fields={"sample": "A JSON object."})
        outcome = tools.try_tool(actor=request.actor, agent_id=agent.pk, name=name, arguments=arguments)
        headline = "Result" if outcome.ok else f"Error ({outcome.kind})"
        return {"ok": outcome.ok, "headline": headline, **outcome.as_json()}
    if kind not in ("input", "output"):
        raise InvalidInputError("Choose a tool or a guardrail to try.", fields={"target": "Choose one."})
    checks: guardrails.Kind = "input" if kind == "input" else "output"
    value: Any = sample
    if checks == "output" and sample.strip()[:1] in ("{", "["):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(sample)  # a structured answer, as an agent with an output schema gives it
    result = async_to_sync(guardrails.try_guardrail)(
        actor=request.actor, agent_id=agent.pk, kind=checks, name=name, sample=value
    )
    verdict = result.verdict
    headline = f"Tripped: {verdict.message}" if verdict.tripwire_triggered else "Passed"
    return {
        "ok": not verdict.tripwire_triggered,
        "headline": headline,
        "value": verdict.output_info,
        "error": verdict.error,
        "duration_ms": verdict.duration_ms,
        "run_id": result.run_id,
    }


@login_required
@require_POST
def agent_try(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    """The builder's "Try it" panel: run one function tool or guardrail of the saved agent on a sample."""
    agent = selectors.agent_get(actor=request.actor, agent_id=agent_id)
    request.actor.require_write()
    status = 200
    try:
        result = _try(request, agent, request.POST.get("target", ""), request.POST.get("sample", "")[:100_000])
    except ApplicationError as exc:
        detail = "; ".join(exc.fields.values()) if isinstance(exc, InvalidInputError) and exc.fields else ""
        result = {"ok": False, "headline": exc.message, "error": detail}
        status = exc.status_code
    if request.htmx:
        return render(request, "agents_app/_try_result.html", {"result": result}, status=status)
    context = _detail_context(
        request, agent, form=_form(request, initial=AgentForm.initial_for(agent)), model_lists=_model_lists(request)
    )
    return render(request, "agents_app/form.html", {**context, "try_result": result}, status=status)


@login_required
@require_GET
def agent_detail(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    agent = selectors.agent_get(actor=request.actor, agent_id=agent_id)
    return render(request, "agents_app/detail.html", _detail_context(request, agent))


@login_required
@require_POST
def handoff_add(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    agent = selectors.agent_get(actor=request.actor, agent_id=agent_id)
    request.actor.require_write()
    targets = list(selectors.agent_list(actor=request.actor).exclude(pk=agent.pk))
    form = HandoffForm(request.POST, targets=targets)
    if form.is_valid():
        try:
            services.handoff_add(
                actor=request.actor,
                agent_id=agent.pk,
                target_id=form.cleaned_data["target_id"],
                tool_name=form.cleaned_data["tool_name"],
            )
        except (InvalidInputError, ConflictError) as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Handoff added.")
    else:
        messages.error(request, "Choose an agent of this workspace.")
    return _back(request, agent.pk)


@login_required
@require_POST
def handoff_remove(request: WorkspaceRequest, agent_id: int, target_id: int) -> HttpResponse:
    services.handoff_remove(actor=request.actor, agent_id=agent_id, target_id=target_id)
    messages.success(request, "Handoff removed.")
    return _back(request, agent_id)


@login_required
@require_POST
def context_add(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    agent = selectors.agent_get(actor=request.actor, agent_id=agent_id)
    request.actor.require_write()
    form = ContextForm(request.POST)
    if form.is_valid():
        try:
            services.context_create(
                actor=request.actor,
                agent_id=agent.pk,
                name=form.cleaned_data["name"],
                content=form.cleaned_data["content"],
                is_default=True if form.cleaned_data["is_default"] else None,
            )
        except InvalidInputError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, "Context added.")
            return _back(request, agent.pk)
    if request.POST.get("next") == reverse("agents:edit", args=[agent.pk]):
        # Came from the builder: show the error there, with the agent form as it is stored.
        context = _detail_context(
            request,
            agent,
            context_form=form,
            form=_form(request, initial=AgentForm.initial_for(agent)),
            model_lists=_model_lists(request),
        )
        return render(request, "agents_app/form.html", context, status=422)
    return render(request, "agents_app/detail.html", _detail_context(request, agent, context_form=form), status=422)


@login_required
@require_POST
def context_delete(request: WorkspaceRequest, agent_id: int, context_id: int) -> HttpResponse:
    services.context_delete(actor=request.actor, agent_id=agent_id, context_id=context_id)
    messages.success(request, "Context deleted.")
    return _back(request, agent_id)


@login_required
@require_GET
def agent_chat(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    """The chat page: a conversation's history, and a box whose answers stream in (static/js/chat.js)."""
    agent = selectors.agent_get(actor=request.actor, agent_id=agent_id)
    conversation = None
    turns: list[object] = []
    if request.GET.get("conversation"):
        try:
            conversation = selectors.conversation_get(
                actor=request.actor, conversation_id=int(request.GET["conversation"])
            )
        except ValueError:
            conversation = None
        if conversation is not None and conversation.agent_id == agent.pk:
            turns = list(conversation.runs.order_by("created_at", "id"))
        else:
            conversation = None
    conversations = Conversation.objects.filter(agent=agent, workspace=request.actor.workspace)[:30]
    context: dict[str, Any] = {
        "agent": agent,
        "conversation": conversation,
        "turns": turns,
        "conversations": conversations,
    }
    if request.htmx and request.GET.get("part") == "conversations":  # the list, refreshed after each answer
        return render(request, "agents_app/chat.html#conversation-list", context)
    runs_on = provider_for_run(workspace=request.actor.workspace, provider_id=agent.provider_id)
    context |= {
        "contexts": list(agent.contexts.all()),
        "runs_on": runs_on,
        "runs_on_model": agent.model or runs_on.default_model,
    }
    return render(request, "agents_app/chat.html", context)


@login_required
@require_GET
def run_meta(request: WorkspaceRequest, run_id: int) -> HttpResponse:
    """One line under an answer: its status, run and trace links (it refreshes itself while the run is open)."""
    run = selectors.run_get(actor=request.actor, run_id=run_id)
    return render(request, "agents_app/_run_meta.html", {"run": run})


@login_required
@require_GET
def run_detail(request: WorkspaceRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(actor=request.actor, run_id=run_id)
    return render(request, "agents_app/run.html", {"run": run})
