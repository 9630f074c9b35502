"""Guardrails at run time: each stored guardrail becomes an SDK ``InputGuardrail`` (checked before the model is
asked anything) or ``OutputGuardrail`` (checked on the final output), and every check leaves a verdict.

- ``regex``: RE2 (``google-re2``) matches in linear time, so no pattern can stall a worker; patterns RE2 does not
  support (backreferences, lookaround) are refused when the guardrail is saved.
- ``agent``: another agent of the workspace judges the text; its structured output holds ``tripwire_triggered``
  and, optionally, ``message``.
- ``function``: code run in the sandbox, or an endpoint called with a JSON POST, with ``input`` (or ``output``)
  and ``context``; it returns ``tripwire_triggered``, ``output_info`` and an optional ``message``.

A guardrail that cannot decide (the sandbox refuses, the endpoint is down, the judge gives no verdict) trips:
a check that did not run is not a pass. ``check`` is also what the builder's "Try it" panel runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from agents import Agent as SDKAgent
from agents import GuardrailFunctionOutput, InputGuardrail, OutputGuardrail, RunContextWrapper
from agents.tracing import SpanError, custom_span, get_current_span

from accounts_app.actor import Actor
from agents_app.exceptions import NotFoundError
from agents_app.models import RunStatus
from agents_app.selectors import agent_get
from agents_app.tool_specs import compile_pattern
from agents_app.tools import invoke, item_headers
from config.db import db_call

Kind = Literal["input", "output"]
# Runs a judge agent on a text and returns its final output; the run's context object is passed through.
Judge = Callable[[str, Any], Awaitable[Any]]

MAX_JUDGE_DEPTH = 3  # judges whose own guardrails are judged by others, and so on; a loop stops here
_judge_depth: ContextVar[int] = ContextVar("guardrail_judge_depth", default=0)
VERDICT_KEYS = "tripwire_triggered (true or false), and optionally message and output_info"


@dataclass
class Verdict:
    """What one guardrail decided on one text, as the run record, the trace and the API show it."""

    type: Kind
    name: str
    implementation: str
    tripwire_triggered: bool
    output_info: Any = None
    message: str = ""
    error: str = ""
    duration_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "implementation": self.implementation,
            "tripwire_triggered": self.tripwire_triggered,
            "output_info": self.output_info,
            "message": self.message,
            "error": self.error or None,
            "duration_ms": round(self.duration_ms, 1),
        }


def default_message(kind: Kind, name: str) -> str:
    """Return what the user is told when a guardrail trips without a message of its own."""
    if kind == "input":
        return f"This message was blocked by the {name} guardrail."
    return f"The answer was withheld by the {name} guardrail."


def regex_message(kind: Kind, config: dict[str, Any]) -> str:
    """Return a regex guardrail's own message: ``message`` for an input, ``replacement`` (else ``message``) for
    an output; "" when it has none (``default_message`` is used then)."""
    if kind == "input":
        return config.get("message") or ""
    return config.get("replacement") or config.get("message") or ""


def as_text(value: Any) -> str:
    """Return the text a regex or a judge checks: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def latest_user_text(run_input: str | list[Any]) -> str:
    """Return the newest user message of an SDK run input (the history comes before it), as text."""
    if isinstance(run_input, str):
        return run_input
    for item in reversed(run_input):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def verdict_fields(value: Any) -> tuple[bool, str, Any]:
    """Return ``(tripwire_triggered, message, output_info)`` from what a function or a judge returned.

    ``output_info`` defaults to the whole value. Raises ValueError saying what is missing.
    """
    if not isinstance(value, dict) or not isinstance(value.get("tripwire_triggered"), bool):
        raise ValueError(f"A guardrail must return an object with {VERDICT_KEYS}; it returned {as_text(value)[:200]}")
    message = value.get("message") or value.get("override_message") or ""
    if not isinstance(message, str):
        raise ValueError("A guardrail's message must be text.")
    return value["tripwire_triggered"], message, value.get("output_info", value)


async def check(
    spec: dict[str, Any],
    value: Any,
    *,
    headers: dict[str, str] | None = None,
    judge: Judge | None = None,
    run_context: Any = None,
    context: dict[str, Any] | None = None,
) -> Verdict:
    """Check ``value`` (an input's text, or a final output) with one stored guardrail and return its verdict.

    ``headers``: the decrypted endpoint headers; ``judge``: runs the judge agent (agent guardrails);
    ``run_context``: the run's context object, passed to the judge; ``context``: the run's context data, given
    to functions. Never raises: a failure trips the guardrail, with ``error`` saying why.
    """
    kind: Kind = spec["type"]
    config = spec["config"]
    verdict = Verdict(type=kind, name=spec["name"], implementation=spec["implementation"], tripwire_triggered=False)
    started = time.monotonic()
    try:
        if spec["implementation"] == "regex":
            match = compile_pattern(config["pattern"], bool(config.get("ignore_case"))).search(as_text(value))
            verdict.tripwire_triggered = match is not None
            verdict.output_info = {"matched": match.group(0)[:200]} if match is not None else {"matched": None}
            verdict.message = regex_message(kind, config)
        elif spec["implementation"] == "agent":
            await _judge(verdict, value, judge, run_context)
        else:
            args = {kind: value, "context": context or {}}
            outcome = await invoke(config, args, headers=headers)
            if not outcome.ok:
                raise ValueError(outcome.error)
            verdict.tripwire_triggered, verdict.message, verdict.output_info = verdict_fields(outcome.value)
    except Exception as exc:  # the guardrail could not decide: it trips, and says why
        verdict.tripwire_triggered = True
        verdict.error = str(exc) or type(exc).__name__
        verdict.output_info = {"error": verdict.error}
    if verdict.tripwire_triggered and not verdict.message:
        verdict.message = default_message(kind, spec["name"])
    verdict.duration_ms = (time.monotonic() - started) * 1000
    return verdict


