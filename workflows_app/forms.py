"""The workflow designer's form: steps typed as fields named like the API's error paths (``steps[0].agent_id``,
``steps[1].conditions[0].target_step_id``), so that every error the service names lands on its field.

The designer's buttons (add or remove a step or condition, move a step) change the typed steps without saving;
only "Save" hands them to the service, which checks them as the API does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

STEP_FIELD = re.compile(r"^steps\[(\d{1,3})\]\.(\w+)$")
CONDITION_FIELD = re.compile(r"^steps\[(\d{1,3})\]\.conditions\[(\d{1,3})\]\.(\w+)$")
STEP_TEXT = ("id", "name", "kind", "input_source", "input_source_id", "input_template", "next_step_id")
CONDITION_TEXT = ("type", "value", "field", "operator", "target_step_id")
CONDITION_FLAGS = ("negate", "ignore_case")
# The designer's choices of condition, with what each tests.
CONDITION_TYPES = (
    ("contains", "output contains"),
    ("matches", "output matches (RE2)"),
    ("json_field", "a field of the output"),
    ("guardrail_tripped", "a guardrail tripped"),
    ("last_agent", "ended on the agent"),
)
ACTION = re.compile(r"^(add_step|remove_step|move_up|move_down|add_condition|remove_condition)(?::(\d+))?(?::(\d+))?$")


def _number(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _condition_value(text: str) -> Any:
    """A JSON field condition compares with a JSON value (``0.8``, ``true``, ``"gold"``); typed words are text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _condition(typed: dict[str, Any]) -> dict[str, Any]:
    """Return a typed condition with only the fields its type takes."""
    kind = str(typed.get("type") or "")
    condition: dict[str, Any] = {"type": kind, "target_step_id": typed.get("target_step_id") or ""}
    if kind in ("contains", "matches", "last_agent"):
        condition["value"] = typed.get("value") or ""
    if kind in ("contains", "matches"):
        condition["ignore_case"] = bool(typed.get("ignore_case"))
    if kind == "json_field":
        condition["field"] = typed.get("field") or ""
        condition["operator"] = typed.get("operator") or "eq"
        if condition["operator"] != "exists":
            condition["value"] = _condition_value(str(typed.get("value") or ""))
    if typed.get("negate"):
        condition["negate"] = True
    if typed.get("max_iterations") not in (None, ""):
        condition["max_iterations"] = typed["max_iterations"]
    return condition


def steps_from_form(data: QueryDict) -> list[dict[str, Any]]:
    """Return the steps typed in the designer, in order, with what was left empty left out (the service then says
    what is missing). ``branches`` are typed as step ids separated by commas or spaces."""
    steps: dict[int, dict[str, Any]] = {}
    conditions: dict[int, dict[int, dict[str, Any]]] = {}
    for key in data:
        value = data.get(key, "").strip()
        if match := CONDITION_FIELD.match(key):
            i, j, name = int(match[1]), int(match[2]), match[3]
            condition = conditions.setdefault(i, {}).setdefault(j, {})
            steps.setdefault(i, {})
            if name in CONDITION_FLAGS:
                condition[name] = value in ("on", "true", "1")
            elif name == "max_iterations":
                condition[name] = _number(value) if value else None
            elif name in CONDITION_TEXT:
                condition[name] = value
        elif match := STEP_FIELD.match(key):
            i, name = int(match[1]), match[2]
            step = steps.setdefault(i, {})
            if name in STEP_TEXT:
                step[name] = value
            elif name == "agent_id":
                step[name] = _number(value) if value else None
            elif name == "branches":
                step[name] = [b for b in re.split(r"[\s,]+", value) if b]
    result = []
    for i in sorted(steps):
        step = {k: v for k, v in steps[i].items() if v not in ("", None, [])}
        kind = step.get("kind") or "agent"
        step["kind"] = kind
        if kind == "agent":
            step.pop("branches", None)
        else:
            for name in ("agent_id", "input_source", "input_source_id", "input_template"):
                step.pop(name, None)
        if step.get("input_source") != "previous_step":
            step.pop("input_source_id", None)
        typed = [_condition(conditions[i][j]) for j in sorted(conditions.get(i, {}))]
        if typed:
            step["conditions"] = typed
        result.append(step)
    return result


