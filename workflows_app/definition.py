"""A workflow's steps: their shapes (the spec's ``WorkflowCreate`` steps and what we add), the checks made when a
workflow is saved, and the rules that pick the next step while it runs.

A workflow is a list of steps. The first step starts; after a step, its ``conditions`` are tried in order and the
first that holds jumps to its ``target_step_id``; when none holds the run goes on to ``next_step_id`` (``"end"``
ends it), or by default to the following step of the list, and ends after the last one.

- ``kind: "agent"`` runs one agent on the step's input: by default the user's message for the first step and the
  previous step's output for the others (``input_source`` ``"user"`` or ``"previous_step"`` with an optional
  ``input_source_id``), or an ``input_template`` combining ``{{input}}``, ``{{steps.<id>.output}}`` (a structured
  output's field: ``{{steps.<id>.output.<field>}}``) and ``{{context.<key>}}``.
- ``kind: "parallel"`` runs its ``branches`` (agent steps of the workflow that run nowhere else) at the same time on
  the group's input, and its output gathers every branch's output by step id.
- A condition that jumps back makes a loop; it must say how many times it may be taken (``max_iterations``), after
  which it no longer holds, and the loop needs a way out. A run also stops after WORKFLOW_MAX_STEP_RUNS steps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from agents_app.tool_specs import compile_pattern
from config.input import InputSchema

STEP_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
END = "end"
MAX_STEPS = 50
MAX_CONDITIONS = 20
MAX_ITERATIONS = 100
TEMPLATE_FIELD = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists")


class ConditionBase(InputSchema):
    target_step_id: str = Field(description='The step to go to when the condition holds ("end": finish)')
    negate: bool = Field(False, description="Hold when the test does not")
    max_iterations: int | None = Field(
        None, ge=1, le=MAX_ITERATIONS, description="How many times this jump may be taken in one run (loops)"
    )


class ContainsCondition(ConditionBase):
    """The step's output (as text) contains ``value``."""

    type: Literal["contains"]
    value: str = Field(min_length=1, max_length=1000)
    ignore_case: bool = True


class MatchesCondition(ConditionBase):
    """The step's output (as text) matches the RE2 pattern ``value``."""

    type: Literal["matches"]
    value: str = Field(min_length=1, max_length=1000)
    ignore_case: bool = False

    @model_validator(mode="after")
    def _pattern(self) -> MatchesCondition:
        compile_pattern(self.value, self.ignore_case)  # ValueError says why RE2 refuses it
        return self


class JsonFieldCondition(ConditionBase):
    """A field of the step's structured output (``field``: a dotted path) compares to ``value``."""

    type: Literal["json_field"]
    field: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    operator: Literal["eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists"] = "eq"
    value: Any = None


class GuardrailCondition(ConditionBase):
    """A guardrail of the step's run tripped (the run was blocked, or its output replaced)."""

    type: Literal["guardrail_tripped"]


class LastAgentCondition(ConditionBase):
    """The step's run ended on the agent named ``value`` (after handoffs)."""

    type: Literal["last_agent"]
    value: str = Field(min_length=1, max_length=100)


Condition = Annotated[
    ContainsCondition | MatchesCondition | JsonFieldCondition | GuardrailCondition | LastAgentCondition,
    Field(discriminator="type"),
]


class StepSpec(InputSchema):
    """One step: the spec's ``{id, agent_id, input_source, input_source_id, conditions}`` and what we add."""

    id: str = Field(pattern=STEP_ID, description="Unique in the workflow; letters, digits, _ and -")
    name: str = Field("", max_length=100)
    kind: Literal["agent", "parallel"] = "agent"
    agent_id: int | None = Field(None, description="The agent an agent step runs")
    input_source: Literal["user", "previous_step"] | None = Field(
        None, description="Default: the user's message for the first step, the previous step's output after it"
    )
    input_source_id: str | None = Field(None, description="previous_step: which step's output (default: the last)")
    input_template: str | None = Field(
        None, max_length=20_000, description="{{input}}, {{steps.<id>.output}}, {{context.<key>}}: overrides the source"
    )
    conditions: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    next_step_id: str | None = Field(None, description='Where to go when no condition holds ("end"; default: the next)')
    branches: list[str] = Field(default_factory=list, max_length=MAX_STEPS, description="parallel: its agent steps")


_STEPS = TypeAdapter(list[StepSpec])


