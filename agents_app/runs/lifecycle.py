"""A run's start and end: ``start_run`` checks the request and records the run, ``end_run`` records how it
ended. Every entry point goes through both; each sends one statement (agents_app/runs/statements.py)
through config.adb, so a run holds no database connection while its model works."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.exceptions import AgentsException
from agents.result import RunResultBase

from accounts_app.actor import Actor
from accounts_app.services.credits import credits_refused
from agents_app.models import AgentRun
from agents_app.runs.inputs import check_message, inputs_need_queries, read_inputs, user_item
from agents_app.runs.statements import (
    blocked_outcome,
    describe_run_error,
    end_statement,
    run_usage,
    start_statement,
)
from agents_app.runtime import Graph, RunContext
from config import adb
from config.db import db_call
from providers_app.models import Provider

logger = logging.getLogger(__name__)


@dataclass
class ActiveRun:
    """A run recorded as started (or claimed by the worker), with everything its execution needs."""

    run: AgentRun
    graph: Graph
    context: RunContext
    root_provider: Provider
    default_provider: Provider
    root_model: str
    max_turns: int
    history: list[Any] = field(default_factory=list)

    def run_input(self) -> list[Any]:
        """The conversation so far plus the new message: what the starting agent receives."""
        return [*self.history, user_item(self.run.input)]


async def start_run(
    *,
    actor: Actor,
    agent_id: int,
    message: str,
    context_id: int | None = None,
    conversation_id: int | None = None,
    provider_id: int | None = None,
    metadata: dict[str, Any] | None = None,
    mode: str = "sync",
    extra_context: dict[str, Any] | None = None,
) -> ActiveRun:
    """Check the request, take the run's credits and record it: running, or queued when ``mode`` is
    ``"background"`` (the caller hands it to the worker). Returns the ActiveRun.

    A run without ``conversation_id`` starts a new conversation. ``extra_context`` is laid over the context's
    content (a workflow step's ``workflow_results``); the run records and receives the result. Reads happen in a
    database thread only when the agent's definition is not cached or the request names a conversation or provider.
    Raises PermissionDeniedError for viewers, NotFoundError for another workspace's agent, context, conversation
    or provider, InvalidInputError for an empty or oversized message, and InsufficientCreditsError (402)
    when the workspace cannot cover the reservation; nothing is written then. Cancelled while its statement runs,
    a run that was recorded all the same is ended as cancelled (refunded) before the cancellation goes on.
    """
    actor.require_write()
    check_message(message)
    read = functools.partial(
        read_inputs,
        actor=actor,
        agent_id=agent_id,
        context_id=context_id,
        conversation_id=conversation_id,
        provider_id=provider_id,
    )
    needs_queries = inputs_need_queries(
        actor=actor, agent_id=agent_id, conversation_id=conversation_id, provider_id=provider_id
    )
    inputs = await db_call(read) if needs_queries else read()
    start = start_statement(
        actor=actor, inputs=inputs, message=message, metadata=metadata or {}, mode=mode, extra_context=extra_context
    )

    def started(row: Sequence[Any]) -> ActiveRun:
        run = start.recorded(row)
        return ActiveRun(
            run=run,
            graph=inputs.definition.graph,
            context=RunContext(
                workspace_id=actor.workspace.pk, run_id=run.pk, context=run.context_data, metadata=run.metadata
            ),
            root_provider=inputs.root_provider,
            default_provider=inputs.definition.default_provider,
            root_model=inputs.root_model,
            max_turns=inputs.definition.agent.max_turns,
            history=inputs.history,
        )

    recording = asyncio.ensure_future(adb.fetchone(start.sql, start.params))
    try:
        row = await asyncio.shield(recording)
    except asyncio.CancelledError:
        # Cancelled (the client went away) while the statement ran: it may commit all the same. Then the run is
        # ended as cancelled, its credits refunded, so that none is left open until the abandoned-run sweep.
        with contextlib.suppress(Exception):
            recorded = await recording
            if recorded is not None:
                await end_run(started(recorded), result=None, cancelled=True)
        raise
    if row is None:
        raise await db_call(credits_refused, workspace=actor.workspace, amount=start.amount)
    return started(row)


async def end_run(
    active: ActiveRun, *, result: RunResultBase | None, error: BaseException | None = None, cancelled: bool = False
) -> AgentRun:
    """Record how the run ended and settle its credits, in one statement. Returns the finished AgentRun.

    Success settles at the real cost and adds the turn to the conversation; a guardrail's tripwire (an
    ``error``) records the run as blocked at the cost of the requests made; any other failure and
    cancellation refund the reservation. Idempotent: only an unfinished run is claimed, and the conversation
    and credits move only with it; a run ended already (or swept as abandoned) is returned as recorded.
    """
    blocked = blocked_outcome(error, active) if error is not None else None
    run_data = error.run_data if blocked is not None and isinstance(error, AgentsException) else None
    usage, cost = run_usage(active, result or run_data)
    failure = describe_run_error(error, active) if error is not None and blocked is None else None
    sql, params = end_statement(
        active.run,
        result=result,
        usage=usage,
        cost=cost,
        verdicts=active.context.verdicts,
        citations=active.context.citations,
        failure=failure,
        cancelled=cancelled,
        blocked=blocked,
    )
    row = await adb.fetchone(sql, params)
    claimed, credited = row if row is not None else (0, 0)
    if claimed != 1:
        return await db_call(AgentRun.objects.get, pk=active.run.pk)
    if active.run.reservation_id and not credited:
        # Its reservation was released meanwhile (the run outlived CREDITS_RESERVATION_TTL_SECONDS).
        logger.warning("Run %s ended after its reservation was closed; its cost was not charged", active.run.pk)
    return active.run