def apply_action(steps: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    """Return ``steps`` changed by a designer button: ``add_step``, ``remove_step:i``, ``move_up:i``,
    ``move_down:i``, ``add_condition:i`` or ``remove_condition:i:j``. Unknown actions change nothing."""
    match = ACTION.match(action)
    if match is None:
        return steps
    name = match[1]
    i = int(match[2]) if match[2] is not None else -1
    j = int(match[3]) if match[3] is not None else -1
    steps = [dict(step) for step in steps]
    if name == "add_step":
        taken = {step.get("id") for step in steps}
        n = len(steps) + 1
        while f"step{n}" in taken:
            n += 1
        steps.append({"id": f"step{n}", "kind": "agent"})
    elif not 0 <= i < len(steps):
        return steps
    elif name == "remove_step":
        del steps[i]
    elif name == "move_up" and i > 0:
        steps[i - 1], steps[i] = steps[i], steps[i - 1]
    elif name == "move_down" and i < len(steps) - 1:
        steps[i + 1], steps[i] = steps[i], steps[i + 1]
    elif name == "add_condition":
        steps[i]["conditions"] = [*steps[i].get("conditions", []), {"type": "contains", "target_step_id": "end"}]
    elif name == "remove_condition" and 0 <= j < len(steps[i].get("conditions", [])):
        steps[i]["conditions"] = [c for k, c in enumerate(steps[i]["conditions"]) if k != j]
    return steps


STEP_INPUTS = {*STEP_TEXT, "agent_id", "branches"}
CONDITION_INPUTS = {*CONDITION_TEXT, *CONDITION_FLAGS, "max_iterations"}
ERROR_KEY = re.compile(r"^steps\[(\d+)\](?:\.conditions\[(\d+)\])?(?:\.(\w+))?")


@dataclass
class ConditionRow:
    index: int
    condition: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)  # by input name
    problems: list[str] = field(default_factory=list)  # about the whole condition

    @property
    def value_text(self) -> str:
        """The value as typed back in its input: JSON for a JSON field's value (a text that would read as another
        JSON value is quoted, so that it stays text)."""
        value = self.condition.get("value")
        if value is None:
            return ""
        if self.condition.get("type") != "json_field":
            return str(value)
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError:
                return value
        return json.dumps(value, ensure_ascii=False)


@dataclass
class StepRow:
    index: int
    step: dict[str, Any]
    conditions: list[ConditionRow]
    errors: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    group: str = ""  # the parallel group that runs this step as a branch (its input by default), if any


def designer_rows(steps: list[dict[str, Any]], errors: dict[str, str]) -> tuple[list[StepRow], dict[str, str]]:
    """Return the designer's rows (each step with its errors by input and its step-wide ones, and its conditions
    with theirs) and the errors no step holds (``name``, ``steps``, ...), from the service's field errors."""
    groups = {
        str(branch): str(step.get("id") or "")
        for step in steps
        if step.get("kind") == "parallel" and isinstance(step.get("branches"), list)
        for branch in step["branches"]
    }
    rows = [
        StepRow(
            i,
            step,
            [ConditionRow(j, c) for j, c in enumerate(step.get("conditions") or []) if isinstance(c, dict)],
            group=groups.get(str(step.get("id") or ""), ""),
        )
        for i, step in enumerate(steps)
    ]
    rest: dict[str, str] = {}
    for key, message in errors.items():
        match = ERROR_KEY.match(key)
        if match is None or int(match[1]) >= len(rows):
            rest[key] = message
            continue
        row = rows[int(match[1])]
        name = match[3]
        if match[2] is not None and int(match[2]) < len(row.conditions):
            condition = row.conditions[int(match[2])]
            if name in CONDITION_INPUTS:
                condition.errors[name] = message
            else:
                condition.problems.append(message)
        elif name in STEP_INPUTS and match[2] is None:
            row.errors[name] = message
        else:
            row.problems.append(message)
    return rows, rest