class DefinitionError(ValueError):
    """The steps do not make a workflow; ``fields`` maps ``steps[i].field`` to what is wrong."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class Graph:
    """Checked steps, with what the engine needs to walk them."""

    steps: tuple[StepSpec, ...]
    by_id: Mapping[str, StepSpec]
    branch_of: Mapping[str, str]  # branch step id -> its parallel group's id

    @property
    def first(self) -> StepSpec:
        return self.steps[0]

    def agent_ids(self) -> set[int]:
        return {s.agent_id for s in self.steps if s.agent_id is not None}

    def default_next(self, step: StepSpec) -> str:
        """Return the step after ``step`` when no condition holds: its ``next_step_id``, else the following step of
        the main flow (branch steps run only in their group), else END."""
        if step.next_step_id is not None:
            return step.next_step_id
        index = self.steps.index(step)
        for later in self.steps[index + 1 :]:
            if later.id not in self.branch_of:
                return later.id
        return END

    def edges(self, step: StepSpec) -> list[str]:
        """Return every step ``step`` may lead to (END included): its conditions' targets and its default next."""
        return [c.target_step_id for c in step.conditions] + [self.default_next(step)]


def parse_steps(raw: Any, *, allowed_agent_ids: Iterable[int] | None = None) -> Graph:
    """Return the checked graph of ``raw`` (a list of step objects).

    ``allowed_agent_ids``: the agents a step may name (the workspace's); None skips that check. Raises
    DefinitionError naming each bad step and field: shapes, unknown or repeated ids, unknown agents, references to
    steps that do not exist, parallel groups, unreachable steps, and loops without a maximum or a way out.
    """
    try:
        steps = _STEPS.validate_python(raw)
    except ValidationError as exc:
        raise DefinitionError(_shape_errors(exc, raw)) from None
    fields: dict[str, str] = {}
    if not steps:
        raise DefinitionError({"steps": "Give at least one step."})
    if len(steps) > MAX_STEPS:
        raise DefinitionError({"steps": f"At most {MAX_STEPS} steps."})
    by_id: dict[str, StepSpec] = {}
    for i, step in enumerate(steps):
        if step.id == END:
            fields[f"steps[{i}].id"] = f'"{END}" is reserved: it ends the workflow.'
        elif step.id in by_id:
            fields[f"steps[{i}].id"] = f"Step {step.id!r} appears twice; step ids must be unique."
        else:
            by_id[step.id] = step
    if fields:
        raise DefinitionError(fields)
    allowed = set(allowed_agent_ids) if allowed_agent_ids is not None else None
    branch_of: dict[str, str] = {}
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        _check_step(step, where, by_id, allowed, branch_of, fields)
    for i, step in enumerate(steps):
        if step.id in branch_of:
            owner = branch_of[step.id]
            if step.conditions or step.next_step_id is not None:
                fields[f"steps[{i}].conditions"] = (
                    f"Step {step.id!r} is a branch of {owner!r}: it runs inside that group, so it cannot have "
                    "conditions or a next step of its own (give them to the group)."
                )
            if i == 0:
                fields[f"steps[{i}].id"] = f"The first step cannot be a branch of {owner!r}."
    if fields:
        raise DefinitionError(fields)
    graph = Graph(tuple(steps), by_id, branch_of)
    for i, step in enumerate(steps):
        for j, condition in enumerate(step.conditions):
            if condition.target_step_id in branch_of:
                fields[f"steps[{i}].conditions[{j}].target_step_id"] = (
                    f"Step {condition.target_step_id!r} is a branch of {branch_of[condition.target_step_id]!r}: "
                    "go to the group instead."
                )
        if step.next_step_id in branch_of:
            fields[f"steps[{i}].next_step_id"] = (
                f"Step {step.next_step_id!r} is a branch of {branch_of[step.next_step_id]!r}: go to the group instead."
            )
    if fields:
        raise DefinitionError(fields)
    _check_reachable(graph, fields)
    _check_loops(graph, fields)
    if fields:
        raise DefinitionError(fields)
    return graph


def _shape_errors(exc: ValidationError, raw: Any) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors():
        loc = [p for p in error["loc"] if p not in _TAGS]
        path = "steps" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        if loc and isinstance(loc[0], int) and isinstance(raw, list) and loc[0] < len(raw):
            step_id = raw[loc[0]].get("id") if isinstance(raw[loc[0]], dict) else None
            if isinstance(step_id, str):
                message = f"Step {step_id!r}: {message}"
        fields.setdefault(path, message)
    return fields


_TAGS = {"contains", "matches", "json_field", "guardrail_tripped", "last_agent"}


