"""A workflow's steps laid out for an SVG: the main flow top to bottom, parallel groups as boxes holding their
branches side by side, conditions and jumps as labelled edges on the side (loops going back up), and on a run's
page the path it took.

It reads the steps as stored or as typed in the designer (not yet checked), so a half-made workflow still draws.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NODE_W, NODE_H, BRANCH_GAP, ROW_GAP, LANE, PAD = 190, 46, 14, 40, 18, 12
LABEL_CHARS = 40  # a condition's label is cut to this
LABEL_W = LABEL_CHARS * 7  # room for it at 11px
END_ID = "end"


@dataclass
class Node:
    id: str
    title: str  # the step id, or "End"
    subtitle: str  # the agent, or what the group gathers
    x: int
    y: int
    w: int
    h: int
    kind: str  # agent, parallel, branch, end
    status: str = ""  # on a run's page: succeeded, failed, running, cancelled; "" when it did not run
    runs: int = 0  # how many times it ran

    @property
    def cx(self) -> int:
        return self.x + self.w // 2


@dataclass
class Edge:
    path: str
    label: str
    kind: str  # next, condition, loop
    taken: bool = False
    label_x: int = 0
    label_y: int = 0
    anchor: str = "start"


@dataclass
class Diagram:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    description: str
    groups: list[Node] = field(default_factory=list)


def condition_label(condition: Mapping[str, Any]) -> str:
    """Return a short reading of a condition: ``contains “ready”``, ``score gte 0.8``, ``at most 3 times``..."""
    kind = condition.get("type")
    value = condition.get("value")
    if kind == "contains":
        text = f"contains “{value}”"
    elif kind == "matches":
        text = f"matches /{value}/"
    elif kind == "json_field":
        operator = condition.get("operator") or "eq"
        shown = "" if operator == "exists" else " " + json.dumps(value, ensure_ascii=False)
        text = f"{condition.get('field')} {operator}{shown}"
    elif kind == "guardrail_tripped":
        text = "a guardrail tripped"
    elif kind == "last_agent":
        text = f"ended on {value}"
    else:
        text = str(kind or "?")
    if condition.get("negate"):
        text = f"not ({text})"
    if condition.get("max_iterations"):
        text += f" · at most {condition['max_iterations']} times"
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _steps(raw: Any) -> list[dict[str, Any]]:
    """Return the step objects of ``raw`` that have an id (the rest cannot be drawn), each id once."""
    seen: set[str] = set()
    steps = []
    for step in raw if isinstance(raw, list) else []:
        if isinstance(step, dict) and isinstance(step.get("id"), str) and step["id"] and step["id"] not in seen:
            seen.add(step["id"])
            steps.append(step)
    return steps


def workflow_diagram(
    raw_steps: Any,
    agent_names: Mapping[int, str],
    *,
    statuses: Mapping[str, str] | None = None,
    runs: Mapping[str, int] | None = None,
    taken: set[tuple[str, str]] | None = None,
) -> Diagram:
    """Lay out ``raw_steps`` (stored or typed, checked or not). On a run's page, ``statuses`` (step id: its last
    status), ``runs`` (step id: times it ran) and ``taken`` (the (from, to) jumps of its path) mark what ran."""
    steps = _steps(raw_steps)
    statuses, runs, taken = statuses or {}, runs or {}, taken or set()
    ids = {s["id"] for s in steps}
    branch_of = {
        branch: step["id"]
        for step in steps
        if step.get("kind") == "parallel"
        for branch in step.get("branches") or []
        if isinstance(branch, str) and branch in ids
    }
    main = [s for s in steps if s["id"] not in branch_of]
    by_id = {s["id"]: s for s in steps}

    def agent_of(step: Mapping[str, Any]) -> str:
        agent_id = str(step.get("agent_id") or "")
        if not agent_id.isdigit():
            return "no agent chosen"
        return agent_names.get(int(agent_id), f"agent {agent_id} (not found)")

    # Rows: one per main step, then End. A parallel row is as wide as its branches.
    row_widths = []
    for step in main:
        branches = [b for b in step.get("branches") or [] if b in by_id] if step.get("kind") == "parallel" else []
        row_widths.append(
            max(NODE_W, len(branches) * NODE_W + (len(branches) - 1) * BRANCH_GAP + 2 * PAD) if branches else NODE_W
        )
    column = max([NODE_W, *row_widths])
    left_lanes, right_lanes = 0, 0
    nodes: dict[str, Node] = {}
    groups: list[Node] = []
    branch_nodes: list[Node] = []
    group_of: dict[str, str] = {}  # branch node id -> its group's
    y = PAD
    row_of: dict[str, int] = {}
    for index, step in enumerate(main):
        width = row_widths[index]
        row_of[step["id"]] = index
        if step.get("kind") == "parallel":
            branches = [by_id[b] for b in step.get("branches") or [] if b in by_id]
            height = NODE_H + (NODE_H + 2 * PAD + 16 if branches else 0)
            group = Node(
                step["id"],
                step["id"],
                step.get("name") or f"parallel · {len(branches)} branches, all gathered",
                0,
                y,
                width,
                height,
                "parallel",
                statuses.get(step["id"], ""),
                runs.get(step["id"], 0),
            )
            nodes[step["id"]] = group
            groups.append(group)
            bx = PAD
            for branch in branches:
                node = Node(
                    branch["id"],
                    branch["id"],
                    agent_of(branch),
                    bx,
                    y + NODE_H + 16,
                    NODE_W,
                    NODE_H,
                    "branch",
                    statuses.get(branch["id"], ""),
                    runs.get(branch["id"], 0),
                )
                branch_nodes.append(node)
                group_of[node.id] = step["id"]
                bx += NODE_W + BRANCH_GAP
        else:
            height = NODE_H
            subtitle = agent_of(step)
            if step.get("name"):
                subtitle = f"{step['name']} · {subtitle}"
            nodes[step["id"]] = Node(
                step["id"],
                step["id"],
                subtitle,
                0,
                y,
                width,
                height,
                "agent",
                statuses.get(step["id"], ""),
                runs.get(step["id"], 0),
            )
        y += height + ROW_GAP
    end = Node(END_ID, "End", "", 0, y, 90, 30, "end", statuses.get(END_ID, ""))
    nodes[END_ID] = end
    row_of[END_ID] = len(main)

    # Edges: the default way on between neighbouring rows goes straight down; every other one goes round a side.
    plans: list[tuple[str, str, str, str]] = []  # (from, to, label, kind)
    for index, step in enumerate(main):
        for condition in step.get("conditions") or []:
            if isinstance(condition, dict):
                target = str(condition.get("target_step_id") or "")
                target = branch_of.get(target, target)
                if target in nodes:
                    backwards = row_of[target] <= index
                    plans.append((step["id"], target, condition_label(condition), "loop" if backwards else "condition"))
        following = str(step.get("next_step_id") or "")
        if not following:
            following = main[index + 1]["id"] if index + 1 < len(main) else END_ID
        following = branch_of.get(following, following)
        if following in nodes:
            plans.append((step["id"], following, "otherwise" if step.get("conditions") else "", "next"))

    # Centre the column, leaving room for the lanes on each side.
    side_plans = [
        (a, b, label, kind) for a, b, label, kind in plans if not (kind == "next" and row_of[b] == row_of[a] + 1)
    ]
    left_lanes = sum(1 for *_, kind in side_plans if kind == "next")
    right_lanes = len(side_plans) - left_lanes
    left = PAD + (left_lanes * LANE + LABEL_W if left_lanes else 0)
    for node in [*nodes.values()]:
        node.x = left + (column - node.w) // 2
    for node in branch_nodes:
        node.x += nodes[group_of[node.id]].x
    edges: list[Edge] = []
    left_used, right_used = 0, 0
    for source, target, label, kind in plans:
        a, b = nodes[source], nodes[target]
        is_taken = (source, target) in taken
        if kind == "next" and row_of[target] == row_of[source] + 1:
            path = f"M {a.cx} {a.y + a.h} L {b.cx} {b.y}"
            edges.append(Edge(path, label, kind, is_taken, a.cx + 6, (a.y + a.h + b.y) // 2 + 4))
            continue
        ya, yb = a.y + a.h // 2, b.y + b.h // 2
        if kind == "next":  # a default jump over rows: round the left side
            left_used += 1
            lane = left - left_used * LANE
            path = f"M {a.x} {ya} H {lane} V {yb} H {b.x}"
            # Labels stand beyond the outermost lane, clear of the other lanes' lines.
            edges.append(Edge(path, label, kind, is_taken, left - left_lanes * LANE - 4, (ya + yb) // 2, "end"))
        else:  # conditions and loops: round the right side
            right_used += 1
            lane = left + column + right_used * LANE
            path = f"M {a.x + a.w} {ya - 6} H {lane} V {yb + 6} H {b.x + b.w}"
            outermost = left + column + right_lanes * LANE
            edges.append(Edge(path, label, kind, is_taken, outermost + 4, (ya + yb) // 2))
    width = left + column + right_lanes * LANE + (LABEL_W if right_lanes else 0) + PAD
    height = end.y + end.h + PAD
    drawn = [*(n for n in nodes.values() if n.kind != "parallel"), *branch_nodes]
    names = ", ".join(f"{s['id']} ({agent_of(s)})" for s in main if s.get("kind") != "parallel")
    description = f"{len(steps)} steps: {names or 'none yet'}."
    if groups:
        description += f" {len(groups)} parallel group(s)."
    loops = sum(1 for e in edges if e.kind == "loop")
    if loops:
        description += f" {loops} loop(s)."
    return Diagram(drawn, edges, width, height, description, groups)
