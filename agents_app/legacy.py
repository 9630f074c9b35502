"""Tools and guardrails as the platform stored them before it took the spec's names, converted to the spec's shapes.

Before, an agent tool was ``{"type": "agent", "agent_id": N, "name"?, "description"?}``, other tools and the
guardrails were stored as sent, unchecked, and guardrails of both kinds shared one list. Migration 0004 converts
stored agents with these functions, and imports of version-1 exports go through them too. What does not fit the
spec's shapes is returned apart, so that the caller keeps it (in the agent's metadata), never drops it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from agents_app.tool_specs import clean_guardrails, clean_tools


def agent_tool_name(agent_name: str) -> str:
    """Return the name the SDK gives an agent used as a tool when none is set (``Agent.as_tool``, through
    ``agents.util._transforms.transform_string_function_style``, which also logs a warning we do not want)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", agent_name).lower()[:64] or "agent"


def convert_tools(tools: Any, agent_names: dict[int, str]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Return ``(tools in the spec's shape, entries that could not be converted)``.

    ``agent_names`` maps the ids of the agents a tool may name (the same workspace's) to their names.
    """
    if not isinstance(tools, list):
        return [], [tools] if tools else []
    kept: list[dict[str, Any]] = []
    left: list[Any] = []
    for tool in tools:
        candidate = tool
        if isinstance(tool, dict) and tool.get("type") == "agent" and "params" not in tool:
            target = tool.get("agent_id")
            if target not in agent_names:
                left.append(tool)
                continue
            candidate = {
                "name": tool.get("name") or agent_tool_name(agent_names[target]),
                "description": tool.get("description") or "",
                "type": "agent",
                "params": {"agent_id": target},
            }
        cleaned, problems = clean_tools([*kept, candidate])
        if problems:
            left.append(tool)
        else:
            kept = cleaned
    return kept, left


def split_guardrails(guardrails: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """Return ``(input guardrails, output guardrails, entries that fit neither)`` of one mixed list."""
    if not isinstance(guardrails, list):
        return [], [], [guardrails] if guardrails else []
    lists: dict[str, list[dict[str, Any]]] = {"input": [], "output": []}
    left: list[Any] = []
    for guardrail in guardrails:
        kind: Literal["input", "output"] = (
            "output" if isinstance(guardrail, dict) and guardrail.get("type") == "output" else "input"
        )
        cleaned, problems = clean_guardrails([guardrail], kind=kind, field="guardrails")
        if problems:
            left.append(guardrail)
        else:
            lists[kind] += cleaned
    return lists["input"], lists["output"], left
