"""From rows to an SDK run: the agent graph, structured output and run context.

The graph is built per run from rows loaded once (``load_graph``), so a run never touches the ORM
while the SDK is running, and cyclic handoffs (A -> B -> A) resolve through a memo: each row becomes
exactly one SDK ``Agent``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agents import Agent as SDKAgent
from agents import (
    AgentOutputSchemaBase,
    InputGuardrail,
    ModelBehaviorError,
    ModelResponse,
    OutputGuardrail,
    RunContextWrapper,
    RunHooks,
    Runner,
    Tool,
    handoff,
)
from jsonschema import Draft202012Validator

from agents_app import guardrails
from agents_app.file_search import file_search_tool
from agents_app.models import Agent, AgentHandoff
from agents_app.tool_specs import referenced_agent_ids
from agents_app.tools import function_tool, item_headers
from providers_app.models import Provider, model_prices
from providers_app.runtime import ResolvedModel

_MILLION = Decimal(1_000_000)


class JsonSchemaOutput(AgentOutputSchemaBase):
    """Structured output from a stored JSON Schema, validated on every final answer.

    Not strict: user schemas rarely meet OpenAI's strict-mode rules, and validation happens here.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self._schema = schema
        self._validator = Draft202012Validator(schema)

    def is_plain_text(self) -> bool:
        return False

    def name(self) -> str:
        return "final_output"

    def json_schema(self) -> dict[str, Any]:
        return self._schema

    def is_strict_json_schema(self) -> bool:
        return False

    def validate_json(self, json_str: str) -> Any:
        """Return the parsed output; raise ModelBehaviorError saying what does not match the schema."""
        try:
            data = json.loads(json_str)
        except json.JSONDecodeError as exc:
            raise ModelBehaviorError(f"The model's output is not valid JSON ({exc.msg}).") from None
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(root)"
            raise ModelBehaviorError(f"The model's output does not match the output schema at {where}: {first.message}")
        return data


def to_json(value: Any) -> Any:
    """Return a JSON-compatible copy (SDK items may hold pydantic models or enums)."""
    return json.loads(json.dumps(value, default=lambda o: o.model_dump() if hasattr(o, "model_dump") else str(o)))


@dataclass(eq=False)  # compared and hashed by identity: it keys the cache of built SDK graphs
class Graph:
    """Rows of the agents reachable from the root by handoffs, loaded before the run starts."""

    root_id: int
    agents: dict[int, Agent]
    handoffs: dict[int, list[AgentHandoff]] = field(default_factory=dict)

    def providers(self) -> list[Provider]:
        return [a.provider for a in self.agents.values() if a.provider is not None]


def agent_references(row: Agent) -> set[int]:
    """Return the ids of the agents this row uses as tools or as guardrail judges."""
    return set(referenced_agent_ids(row.tools, row.input_guardrails, row.output_guardrails).values())


def load_graph(*, root: Agent) -> Graph:
    """Load every agent reachable from ``root`` through handoffs, agent tools or guardrail judges (cycles
    included), each with its provider: a run reads them on the event loop, where a lazy load would fail.

    One or two queries per depth, however many agents there are at that depth, and one for providers that
    rows given by the caller (``root``, its prefetched handoffs' targets) did not carry.
    """
    agents: dict[int, Agent] = {root.pk: root}
    handoffs: dict[int, list[AgentHandoff]] = {}
    frontier = [root.pk]
    prefetched = getattr(root, "_prefetched_objects_cache", {}).get("handoffs")
    while frontier:
        if prefetched is not None:
            # agent_get already loaded the root's handoffs with their targets: the first level is free.
            edges, prefetched = sorted(prefetched, key=lambda e: e.pk), None
        else:
            edges = list(
                AgentHandoff.objects.filter(source_id__in=frontier, target__workspace_id=root.workspace_id)
                .select_related("target__provider")
                .order_by("id")
            )
        tool_ids = {i for agent_id in frontier for i in agent_references(agents[agent_id])} - set(agents)
        frontier = []
        for edge in edges:
            handoffs.setdefault(edge.source_id, []).append(edge)
            if edge.target_id not in agents:
                agents[edge.target_id] = edge.target
                frontier.append(edge.target_id)
        if tool_ids - set(agents):
            for row in Agent.objects.filter(
                pk__in=tool_ids - set(agents), workspace_id=root.workspace_id
            ).select_related("provider"):
                agents[row.pk] = row
                frontier.append(row.pk)
    _load_providers(agents.values())
    return Graph(root_id=root.pk, agents=agents, handoffs=handoffs)


