"""The one presenter of a run: its answer (200 with the run, 502 with its error), its stream events, and its
``done`` event, which carries the same fields as the answer (and the error, if any)."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from openai.types.responses import ResponseTextDeltaEvent

from agents_app.models import AgentRun, RunStatus
from agents_app.runtime import to_json


def answer_fields(run: AgentRun) -> dict[str, Any]:
    """Return what a run's answer says of a run (AgentRunResponse): its output, messages, usage and cost.

    ``run_id`` is a string in every run answer and event, as the spec's ``AgentRunResponse`` has it; the
    run's endpoints (``/runs/{run_id}``) take it as it is.
    """
    return {
        "run_id": str(run.pk),
        "status": run.status,
        "output": run.final_output,
        "messages": run.new_items,
        "usage": run.usage or {},
        "cost": run.cost,
        "trace_id": run.trace_id,
        "conversation_id": run.conversation_id,
        "last_agent": run.last_agent_name,
        "guardrails": run.guardrails or [],
        "guardrail_triggered": run.guardrail_triggered,
        "citations": run.citations or [],
    }


def run_answer(run: AgentRun) -> tuple[int, dict[str, Any]]:
    """Return the status and body of a finished run's answer: 200 and the run (AgentRunResponse) when it
    succeeded or a guardrail blocked it (``output``: the guardrail's message), else 502 and its error
    (RunErrorOut)."""
    if run.status in (RunStatus.SUCCEEDED, RunStatus.BLOCKED):
        return 200, answer_fields(run)
    return 502, {"detail": run.error, "code": run.error_code, "run_id": str(run.pk)}


def queued_answer(run: AgentRun) -> dict[str, Any]:
    """Return the body of a background run's 202 answer (RunQueuedOut)."""
    return {
        "run_id": str(run.pk),
        "status": run.status,
        "conversation_id": run.conversation_id,
        "trace_id": run.trace_id,
    }


def run_event(run: AgentRun) -> dict[str, Any]:
    """Return a run's first stream event, ``run``: its ids, sent before the model is asked anything."""
    data = {
        "run_id": str(run.pk),
        "conversation_id": run.conversation_id,
        "agent": run.agent_name,
        "trace_id": run.trace_id,
    }
    return {"event": "run", "data": data}


def done_event(run: AgentRun) -> dict[str, Any]:
    """Return a run's last stream event, ``done``: the answer's fields, and ``error`` and ``code`` if it failed."""
    return {"event": "done", "data": answer_fields(run) | {"error": run.error or None, "code": run.error_code or None}}


def text_event(delta: str) -> dict[str, Any]:
    """Return a ``text`` event: the next piece of the answer."""
    return {"event": "text", "data": {"delta": delta}}


def stream_event(event: Any) -> dict[str, Any] | None:
    """Map an SDK stream event to one of ours (text, tool_call, tool_output, handoff, agent), or None.

    ``guardrail`` (the verdict that blocked a run) is sent by the stream's end (agents_app/runs/execution.py).
    """
    if event.type == "raw_response_event":
        if isinstance(event.data, ResponseTextDeltaEvent):
            return text_event(event.data.delta)
        return None
    if event.type == "agent_updated_stream_event":
        return {"event": "agent", "data": {"name": event.new_agent.name}}
    if event.type == "run_item_stream_event":
        item = event.item
        if event.name == "tool_called":
            raw = item.raw_item
            data = {
                "name": getattr(raw, "name", ""),
                "arguments": getattr(raw, "arguments", ""),
                "call_id": getattr(raw, "call_id", ""),
            }
            return {"event": "tool_call", "data": data}
        if event.name == "tool_output":
            raw = item.raw_item
            call_id = raw.get("call_id", "") if isinstance(raw, dict) else getattr(raw, "call_id", "")
            return {"event": "tool_output", "data": {"call_id": call_id, "output": to_json(item.output)}}
        if event.name == "handoff_occured":
            return {"event": "handoff", "data": {"from": item.source_agent.name, "to": item.target_agent.name}}
    return None


def event_json(data: dict[str, Any]) -> str:
    """Return an event's data as JSON, with values (a cost) written as the API's JSON answers write them."""
    return json.dumps(data, ensure_ascii=False, cls=DjangoJSONEncoder)


def sse(event: dict[str, Any]) -> bytes:
    """Encode one event as Server-Sent Events."""
    return f"event: {event['event']}\ndata: {event_json(event['data'])}\n\n".encode()