def _check_step(
    step: StepSpec,
    where: str,
    by_id: Mapping[str, StepSpec],
    allowed: set[int] | None,
    branch_of: dict[str, str],
    fields: dict[str, str],
) -> None:
    named = f"Step {step.id!r}"
    if step.kind == "agent":
        if step.agent_id is None:
            fields[f"{where}.agent_id"] = f"{named} runs an agent: give agent_id."
        elif allowed is not None and step.agent_id not in allowed:
            fields[f"{where}.agent_id"] = f"{named}: agent {step.agent_id} is not an agent of this workspace."
        if step.branches:
            fields[f"{where}.branches"] = f"{named} is an agent step; only parallel steps have branches."
    else:
        if step.agent_id is not None:
            fields[f"{where}.agent_id"] = f"{named} is a parallel group: its branches name the agents."
        if len(step.branches) < 2:
            fields[f"{where}.branches"] = f"{named}: a parallel group needs at least two branches."
        for branch in step.branches:
            target = by_id.get(branch)
            if target is None:
                fields[f"{where}.branches"] = f"{named}: branch {branch!r} is not a step of this workflow."
            elif target.kind != "agent":
                fields[f"{where}.branches"] = f"{named}: branch {branch!r} must be an agent step."
            elif branch in branch_of:
                fields[f"{where}.branches"] = f"{named}: step {branch!r} is already a branch of {branch_of[branch]!r}."
            else:
                branch_of[branch] = step.id
    if step.input_source == "user" and step.input_source_id is not None:
        fields[f"{where}.input_source_id"] = f"{named} takes the user's message: leave input_source_id out."
    elif step.input_source_id is not None:
        if step.input_source_id not in by_id:
            fields[f"{where}.input_source_id"] = f"{named}: {step.input_source_id!r} is not a step of this workflow."
        elif step.input_source_id == step.id:
            fields[f"{where}.input_source_id"] = f"{named} cannot take its own output as input."
    if step.input_template is not None:
        for name in TEMPLATE_FIELD.findall(step.input_template):
            problem = _template_problem(name, by_id)
            if problem:
                fields[f"{where}.input_template"] = f"{named}: {problem}"
    for j, condition in enumerate(step.conditions):
        if condition.target_step_id != END and condition.target_step_id not in by_id:
            fields[f"{where}.conditions[{j}].target_step_id"] = (
                f"{named}: {condition.target_step_id!r} is not a step of this workflow (or {END!r})."
            )
    if step.next_step_id is not None and step.next_step_id != END and step.next_step_id not in by_id:
        fields[f"{where}.next_step_id"] = f"{named}: {step.next_step_id!r} is not a step of this workflow (or {END!r})."


def _template_problem(name: str, by_id: Mapping[str, StepSpec]) -> str | None:
    parts = name.split(".")
    if parts == ["input"]:
        return None
    if parts[0] == "context" and len(parts) >= 2:
        return None
    if parts[0] == "steps" and len(parts) >= 3 and parts[2] == "output":
        return (
            None if parts[1] in by_id else f"{{{{{name}}}}} names {parts[1]!r}, which is not a step of this workflow."
        )
    return (
        f"{{{{{name}}}}} is not a template field; use {{{{input}}}}, {{{{steps.<id>.output}}}} "
        "or {{context.<key>}}."
    )


def _check_reachable(graph: Graph, fields: dict[str, str]) -> None:
    seen: set[str] = set()
    pending = [graph.first.id]
    while pending:
        current = pending.pop()
        if current == END or current in seen:
            continue
        seen.add(current)
        step = graph.by_id[current]
        pending.extend(graph.edges(step))
        pending.extend(step.branches)
    for i, step in enumerate(graph.steps):
        if step.id not in seen:
            fields[f"steps[{i}].id"] = (
                f"Step {step.id!r} can never run: no step leads to it (point a condition, a next_step_id or a "
                "parallel group at it, or remove it)."
            )


def _check_loops(graph: Graph, fields: dict[str, str]) -> None:
    """Refuse a loop (steps that lead back to each other) unless every jump back inside it has ``max_iterations``
    and some step of it can leave it."""
    main = [s for s in graph.steps if s.id not in graph.branch_of]
    index = {s.id: i for i, s in enumerate(graph.steps)}
    for component in _cycles(main, graph):
        names = ", ".join(repr(s) for s in sorted(component, key=index.__getitem__))
        for step_id in component:
            step = graph.by_id[step_id]
            i = index[step_id]
            for j, condition in enumerate(step.conditions):
                if condition.target_step_id in component and condition.max_iterations is None:
                    fields[f"steps[{i}].conditions[{j}].max_iterations"] = (
                        f"Step {step_id!r} jumps back to {condition.target_step_id!r}, a loop through {names}: "
                        "say how many times it may (max_iterations)."
                    )
        exits = [
            target
            for step_id in component
            for target in (
                [graph.default_next(graph.by_id[step_id])]
                + [c.target_step_id for c in graph.by_id[step_id].conditions if c.target_step_id not in component]
            )
            if target not in component
        ]
        bounded = any(
            c.target_step_id in component and c.max_iterations is not None
            for step_id in component
            for c in graph.by_id[step_id].conditions
        )
        if not exits:
            first = min(component, key=index.__getitem__)
            fields[f"steps[{index[first]}].next_step_id"] = (
                f"The loop through {names} has no way out: give one of its steps a next_step_id or a condition "
                f'that leaves it (or "{END}").'
            )
        elif not bounded:
            first = min(component, key=index.__getitem__)
            fields[f"steps[{index[first]}].next_step_id"] = (
                f"The loop through {names} always goes round (next_step_id): make the jump back a condition with "
                "max_iterations."
            )