async def _judge(verdict: Verdict, value: Any, judge: Judge | None, run_context: Any) -> None:
    if judge is None:
        raise ValueError("The judging agent is not available (it was deleted or is in another workspace).")
    depth = _judge_depth.get()
    if depth >= MAX_JUDGE_DEPTH:
        raise ValueError("Guardrail judges are judged by each other in a loop; it was stopped.")
    token = _judge_depth.set(depth + 1)
    try:
        output = await judge(as_text(value), run_context)
    except Exception as exc:
        raise ValueError(f"The judging agent failed: {exc}") from None
    finally:
        _judge_depth.reset(token)
    try:
        verdict.tripwire_triggered, verdict.message, verdict.output_info = verdict_fields(output)
    except ValueError:
        raise ValueError(
            "The judging agent must answer with structured output (an output schema) holding " + VERDICT_KEYS
        ) from None


def _record(ctx: RunContextWrapper[Any], verdict: Verdict) -> GuardrailFunctionOutput:
    """Keep the verdict on the run's context (the run record reads it), put it on the trace, and return it as
    the SDK's guardrail output."""
    verdicts = getattr(ctx.context, "verdicts", None)
    if isinstance(verdicts, list):
        verdicts.append(verdict.as_json())
    with custom_span("guardrail verdict", data=verdict.as_json()):
        pass
    if verdict.error:
        span = get_current_span()
        if span is not None:
            span.set_error(SpanError(message=verdict.error, data={"guardrail": verdict.name}))
    return GuardrailFunctionOutput(output_info=verdict.as_json(), tripwire_triggered=verdict.tripwire_triggered)


def _context_data(ctx: RunContextWrapper[Any]) -> dict[str, Any]:
    data = getattr(ctx.context, "context", None)
    return data if isinstance(data, dict) else {}


def input_guardrail(spec: dict[str, Any], *, headers: dict[str, str] | None, judge: Judge | None) -> InputGuardrail:
    """Return the SDK input guardrail for a stored one. It runs before the first model request (not beside
    it): a tripped input must cost nothing and reach no model."""

    async def guard(ctx: RunContextWrapper[Any], agent: SDKAgent[Any], run_input: Any) -> GuardrailFunctionOutput:
        text = latest_user_text(run_input)
        verdict = await check(
            spec, text, headers=headers, judge=judge, run_context=ctx.context, context=_context_data(ctx)
        )
        return _record(ctx, verdict)

    return InputGuardrail(guardrail_function=guard, name=spec["name"], run_in_parallel=False)


def output_guardrail(spec: dict[str, Any], *, headers: dict[str, str] | None, judge: Judge | None) -> OutputGuardrail:
    """Return the SDK output guardrail for a stored one; it checks the agent's final output."""

    async def guard(ctx: RunContextWrapper[Any], agent: SDKAgent[Any], output: Any) -> GuardrailFunctionOutput:
        verdict = await check(
            spec, output, headers=headers, judge=judge, run_context=ctx.context, context=_context_data(ctx)
        )
        return _record(ctx, verdict)

    return OutputGuardrail(guardrail_function=guard, name=spec["name"])


@dataclass
class TryResult:
    """A guardrail tried on a sample: its verdict, and the judge's run when another agent judged."""

    verdict: Verdict
    run_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {**self.verdict.as_json(), "run_id": str(self.run_id) if self.run_id else None}


async def try_guardrail(*, actor: Actor, agent_id: int, kind: Kind, name: str, sample: Any) -> TryResult:
    """Check ``sample`` (a message for an input guardrail, an answer for an output one) with one of the agent's
    guardrails (members and above) and return the verdict, as the builder's "Try it" panel shows it.

    Regex and function guardrails record nothing and use no credits; an agent judge runs as a run of that agent
    (recorded, traced and paid for like any other). Raises NotFoundError (no such agent or guardrail) and
    PermissionDeniedError.
    """
    # The run machinery builds on this module (runtime -> guardrails); imported here, where it is used.
    from agents_app.runs.execution import execute_run
    from agents_app.runs.lifecycle import start_run

    agent = await db_call(agent_get, actor=actor, agent_id=agent_id)
    actor.require_write()
    field_name = f"{kind}_guardrails"
    spec = next((g for g in getattr(agent, field_name) or [] if g.get("name") == name), None)
    if spec is None:
        raise NotFoundError(f"The agent has no {kind} guardrail named {name!r}.")
    result = TryResult(verdict=Verdict(type=kind, name=name, implementation="", tripwire_triggered=False))

    async def judge(text: str, run_context: Any) -> Any:
        active = await start_run(actor=actor, agent_id=spec["config"]["agent_id"], message=text)
        run = await execute_run(active)
        result.run_id = run.pk
        if run.status != RunStatus.SUCCEEDED:
            raise ValueError(run.error or f"Its run ended {run.status}.")
        return run.final_output

    result.verdict = await check(spec, sample, headers=item_headers(agent, field_name, name), judge=judge, context={})
    return result
