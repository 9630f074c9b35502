"""The handoff graph around one agent, laid out for an SVG: who can hand off to it, and whom it reaches."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from accounts_app.actor import Actor
from agents_app.models import Agent, AgentHandoff

MAX_DEPTH = 3  # levels drawn each way
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 34, 60, 14, 10


@dataclass(frozen=True)
class Node:
    id: int
    name: str
    level: int  # 0: the agent; -1: hands off to it; 1: it hands off to; ...
    x: int
    y: int
    current: bool

    @property
    def label(self) -> str:
        return self.name if len(self.name) <= 18 else self.name[:17] + "…"


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int
    back: bool  # drawn against the flow (a cycle back to an earlier level)


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int

    @property
    def description(self) -> str:
        before = [n.name for n in self.nodes if n.level < 0]
        after = [n.name for n in self.nodes if n.level > 0]
        return (
            f"Receives handoffs from {', '.join(before) or 'no agent'}; "
            f"reaches {', '.join(after) or 'no agent'} by handoffs."
        )


def handoff_graph(*, actor: Actor, agent: Agent) -> Graph:
    """Return the agents that reach ``agent`` and that it reaches by handoffs (up to MAX_DEPTH), laid out in
    columns by distance, with the handoffs between them. Two queries, whatever the size of the workspace."""
    pairs = list(AgentHandoff.objects.filter(source__workspace=actor.workspace).values_list("source_id", "target_id"))
    forward: dict[int, list[int]] = defaultdict(list)
    backward: dict[int, list[int]] = defaultdict(list)
    for source, target in pairs:
        forward[source].append(target)
        backward[target].append(source)
    level = {agent.pk: 0}
    for direction, step in ((forward, 1), (backward, -1)):
        frontier = [agent.pk]
        for depth in range(1, MAX_DEPTH + 1):
            found = [t for n in frontier for t in direction[n] if t not in level]
            for t in dict.fromkeys(found):
                level[t] = depth * step
            frontier = list(dict.fromkeys(found))
    names = dict(Agent.objects.filter(pk__in=level, workspace=actor.workspace).values_list("pk", "name"))
    columns: dict[int, list[int]] = defaultdict(list)
    for pk in sorted(level, key=lambda p: names.get(p, "")):
        if pk in names:
            columns[level[pk]].append(pk)
    low, high = min(columns), max(columns)
    tallest = max(len(c) for c in columns.values())
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    nodes: dict[int, Node] = {}
    for column, members in columns.items():
        x = PAD + (column - low) * (NODE_W + GAP_X)
        top = (height - (len(members) * NODE_H + (len(members) - 1) * GAP_Y)) // 2
        for index, pk in enumerate(members):
            y = top + index * (NODE_H + GAP_Y)
            nodes[pk] = Node(pk, names[pk], column, x, y, pk == agent.pk)
    edges = []
    for source, target in pairs:
        a, b = nodes.get(source), nodes.get(target)
        if a is None or b is None:
            continue
        back = b.level <= a.level
        x1 = a.x + NODE_W if not back else a.x
        x2 = b.x if not back else b.x + NODE_W
        edges.append(Edge(x1, a.y + NODE_H // 2, x2, b.y + NODE_H // 2, back))
    width = PAD * 2 + (high - low + 1) * NODE_W + (high - low) * GAP_X
    return Graph(list(nodes.values()), edges, width, height)