def _cycles(steps: list[StepSpec], graph: Graph) -> list[set[str]]:
    """Return the loops among ``steps``: strongly connected components of more than one step, or a step that
    leads to itself (Tarjan's algorithm, iterative)."""
    ids = {s.id for s in steps}
    successors = {s.id: [t for t in graph.edges(s) if t in ids] for s in steps}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in successors:
        if root in order:
            continue
        work = [(root, iter(successors[root]))]
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in order:
                    order[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], order[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == order[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors[node]:
                    found.append(component)
    return found


# --- While a run goes -----------------------------------------------------------------------------------------


@dataclass
class StepResult:
    """What a finished step gives the conditions and later steps."""

    output: Any  # text, or a structured output's object; a parallel group's: {branch id: output}
    last_agent: str = ""
    guardrail_tripped: bool = False


def output_text(output: Any) -> str:
    """Return an output as the text conditions and templates see (JSON for structured outputs)."""
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, sort_keys=True)


def condition_holds(condition: Any, result: StepResult) -> bool:
    """Return whether ``condition`` holds for ``result`` (before ``negate``; iterations are the caller's)."""
    held = _test(condition, result)
    return not held if condition.negate else held


def _test(condition: Any, result: StepResult) -> bool:
    if condition.type == "contains":
        text = output_text(result.output)
        return condition.value.lower() in text.lower() if condition.ignore_case else condition.value in text
    if condition.type == "matches":
        return compile_pattern(condition.value, condition.ignore_case).search(output_text(result.output)) is not None
    if condition.type == "guardrail_tripped":
        return result.guardrail_tripped
    if condition.type == "last_agent":
        return result.last_agent == condition.value
    found, value = _field(result.output, condition.field)
    if condition.operator == "exists":
        return found
    if not found:
        return False
    return _compare(value, condition.operator, condition.value)


def _field(output: Any, path: str) -> tuple[bool, Any]:
    value = output
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _compare(value: Any, operator: str, expected: Any) -> bool:
    if operator == "eq":
        return bool(value == expected)
    if operator == "ne":
        return bool(value != expected)
    if operator == "contains":
        if isinstance(value, str) and isinstance(expected, str):
            return expected in value
        return isinstance(value, list) and expected in value
    numbers = (int, float)
    if isinstance(value, bool) or isinstance(expected, bool):
        return False
    if isinstance(value, numbers) and isinstance(expected, numbers):
        pair: tuple[Any, Any] = (value, expected)
    elif isinstance(value, str) and isinstance(expected, str):
        pair = (value, expected)
    else:
        return False  # an order between different kinds of value does not hold
    left, right = pair
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[operator]


def next_step(graph: Graph, step: StepSpec, result: StepResult, jumps: dict[tuple[str, int], int]) -> str:
    """Return the id of the step to run after ``step`` (or END), counting in ``jumps`` the bounded jumps taken
    ((step id, condition index) -> times). A jump taken ``max_iterations`` times no longer holds."""
    for j, condition in enumerate(step.conditions):
        if not condition_holds(condition, result):
            continue
        if condition.max_iterations is not None:
            taken = jumps.get((step.id, j), 0)
            if taken >= condition.max_iterations:
                continue
            jumps[(step.id, j)] = taken + 1
        return str(condition.target_step_id)
    return graph.default_next(step)


def render_template(
    template: str, *, message: str, results: Mapping[str, StepResult], context: Mapping[str, Any]
) -> str:
    """Return ``template`` with its fields filled in (an output not made yet, or a missing key, becomes "")."""

    def fill(match: re.Match[str]) -> str:
        parts = match.group(1).split(".")
        if parts == ["input"]:
            return message
        if parts[0] == "context":
            found, value = _field(dict(context), ".".join(parts[1:]))
            return output_text(value) if found else ""
        result = results.get(parts[1])
        if result is None:
            return ""
        if len(parts) == 3:
            return output_text(result.output)
        found, value = _field(result.output, ".".join(parts[3:]))
        return output_text(value) if found else ""

    return TEMPLATE_FIELD.sub(fill, template)
