"""Trace pages: the list with filters, the trace viewer (waterfall, span tree, span panel), retention."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts_app.http import WorkspaceRequest
from accounts_app.selectors import TRACE_OPENED
from accounts_app.services import milestone_reach
from agents_app.models import Agent, AgentRun
from config.errors import InvalidInputError
from providers_app.models import model_prices
from traces_app import selectors, services
from traces_app.forms import TraceFilterForm
from traces_app.models import Span, Trace

PAGE_SIZE = 50


@login_required
@require_GET
def trace_list(request: WorkspaceRequest) -> HttpResponse:
    agents = list(Agent.objects.filter(workspace=request.actor.workspace).order_by("name").values_list("id", "name"))
    form = TraceFilterForm(request.GET or None, agents=agents)
    traces: list[Trace] = []
    has_more = False
    offset = 0
    status = 200
    if form.is_bound and not form.is_valid():
        status = 422
    else:
        filters = form.selector_filters() if form.is_bound else {}
        offset = (form.cleaned_data.get("offset") or 0) if form.is_bound else 0
        rows = list(selectors.trace_list(actor=request.actor, **filters)[offset : offset + PAGE_SIZE + 1])
        traces, has_more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    names = dict(agents)
    for trace in traces:
        trace.agent_name = names.get(trace.agent_id or 0, "")  # type: ignore[attr-defined]
    query = request.GET.copy()
    query.pop("offset", None)
    context = {
        "form": form,
        "forwarding_providers": _openai_providers(request),
        "forwarding_provider_id": services.trace_forwarding_provider_id(actor=request.actor),
        "traces": traces,
        "has_more": has_more,
        "offset": offset,
        "next_offset": offset + PAGE_SIZE,
        "previous_offset": max(0, offset - PAGE_SIZE),
        "query": query.urlencode(),
        "filtered": bool(form.is_bound and any(v for k, v in request.GET.items() if k != "offset")),
    }
    template = "traces_app/list.html#trace-table" if request.htmx else "traces_app/list.html"
    return render(request, template, context, status=status)


def _openai_providers(request: WorkspaceRequest) -> list[tuple[int, str]]:
    from providers_app.models import Provider, ProviderType

    providers = Provider.objects.filter(workspace=request.actor.workspace, type=ProviderType.OPENAI).order_by("name")
    return list(providers.values_list("id", "name"))


def _trace_run(request: WorkspaceRequest, trace: Trace) -> AgentRun | None:
    if not trace.run_id:
        return None
    runs = AgentRun.objects.filter(workspace=request.actor.workspace, pk=trace.run_id).select_related("provider")
    return runs.first()


def _waterfall(trace: Trace, spans: list[Span]) -> list[dict[str, Any]]:
    """Return the spans in tree order, each with its depth and its bar's offset and width in percent."""
    times = [s.started_at for s in spans if s.started_at] + [s.ended_at for s in spans if s.ended_at]
    start = min(times) if times else trace.started_at
    end = max(times) if times else start
    total = max((end - start).total_seconds(), 1e-6)
    rows: list[dict[str, Any]] = []

    def visit(nodes: list[dict[str, Any]], depth: int) -> None:
        for node in nodes:
            span = by_id[node["span_id"]]
            began = span.started_at or start
            finished = span.ended_at or began
            left = (began - start).total_seconds() / total * 100
            width = max((finished - began).total_seconds() / total * 100, 0.4)
            rows.append(
                {"span": span, "depth": depth, "left": round(left, 3), "width": round(min(width, 100 - left), 3)}
            )
            visit(node["children"], depth + 1)

    by_id = {s.span_id: s for s in spans}
    visit(selectors.span_tree(spans), 0)
    return rows


@login_required
@require_GET
def trace_detail(request: WorkspaceRequest, trace_id: str) -> HttpResponse:
    trace = selectors.trace_get(actor=request.actor, trace_id=trace_id)
    milestone_reach(actor=request.actor, name=TRACE_OPENED)  # ticks "open its trace" on the dashboard
    spans = selectors.trace_spans(trace=trace)
    run = _trace_run(request, trace)
    handoffs = [s for s in spans if s.kind == "handoff"]
    path: list[str] = []
    for span in handoffs:
        source, target = span.data.get("from_agent") or "?", span.data.get("to_agent") or "?"
        if not path:
            path.append(str(source))
        path.append(str(target))
    rows = _waterfall(trace, spans)
    # The span asked for, else the first that failed: errors are what people open a trace for.
    wanted = request.GET.get("span") or next((r["span"].span_id for r in rows if r["span"].error), "")
    selected: Span | None = next((r["span"] for r in rows if r["span"].span_id == wanted), None)
    context: dict[str, Any] = {"trace": trace, "run": run, "rows": rows, "handoff_path": path, "selected": selected}
    if selected is not None:
        context |= _span_context(selected, run)
    return render(request, "traces_app/detail.html", context)


def _span_context(span: Span, run: AgentRun | None) -> dict[str, Any]:
    cost: Decimal | None = None
    if run is not None and run.provider is not None and (span.input_tokens or span.output_tokens):
        price_in, price_out = model_prices(run.provider, span.name or run.model_name)
        cost = (Decimal(span.input_tokens) * price_in + Decimal(span.output_tokens) * price_out) / Decimal(1_000_000)
    return {"span": span, "cost": cost, "data": span.data or {}}


@login_required
@require_GET
def span_detail(request: WorkspaceRequest, trace_id: str, span_id: str) -> HttpResponse:
    span = selectors.span_get(actor=request.actor, trace_id=trace_id, span_id=span_id)
    if not request.htmx:
        return redirect(f"/traces/{trace_id}/?span={span_id}")
    return render(request, "traces_app/_span.html", _span_context(span, _trace_run(request, span.trace)))


@login_required
@require_POST
def retention_set(request: WorkspaceRequest) -> HttpResponse:
    raw = request.POST.get("retention_days", "")
    try:
        days = int(raw)
        services.trace_retention_set(actor=request.actor, days=days)
    except (ValueError, InvalidInputError):
        messages.error(request, "Choose how many days to keep traces: between 1 and 3650.")
        return redirect("traces:index")
    messages.success(request, f"Traces are now kept {days} days.")
    return redirect("traces:index")


@login_required
@require_POST
def forwarding_set(request: WorkspaceRequest) -> HttpResponse:
    raw = request.POST.get("openai_provider_id", "")
    try:
        provider_id = int(raw) if raw else None
        services.trace_forwarding_set(actor=request.actor, provider_id=provider_id)
    except (ValueError, InvalidInputError):
        messages.error(request, "Traces can be forwarded with one of this workspace's OpenAI providers that has a key.")
        return redirect("traces:index")
    messages.success(request, "Traces now also go to OpenAI's dashboard." if provider_id else "Traces stay here only.")
    return redirect("traces:index")