def _load_providers(rows: Iterable[Agent]) -> None:
    field = Agent._meta.get_field("provider")
    missing = [row for row in rows if row.provider_id is not None and not field.is_cached(row)]
    if missing:
        providers = Provider.objects.in_bulk({row.provider_id for row in missing})
        for row in missing:
            row.provider = providers[row.provider_id]


@dataclass
class ModelUsage:
    """The model requests one agent of a run made, and their cost at that agent's provider's prices."""

    agent_id: int
    agent: str
    provider_id: int | None
    provider_type: str
    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = Decimal(0)

    def as_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in vars(self).items() if k != "cost"}, "cost": str(self.cost)}


@dataclass
class RunContext:
    """The object tools, guardrails and instructions receive as ``ctx.context``.

    ``usage`` is filled by the agents' UsageMeter as the run goes, one entry per agent (and model);
    ``verdicts`` by the guardrails (agents_app/guardrails.py); ``citations`` by file search tools
    (agents_app/file_search.py).
    """

    workspace_id: int
    run_id: int
    context: dict[str, Any]
    metadata: dict[str, Any]
    usage: dict[tuple[int, str], ModelUsage] = field(default_factory=dict)
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # every guardrail check, in order (Verdict)
    citations: list[dict[str, Any]] = field(default_factory=list)  # what file searches found, numbered (file_search)


class UsageMeter(RunHooks[RunContext]):
    """Counts every model request of a built graph's agents into its run's context, priced at the provider and
    model that agent runs on. Passed as the run's hooks (and to agents used as tools, whose nested runs have
    hooks of their own); shared by the runs of a built graph, it keeps no state per run.

    Run hooks, not agent hooks: the SDK calls the run's hooks anyway, while an agent with hooks costs every
    lifecycle event a gather of two coroutines (about 2 ms per run at concurrency 1, bench/run_overhead.py).
    """

    def __init__(self) -> None:
        self._agents: dict[int, tuple[Agent, ResolvedModel, tuple[Decimal, Decimal]]] = {}

    def add(self, sdk_agent: SDKAgent[RunContext], row: Agent, resolved: ResolvedModel) -> None:
        self._agents[id(sdk_agent)] = (row, resolved, model_prices(resolved.provider, resolved.model_name))

    async def on_llm_end(
        self, context: RunContextWrapper[RunContext], agent: SDKAgent[RunContext], response: ModelResponse
    ) -> None:
        run, known = context.context, self._agents.get(id(agent))
        if not isinstance(run, RunContext) or known is None:
            return  # counted in the run's totals, and priced at the starting agent's prices (runs.run_usage)
        row, resolved, (price_in, price_out) = known
        key = (row.pk, resolved.model_name)
        entry = run.usage.get(key)
        if entry is None:
            entry = run.usage[key] = ModelUsage(
                agent_id=row.pk,
                agent=row.name,
                provider_id=resolved.provider.pk,
                provider_type=resolved.provider.type,
                model=resolved.model_name,
            )
        usage = response.usage
        entry.requests += usage.requests
        entry.input_tokens += usage.input_tokens
        entry.output_tokens += usage.output_tokens
        entry.total_tokens += usage.total_tokens
        entry.cost += (Decimal(usage.input_tokens) * price_in + Decimal(usage.output_tokens) * price_out) / _MILLION


# The meter of each built graph, by the id of its root SDK agent (SDK agents are not hashable), for as long as
# that agent lives (the run cache keeps it while it is used).
_meters: dict[int, UsageMeter] = {}


def usage_meter(root: SDKAgent[RunContext]) -> UsageMeter:
    """Return the hooks to run ``root`` (a ``build_sdk_graph`` result) with, so its usage is metered; for any
    other agent, hooks that meter nothing (its tokens are then priced at the starting agent's prices)."""
    return _meters.get(id(root)) or UsageMeter()


