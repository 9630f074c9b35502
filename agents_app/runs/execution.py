"""A started run through the SDK, to its end: ``execute_run`` for an answer at the end, ``stream_run`` for its
events as they happen. Both end the run with ``end_run`` however it stops (its output, a failure, the
RUN_TIMEOUT_SECONDS deadline, or the caller's cancellation) and never touch the ORM on the event loop."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from agents import Agent as SDKAgent
from agents import RunConfig, Runner
from agents.result import RunResultBase
from django.conf import settings

from agents_app.models import Agent, AgentRun, RunStatus
from agents_app.runs.answer import done_event, run_event, stream_event, text_event
from agents_app.runs.lifecycle import ActiveRun, end_run
from agents_app.runs.statements import RunTimedOut
from agents_app.runtime import Graph, RunContext, build_sdk_graph, usage_meter
from providers_app.runtime import ResolvedModel, build_model
from traces_app import redaction


def model_resolver(active: ActiveRun) -> Callable[[Agent], ResolvedModel]:
    """Return the function that gives each agent of the run its model: the starting agent the run's provider
    and model, every other agent its own provider (or the workspace's default) and model."""

    def resolve(row: Agent) -> ResolvedModel:
        if row.pk == active.graph.root_id:
            return build_model(provider=active.root_provider, model_name=active.root_model, settings=row.model_settings)
        return build_model(
            provider=row.provider or active.default_provider, model_name=row.model, settings=row.model_settings
        )

    return resolve


# Built SDK agents, per event loop (their models hold the loop's clients) and per loaded graph (the
# definition cache keeps one Graph per configuration version). Building them costs more than half a
# millisecond of CPU per run; the SDK does not change an agent while it runs it, so runs share them.
_sdk_agents: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Graph, dict[tuple[Any, ...], SDKAgent[RunContext]]]
] = weakref.WeakKeyDictionary()


def sdk_agent(active: ActiveRun) -> SDKAgent[RunContext]:
    """Return the SDK agent (handoffs and agent tools wired) for the run, built once per graph and models.

    Must be called in the event loop that will run it.
    """
    by_graph = _sdk_agents.setdefault(asyncio.get_running_loop(), weakref.WeakKeyDictionary())
    built = by_graph.setdefault(active.graph, {})
    key = (
        active.root_provider.pk,
        active.root_provider.updated_at,
        active.root_model,
        active.default_provider.pk,
        active.default_provider.updated_at,
    )
    agent = built.get(key)
    if agent is None:
        agent = built[key] = build_sdk_graph(active.graph, model_resolver(active))
    return agent


def run_secrets(active: ActiveRun) -> list[str]:
    """Return the secrets this run's models are called with (provider keys and extra header values)."""
    providers = {p.pk: p for p in (*active.graph.providers(), active.root_provider, active.default_provider)}
    secrets: list[str] = []
    for provider in providers.values():
        secrets.append(provider.api_key or "")
        secrets.extend(str(value) for value in (provider.extra_headers or {}).values())
    return secrets


def _runner_arguments(active: ActiveRun) -> dict[str, Any]:
    """Return the arguments of ``Runner.run`` and ``Runner.run_streamed`` for the run."""
    # Its trace must never store the keys the run uses (traces_app/redaction.py).
    redaction.remember(active.run.trace_id, run_secrets(active))
    root_agent = sdk_agent(active)
    return {
        "starting_agent": root_agent,
        "input": active.run_input(),
        "context": active.context,
        "hooks": usage_meter(root_agent),
        "max_turns": active.max_turns,
        "run_config": RunConfig(
            workflow_name=active.run.agent_name,
            trace_id=active.run.trace_id,
            group_id=str(active.run.conversation_id or 0),
            trace_metadata={
                "workspace_id": str(active.context.workspace_id),
                "run_id": str(active.run.pk),
                "agent_id": str(active.graph.root_id),
            },
        ),
    }


async def execute_run(active: ActiveRun) -> AgentRun:
    """Run to the end and return the finished AgentRun (succeeded or failed; never raises for run errors).

    Cancelled (the client went away), the run is ended as cancelled and its credits refunded; then the
    cancellation goes on.
    """
    result: RunResultBase | None = None
    try:
        arguments = _runner_arguments(active)
        try:
            async with asyncio.timeout(settings.RUN_TIMEOUT_SECONDS):
                result = await Runner.run(**arguments)
        except TimeoutError:
            raise RunTimedOut from None
    except asyncio.CancelledError:
        await asyncio.shield(end_run(active, result=result, cancelled=True))
        raise
    except Exception as exc:
        return await end_run(active, result=result, error=exc)
    return await end_run(active, result=result)


async def stream_run(active: ActiveRun) -> AsyncIterator[dict[str, Any]]:
    """Yield our stream events (agents_app/runs/answer.py), then ``done`` with the finished run (or ``error``
    then ``done``; or ``guardrail``, with the verdict that blocked the run, then ``done``).

    If the consumer stops (the client went away), the SDK run is cancelled at once and the run is
    recorded as cancelled with its credits refunded: an abandoned stream must not keep spending.
    """
    yield run_event(active.run)
    result = None
    finished = False
    # With output guardrails, the answer's text is held until they pass: text already sent cannot be withdrawn.
    # Text before a tool call or handoff is not the final answer and goes out then.
    hold = any(row.output_guardrails for row in active.graph.agents.values())
    held: list[str] = []
    try:
        result = Runner.run_streamed(**_runner_arguments(active))
        # The deadline cancels the SDK run, which ends its event stream; no timeout scope spans the yields.
        streamed = result
        timed_out = False

        def stop() -> None:
            nonlocal timed_out
            timed_out = True
            streamed.cancel()

        deadline = asyncio.get_running_loop().call_later(settings.RUN_TIMEOUT_SECONDS, stop)
        try:
            async for event in result.stream_events():
                translated = stream_event(event)
                if translated is None:
                    continue
                if hold and translated["event"] == "text":
                    held.append(translated["data"]["delta"])
                    continue
                if held:
                    yield text_event("".join(held))
                    held.clear()
                yield translated
        finally:
            deadline.cancel()
        if timed_out:
            raise RunTimedOut
        run = await end_run(active, result=result)
        finished = True
        if held:
            yield text_event("".join(held))
    except (asyncio.CancelledError, GeneratorExit):
        raise
    except Exception as exc:
        run = await end_run(active, result=result, error=exc)
        finished = True
        if run.status == RunStatus.BLOCKED:
            yield {"event": "guardrail", "data": run.guardrail_triggered}
        else:
            yield {"event": "error", "data": {"code": run.error_code, "detail": run.error}}
    finally:
        if not finished:
            if result is not None:
                result.cancel()
            await asyncio.shield(end_run(active, result=result, cancelled=True))
    yield done_event(run)
