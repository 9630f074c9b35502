"""Function tools at run time: the arguments are checked against the tool's parameters, then its code runs in
the sandbox or its endpoint is called through the SSRF guard.

A failure (bad arguments, an exception, a limit hit, an endpoint down) comes back to the model as one sentence it
can act on and is recorded on the tool's span; it never fails the run. ``call_function`` is also what the
builder's "Try it" panel runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import openai
from agents import FunctionTool
from agents.tool_context import ToolContext
from agents.tracing import SpanError, get_current_span
from asgiref.sync import async_to_sync
from django.conf import settings
from jsonschema import Draft202012Validator

from accounts_app.actor import Actor
from agents_app.exceptions import InvalidInputError, NotFoundError
from agents_app.models import Agent
from agents_app.selectors import agent_get
from providers_app.clients import endpoint_client
from sandbox.executor import Outcome, SandboxUnavailableError, run_code

_JSON_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}
MAX_ANSWER_CHARS = 100_000  # what the model is given back of one result


def parameters_schema(parameters: list[dict[str, Any]] | dict[str, Any] | None) -> dict[str, Any]:
    """Return the JSON Schema of a tool's arguments: a JSON Schema as given, or one built from the spec's list
    of ``{name, type, default, description}`` (a parameter without ``default`` is required)."""
    if isinstance(parameters, dict):
        return parameters
    properties: dict[str, Any] = {}
    required = []
    for parameter in parameters or []:
        prop: dict[str, Any] = {"type": _JSON_TYPES[parameter.get("type", "str")]}
        if parameter.get("description"):
            prop["description"] = parameter["description"]
        if "default" in parameter:
            prop["default"] = parameter["default"]
        else:
            required.append(parameter["name"])
        properties[parameter["name"]] = prop
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def for_model(outcome: Outcome) -> str:
    """Return what the model reads of a call: its value (JSON unless it is text), or its error."""
    if not outcome.ok:
        return f"Error: {outcome.error}"
    text = outcome.value if isinstance(outcome.value, str) else json.dumps(outcome.value, ensure_ascii=False)
    return text if len(text) <= MAX_ANSWER_CHARS else text[:MAX_ANSWER_CHARS] + " [cut]"


def check_arguments(schema: dict[str, Any], raw: str | dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """Return the arguments with defaults filled in, or None and what is wrong with them."""
    if raw is None or raw == "":
        raw = {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return None, f"The arguments are not valid JSON ({exc.msg})."
    if not isinstance(raw, dict):
        return None, "The arguments must be a JSON object."
    errors = sorted(Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        where = ".".join(str(p) for p in errors[0].absolute_path)
        return None, f"Invalid arguments{f' at {where}' if where else ''}: {errors[0].message}"
    defaults = {
        name: prop["default"]
        for name, prop in (schema.get("properties") or {}).items()
        if isinstance(prop, dict) and "default" in prop and name not in raw
    }
    return {**defaults, **raw}, ""


async def call_function(
    params: dict[str, Any], arguments: str | dict[str, Any] | None, *, headers: dict[str, str] | None = None
) -> Outcome:
    """Run a function tool or guardrail (``params``: its stored params or config) with ``arguments``.

    Never raises for the call's own failures; they are in the outcome.
    """
    started = time.monotonic()
    args, problem = check_arguments(parameters_schema(params.get("parameters")), arguments)
    if args is None:
        outcome = Outcome(ok=False, kind="arguments", error=problem)
    else:
        outcome = await invoke(params, args, headers=headers)
    outcome.duration_ms = (time.monotonic() - started) * 1000
    return outcome


async def invoke(params: dict[str, Any], args: dict[str, Any], *, headers: dict[str, str] | None = None) -> Outcome:
    """Run ``params``' code in the sandbox with ``args`` as keyword arguments, or POST ``args`` to its endpoint.

    Arguments are not checked here (``call_function`` does that for tools). Never raises for the call's own
    failures; they are in the outcome, with its duration.
    """
    started = time.monotonic()
    if params.get("code") is not None:
        outcome = await _run(params["code"], args)
    else:
        outcome = await _post(params["endpoint"], args, headers or {})
    outcome.duration_ms = (time.monotonic() - started) * 1000
    return outcome


async def _run(code: str, args: dict[str, Any]) -> Outcome:
    try:
        # The sandbox call blocks on a child process; the event loop keeps serving other runs.
        return await asyncio.to_thread(run_code, code, args=args)
    except SandboxUnavailableError as exc:
        return Outcome(ok=False, kind="unavailable", error=str(exc))


async def _post(url: str, args: dict[str, Any], headers: dict[str, str]) -> Outcome:
    limit = settings.TOOL_ENDPOINT_MAX_BYTES
    try:
        async with endpoint_client().stream("POST", url, json=args, headers=headers) as response:
            if response.is_redirect:
                return Outcome(
                    ok=False,
                    kind="endpoint",
                    error=f"The endpoint redirected (HTTP {response.status_code}); give its final URL.",
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    return Outcome(
                        ok=False, kind="endpoint", error=f"The endpoint's answer is larger than {limit:,} bytes."
                    )
    except openai.APIConnectionError as exc:  # the SSRF guard's refusals and unknown hosts
        return Outcome(ok=False, kind="endpoint", error=exc.message)
    except httpx2.TimeoutException:
        return Outcome(
            ok=False,
            kind="timeout",
            error=f"The endpoint did not answer within {settings.TOOL_ENDPOINT_TIMEOUT_SECONDS} s.",
        )
    except httpx2.HTTPError as exc:
        problem = f"The endpoint could not be reached ({type(exc).__name__})."
        return Outcome(ok=False, kind="endpoint", error=problem)
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if response.status_code >= 400:
        return Outcome(
            ok=False, kind="endpoint", error=f"The endpoint answered HTTP {response.status_code}: {text[:300]}".strip()
        )
    if "json" in response.headers.get("content-type", ""):
        try:
            return Outcome(ok=True, value=json.loads(text))
        except json.JSONDecodeError:
            return Outcome(ok=False, kind="endpoint", error="The endpoint's answer is not valid JSON.")
    return Outcome(ok=True, value=text)


def item_headers(row: Agent, field: str, name: str) -> dict[str, str] | None:
    """Return the decrypted endpoint headers of one of the row's tools or guardrails (``field``: "tools",
    "input_guardrails" or "output_guardrails")."""
    secrets = row.secrets if isinstance(row.secrets, dict) else {}
    return ((secrets.get(field) or {}).get(name) or {}).get("headers")


def function_tool(spec: dict[str, Any], headers: dict[str, str] | None) -> FunctionTool:
    """Return the SDK tool for a stored function tool (``headers``: its decrypted header values)."""
    params = spec["params"]

    async def invoke(ctx: ToolContext[Any], arguments: str) -> str:
        outcome = await call_function(params, arguments, headers=headers)
        if not outcome.ok:
            span = get_current_span()
            if span is not None:
                span.set_error(SpanError(message=outcome.error, data={"kind": outcome.kind}))
        return for_model(outcome)

    return FunctionTool(
        name=spec["name"],
        description=spec.get("description") or f"Call {spec['name']}.",
        params_json_schema=parameters_schema(params.get("parameters")),
        on_invoke_tool=invoke,
        strict_json_schema=False,
    )


def try_tool(*, actor: Actor, agent_id: int, name: str, arguments: dict[str, Any] | None) -> Outcome:
    """Run one of the agent's function tools once on sample ``arguments`` (members and above) and return the
    outcome, as the builder's "Try it" panel shows it. Nothing is recorded and no credits are used.

    Raises NotFoundError (no such agent or tool), PermissionDeniedError, InvalidInputError (not a function tool).
    """
    agent = agent_get(actor=actor, agent_id=agent_id)
    actor.require_write()
    spec = next((tool for tool in agent.tools or [] if tool.get("name") == name), None)
    if spec is None:
        raise NotFoundError(f"The agent has no tool named {name!r}.")
    if spec.get("type") != "function":
        raise InvalidInputError("Only function tools can be tried here; chat with the agent to try this one.")
    headers = item_headers(agent, "tools", name)
    return async_to_sync(call_function)(spec["params"], arguments, headers=headers)