def _instructions(row: Agent) -> Callable[[RunContextWrapper[RunContext], SDKAgent[RunContext]], str]:
    base = row.instructions or ""

    def instructions(ctx: RunContextWrapper[RunContext], agent: SDKAgent[RunContext]) -> str:
        data = ctx.context.context if ctx.context else {}
        if not data:
            return base
        # The context is given to the model as data, after the builder's instructions.
        return f"{base}\n\n# Context\n{json.dumps(data, ensure_ascii=False, indent=2)}"

    return instructions


def _tools(
    row: Agent, graph: Graph, built: dict[int, SDKAgent[RunContext]], meter: UsageMeter, provider: Provider
) -> list[Tool]:
    tools: list[Tool] = []
    for tool in row.tools or []:
        if tool.get("type") == "function":
            tools.append(function_tool(tool, item_headers(row, "tools", tool["name"])))
        elif tool.get("type") == "file_search":
            tools.append(file_search_tool(tool, provider))
        elif tool.get("type") == "agent" and (target := tool["params"]["agent_id"]) in built:
            # An agent used as a tool: the caller keeps the conversation and gets the other agent's answer back.
            tools.append(
                built[target].as_tool(
                    tool_name=tool["name"],
                    tool_description=tool.get("description")
                    or graph.agents[target].handoff_description
                    or f"Ask the {graph.agents[target].name} agent.",
                    hooks=meter,
                )
            )
    return tools


def _judge(target: SDKAgent[RunContext], row: Agent, meter: UsageMeter) -> guardrails.Judge:
    """Return the function that asks agent ``target`` (built from ``row``) to judge a text, in the run being
    guarded: its model requests count in that run's usage and cost, and its spans go into its trace."""

    async def judge(text: str, run_context: Any) -> Any:
        result = await Runner.run(target, text, context=run_context, hooks=meter, max_turns=row.max_turns)
        return result.final_output

    return judge


def _guardrails(
    row: Agent, graph: Graph, built: dict[int, SDKAgent[RunContext]], meter: UsageMeter
) -> tuple[list[InputGuardrail[RunContext]], list[OutputGuardrail[RunContext]]]:
    made: dict[str, list[Any]] = {"input": [], "output": []}
    for kind, make in (("input", guardrails.input_guardrail), ("output", guardrails.output_guardrail)):
        field_name = f"{kind}_guardrails"
        for spec in getattr(row, field_name) or []:
            judge = None
            if spec.get("implementation") == "agent" and (target := spec["config"]["agent_id"]) in built:
                judge = _judge(built[target], graph.agents[target], meter)
            made[kind].append(make(spec, headers=item_headers(row, field_name, spec["name"]), judge=judge))
    return made["input"], made["output"]


def build_sdk_graph(graph: Graph, resolve: Callable[[Agent], ResolvedModel]) -> SDKAgent[RunContext]:
    """Return the SDK agent for the root, with every handoff wired (cycles through a memo).

    ``resolve`` gives each row its model; it runs in the event loop that will run the agents.
    """
    built: dict[int, SDKAgent[RunContext]] = {}
    providers: dict[int, Provider] = {}
    meter = UsageMeter()
    for agent_id, row in graph.agents.items():
        resolved = resolve(row)
        providers[agent_id] = resolved.provider
        built[agent_id] = SDKAgent[RunContext](
            name=row.name,
            instructions=_instructions(row),
            handoff_description=row.handoff_description or None,
            model=resolved.model,
            model_settings=resolved.model_settings,
            output_type=JsonSchemaOutput(row.output_type) if row.output_type else None,
        )
        meter.add(built[agent_id], row, resolved)
    for agent_id, row in graph.agents.items():
        built[agent_id].tools = _tools(row, graph, built, meter, providers[agent_id])
        built[agent_id].input_guardrails, built[agent_id].output_guardrails = _guardrails(row, graph, built, meter)
    for agent_id, edges in graph.handoffs.items():
        built[agent_id].handoffs = [
            handoff(
                built[edge.target_id],
                tool_name_override=edge.tool_name or None,
                tool_description_override=edge.tool_description or None,
            )
            for edge in edges
        ]
    root = built[graph.root_id]
    _meters[id(root)] = meter
    weakref.finalize(root, _meters.pop, id(root), None)
    return root
