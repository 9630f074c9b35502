"""One way to show run data on every page: conversations as message bubbles, JSON coloured, errors readable.

The run page, the trace panel, the chat, contexts and the admin all render through the template tags below
(``{% load display %}``), so a message, a tool call or an error looks the same wherever people meet it.
Items come in the SDK's two shapes: Chat Completions messages (``role``, ``tool_calls``) and Responses
items (``type``: message, function_call, function_call_output, reasoning, ...).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

HANDOFF_PREFIX = "transfer_to_"
_TOKEN = re.compile(
    r'(?P<key>"(?:[^"\\]|\\.)*")(?=\s*:)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'
    r"|(?P<lit>\btrue\b|\bfalse\b|\bnull\b)"
)


@dataclass(frozen=True)
class Bubble:
    """One message of a conversation, ready to draw. ``kind`` picks the style; ``data`` is shown as JSON."""

    kind: str  # system, user, assistant, tool_call, tool_result, handoff, reasoning, item
    label: str
    text: str = ""
    data: Any = None
    call_id: str = ""


def maybe_json(value: Any) -> Any:
    """Return ``value`` parsed when it is a string holding a JSON object or array (tool arguments, results)."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def to_json(value: Any) -> str:
    """Return ``value`` as indented JSON (anything JSON cannot hold is shown as its text)."""
    return json.dumps(maybe_json(value), indent=2, ensure_ascii=False, default=str, sort_keys=False)


def highlight_json(value: Any) -> SafeString:
    """Return ``value`` as indented JSON in HTML, keys, strings, numbers and literals in their own spans."""
    text = to_json(value)
    out: list[str] = []
    last = 0
    for match in _TOKEN.finditer(text):
        out.append(escape(text[last : match.start()]))
        kind = match.lastgroup or "str"
        out.append(f'<span class="j-{kind}">{escape(match.group())}</span>')
        last = match.end()
    out.append(escape(text[last:]))
    return mark_safe("".join(out))  # noqa: S308 - every piece is escaped above


def _text(content: Any) -> str:
    """Return the text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                parts.append(str(part.get("text") or part.get("refusal") or part.get("transcript") or ""))
            else:
                parts.append(str(part))
        return "\n".join(p for p in parts if p)
    return str(content)


def _call(name: str, arguments: Any, call_id: str) -> Bubble:
    if name.startswith(HANDOFF_PREFIX):
        target = name[len(HANDOFF_PREFIX) :].replace("_", " ")
        return Bubble("handoff", f"Hand off to {target}", call_id=call_id)
    return Bubble("tool_call", name or "tool", data=maybe_json(arguments) or {}, call_id=call_id)


def _result(output: Any, call_id: str, handoffs: set[str]) -> Bubble:
    value = maybe_json(output)
    if call_id in handoffs:
        target = value.get("assistant") if isinstance(value, dict) else None
        return Bubble("handoff", f"Now {target} answers" if target else "Handed off", call_id=call_id)
    if isinstance(value, str):
        return Bubble("tool_result", "Result", text=value, call_id=call_id)
    return Bubble("tool_result", "Result", data=value, call_id=call_id)


def as_bubbles(items: Any) -> list[Bubble] | None:
    """Return a conversation as bubbles, or None when ``items`` is not a list of messages or items."""
    if isinstance(items, dict) and ("role" in items or "type" in items):
        items = [items]
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        return None
    bubbles: list[Bubble] = []
    handoffs: set[str] = set()
    for item in items:
        kind = item.get("type")
        role = item.get("role")
        if kind == "function_call":
            bubble = _call(str(item.get("name") or ""), item.get("arguments"), str(item.get("call_id") or ""))
        elif kind == "function_call_output":
            bubble = _result(item.get("output"), str(item.get("call_id") or ""), handoffs)
        elif kind == "reasoning":
            summary = _text(item.get("summary") or item.get("content"))
            bubble = Bubble("reasoning", "Reasoning", text=summary or "(hidden)")
        elif role == "tool":
            bubble = _result(item.get("content"), str(item.get("tool_call_id") or ""), handoffs)
        elif role in ("system", "developer", "user", "assistant") and (kind in (None, "message")):
            text = _text(item.get("content"))
            calls = item.get("tool_calls") or []
            if text or not calls:
                label = {"developer": "system"}.get(role, role)
                bubbles.append(Bubble(label, label.capitalize(), text=text))
            for call in calls if isinstance(calls, list) else []:
                if not isinstance(call, dict):
                    continue
                function = call.get("function")
                if not isinstance(function, dict):
                    function = {}
                called = _call(str(function.get("name") or ""), function.get("arguments"), str(call.get("id") or ""))
                if called.kind == "handoff":
                    handoffs.add(called.call_id)
                bubbles.append(called)
            continue
        else:
            bubble = Bubble("item", str(kind or role or "item").replace("_", " "), data=item)
        if bubble.kind == "handoff" and kind == "function_call":
            handoffs.add(bubble.call_id)
        bubbles.append(bubble)
    return bubbles


@register.inclusion_tag("partials/_json.html")
def json_view(value: Any, label: str = "JSON") -> dict[str, Any]:
    """Pretty, coloured JSON with a copy button."""
    return {"html": highlight_json(value), "label": label}


@register.inclusion_tag("partials/_value.html")
def value_view(value: Any) -> dict[str, Any]:
    """Text as text, anything structured as coloured JSON, nothing as a dash."""
    value = maybe_json(value)
    return {"value": value, "is_text": isinstance(value, str | int | float), "empty": value in (None, "", [], {})}


@register.inclusion_tag("partials/_messages.html")
def messages_view(items: Any, raw: bool = True) -> dict[str, Any]:
    """A conversation as message bubbles (tool calls with arguments and results, handoffs), with raw JSON."""
    return {"bubbles": as_bubbles(items), "items": items, "raw": raw}


@register.inclusion_tag("partials/_error.html")
def error_view(error: Any, code: str = "") -> dict[str, Any]:
    """An error as a readable block: its code, its message, and any details as JSON."""
    details: Any = None
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("error") or "")
        code = code or str(error.get("code") or "")
        details = error.get("data") or {k: v for k, v in error.items() if k not in ("message", "error", "code")}
    else:
        message = str(error or "")
    return {"message": message or "Unknown error.", "code": code, "details": details or None}


@register.filter
def output_type_label(value: Any) -> str:
    """Return the name people know for an agent's output type (the SDK reports plain text as ``str``)."""
    return "text" if value in (None, "", "str") else str(value)


@register.filter
def has_steps(items: Any) -> bool:
    """Return whether a run's items hold more than its answer: tool calls, results, handoffs or reasoning."""
    bubbles = as_bubbles(items) or []
    return any(b.kind not in ("user", "assistant", "system") for b in bubbles)
