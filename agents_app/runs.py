"""Running agents: prepare (check, reserve credits, record the run), execute or stream through the SDK,
finish (record output, items, usage and cost; settle or refund).

Preparation and finishing touch the database (each writes with one statement, built without I/O by
``run_start`` and ``finish_statement``); execution happens in the event loop and never touches the ORM.
Async callers run the sync ``prepare_run`` and ``finish_run`` through ``config.db.db_call``, or, on the run
hot path (agents_app/hot_path.py), ``pending_run_async`` (whose ``record`` sends the start) and
``finish_run_async``, which send the same statements through config.adb. Either way a run holds no database
connection while the model works.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import openai
from agents import Agent as SDKAgent
from agents import MaxTurnsExceeded, ModelBehaviorError, RunConfig, Runner, gen_trace_id, get_current_trace
from agents.exceptions import AgentsException
from agents.result import RunResultBase
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from openai.types.responses import ResponseTextDeltaEvent

from accounts_app.actor import Actor
from accounts_app.models import CreditReservation, ReservationStatus
from accounts_app.selectors import token_guard_cte
from accounts_app.services import credits_refund
from accounts_app.services.credits import credits_close_ctes, credits_refused, credits_take_ctes
from agents_app.definitions import AgentDefinition, agent_definition, cached_definition
from agents_app.exceptions import InvalidInputError, NotFoundError
from agents_app.models import Agent, AgentContext, AgentRun, Conversation, ConversationItem, RunStatus
from agents_app.runtime import Graph, RunContext, build_sdk_graph, load_graph, to_json, usage_meter
from agents_app.selectors import conversation_get
from config import adb
from config.db import db_call, insert_cte, update_set, value_connection
from config.errors import ApplicationError, ConflictError
from providers_app.egress import hold_provider_requests
from providers_app.failures import describe_failure
from providers_app.models import Provider, model_prices
from providers_app.runtime import ResolvedModel, build_model
from providers_app.selectors import local_provider, provider_for_run, provider_get
from traces_app import redaction

logger = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 100_000
_MILLION = Decimal(1_000_000)


@dataclass
class PreparedRun:
    """Everything a run needs, loaded before it starts."""

    run: AgentRun
    graph: Graph
    message: str
    context: RunContext
    conversation_id: int
    root_provider: Provider
    default_provider: Provider
    root_model: str
    max_turns: int
    history: list[Any] = field(default_factory=list)

    def run_input(self) -> list[Any]:
        """The conversation so far plus the new message: what the starting agent receives."""
        return [*self.history, user_item(self.message)]


def user_item(message: str) -> dict[str, Any]:
    return {"role": "user", "content": message}


def conversation_history(conversation_id: int) -> list[Any]:
    """Return the conversation's items, oldest first (Responses-format input items)."""
    return list(
        ConversationItem.objects.filter(conversation_id=conversation_id).order_by("id").values_list("data", flat=True)
    )


def _estimate_tokens(text: str) -> int:
    return len(text) // 3 + 1


def _reservation_amount(provider: Provider, model: str, message: str, instructions: str) -> Decimal:
    price_in, price_out = model_prices(provider, model)
    turns = settings.RUN_RESERVATION_TURNS
    worst = (
        (
            Decimal(_estimate_tokens(message + instructions)) * price_in
            + Decimal(settings.RUN_RESERVATION_OUTPUT_TOKENS) * price_out
        )
        * turns
        / _MILLION
    )
    return Decimal(settings.RUN_MIN_RESERVATION) + worst


def current_trace_id() -> str | None:
    """Return the id of the trace this code runs in (a workflow's), if any: a run started inside one is
    recorded under it, as the SDK will put its spans there."""
    trace = get_current_trace()
    return trace.trace_id if trace is not None and trace.trace_id != "no-op" else None


def check_message(message: object) -> str:
    """Return the message if a run can take it; raises InvalidInputError for an empty or oversized one."""
    if not isinstance(message, str) or not message.strip():
        raise InvalidInputError("Send a message.", fields={"message": "This field is required."})
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidInputError(
            "The message is too long.", fields={"message": f"At most {MAX_MESSAGE_CHARS} characters."}
        )
    return message


@dataclass(frozen=True)
class RunInputs:
    """What a run's start reads: the agent's definition and the rows the request names."""

    definition: AgentDefinition
    context: AgentContext | None
    conversation: Conversation | None
    history: list[Any]
    root_provider: Provider
    root_model: str


def run_inputs_need_queries(
    *, actor: Actor, agent_id: int, conversation_id: int | None, provider_id: int | None
) -> bool:
    """Return whether ``run_inputs`` would query the database (else it may be called on the event loop)."""
    return conversation_id is not None or provider_id is not None or cached_definition(actor, agent_id) is None


def run_inputs(
    *,
    actor: Actor,
    agent_id: int,
    context_id: int | None = None,
    conversation_id: int | None = None,
    provider_id: int | None = None,
) -> RunInputs:
    """Return what the run needs to start. Queries only for a definition not cached, a conversation or a provider.

    Raises NotFoundError for another workspace's agent, context, conversation or provider.
    """
    definition = agent_definition(actor=actor, agent_id=agent_id)
    agent = definition.agent
    context: AgentContext | None
    if context_id is not None:
        context = next((c for c in definition.contexts if c.pk == context_id), None)
        if context is None:
            raise NotFoundError("Context not found.")
    else:
        context = next((c for c in definition.contexts if c.is_default), None)
    conversation: Conversation | None = None
    history: list[Any] = []
    if conversation_id is not None:
        conversation = conversation_get(actor=actor, conversation_id=conversation_id)
        if conversation.agent_id != agent.pk:
            raise NotFoundError("Conversation not found for this agent.")
        history = conversation_history(conversation.pk)
    root_provider = (
        provider_get(actor=actor, provider_id=provider_id)
        if provider_id is not None
        else agent.provider or definition.default_provider
    )
    root_model = (
        (agent.model_name if provider_id is None else "")
        or root_provider.default_model
        or next(iter(root_provider.model_list()), "")
    )
    return RunInputs(
        definition=definition,
        context=context,
        conversation=conversation,
        history=history,
        root_provider=root_provider,
        root_model=root_model,
    )


@dataclass
class RunStart:
    """A run about to start: its rows (not saved yet) and the one statement that records them."""

    inputs: RunInputs
    run: AgentRun
    conversation: Conversation
    sql: str
    params: dict[str, Any]
    amount: Decimal


def run_start(
    *,
    actor: Actor,
    inputs: RunInputs,
    message: str,
    metadata: dict[str, Any] | None,
    mode: str,
    guard: tuple[str, dict[str, Any]] | None = None,
    ids: tuple[int, int | None] | None = None,
) -> RunStart:
    """Return the run's rows and the statement that takes the credits and records them (no query).

    ``guard`` is a ``(cte, params)`` pair whose CTE is named ``token_guard``: the statement then does
    nothing unless that CTE has a row (a token check folded into the start; see pending_run_async).
    ``ids`` are the primary keys of the run and of its new conversation (config.adb.next_id), when they
    must be known before the statement runs; else the database assigns them.
    """
    agent = inputs.definition.agent
    context = inputs.context
    run = AgentRun(
        pk=ids[0] if ids else None,
        workspace=actor.workspace,
        agent=agent,
        agent_name=agent.name,
        conversation=inputs.conversation,
        status=RunStatus.QUEUED if mode == "background" else RunStatus.RUNNING,
        mode=mode,
        input=message,
        context_name=context.name if context else "",
        context_data=dict(context.data) if context else {},
        provider=inputs.root_provider if inputs.root_provider.pk else None,
        provider_type=inputs.root_provider.type,
        model_name=inputs.root_model,
        trace_id=current_trace_id() or gen_trace_id(),
        metadata=metadata or {},
        created_by=actor.user,
        started_at=timezone.now(),
    )
    # One statement: take the credits, and only if they were taken, record the reservation, the new
    # conversation and the run. The balance is locked for that statement and its commit only.
    ctes, params, amount = credits_take_ctes(
        workspace=actor.workspace,
        amount=_reservation_amount(inputs.root_provider, inputs.root_model, message, agent.instructions),
        purpose=f"Run of {agent.name}",
        reserved_by=actor.user,
        only_if="token_guard" if guard else "",
    )
    parts = [ctes]
    if guard is not None:
        parts.insert(0, guard[0])
        params |= guard[1]
    computed = {"reservation_id": "credit_reservation.id"}
    conversation = inputs.conversation
    if conversation is None:
        conversation = Conversation(
            pk=ids[1] if ids else None,
            workspace=actor.workspace,
            agent=agent,
            title=message.strip()[:200],
            created_by=actor.user,
        )
        sql, conversation_params = insert_cte(conversation, name="run_conversation", source="credit_reservation")
        parts.append(sql)
        params |= conversation_params
        computed["conversation_id"] = "(SELECT id FROM run_conversation)"
    sql, run_params = insert_cte(
        run, name="run_row", source="credit_reservation", computed=computed, returning="id, conversation_id"
    )
    parts.append(sql)
    params |= run_params
    # The start of a run may commit without waiting for the disk (RUN_START_ASYNC_COMMIT): a crash can lose
    # only starts whose runs had not ended, each whole (credits, reservation and run together), because the
    # run's end commits durably and so flushes its start. This saves one disk flush per run.
    commit_mode = ", run_commit AS (SELECT set_config('synchronous_commit', 'off', true))"
    async_commit = settings.RUN_START_ASYNC_COMMIT
    statement = (
        f"WITH {', '.join(parts)}{commit_mode if async_commit else ''} "  # noqa: S608
        "SELECT run_row.id, run_row.conversation_id, credit_reservation.id "
        f"FROM run_row, credit_reservation{', run_commit' if async_commit else ''}"
    )
    return RunStart(inputs=inputs, run=run, conversation=conversation, sql=statement, params=params, amount=amount)


def started_run(start: RunStart, row: Sequence[Any], *, actor: Actor, message: str) -> PreparedRun:
    """Return the PreparedRun for a start whose statement returned ``row`` (the run's ids)."""
    start.run.pk, start.run.reservation_id = row[0], row[2]
    start.conversation.pk = row[1]
    return _prepared_run(start, actor=actor, message=message)


def _prepared_run(start: RunStart, *, actor: Actor, message: str) -> PreparedRun:
    run, conversation, inputs = start.run, start.conversation, start.inputs
    run._state.adding = False
    conversation._state.adding = False
    run.conversation = conversation
    context = inputs.context
    return PreparedRun(
        run=run,
        graph=inputs.definition.graph,
        message=message,
        context=RunContext(
            workspace_id=actor.workspace.pk,
            run_id=run.pk,
            context=dict(context.data) if context else {},
            metadata=run.metadata,
        ),
        conversation_id=conversation.pk,
        root_provider=inputs.root_provider,
        default_provider=inputs.definition.default_provider,
        root_model=inputs.root_model,
        history=inputs.history,
        max_turns=inputs.definition.agent.max_turns,
    )


def prepare_run(
    *,
    actor: Actor,
    agent_id: int,
    message: str,
    context_id: int | None = None,
    conversation_id: int | None = None,
    provider_id: int | None = None,
    metadata: dict[str, Any] | None = None,
    mode: str = "sync",
) -> PreparedRun:
    """Check the request, reserve credits and record a running AgentRun. Returns the PreparedRun.

    A run without ``conversation_id`` starts a new conversation; a background run is queued for the
    worker. Raises PermissionDeniedError for viewers, NotFoundError for another workspace's agent,
    context, conversation or provider, InvalidInputError for an empty or oversized message, and
    InsufficientCreditsError (402) when the workspace cannot cover the reservation.
    """
    actor.require_write()
    check_message(message)
    inputs = run_inputs(
        actor=actor,
        agent_id=agent_id,
        context_id=context_id,
        conversation_id=conversation_id,
        provider_id=provider_id,
    )
    start = run_start(actor=actor, inputs=inputs, message=message, metadata=metadata, mode=mode)
    with connection.cursor() as cursor:
        cursor.execute(start.sql, start.params)
        row = cursor.fetchone()
    if row is None:
        raise credits_refused(workspace=actor.workspace, amount=start.amount)
    prepared = started_run(start, row, actor=actor, message=message)
    if mode == "background":
        from agents_app.tasks import agent_run_execute as agent_run_execute_task

        agent_run_execute_task.delay_on_commit(run_id=prepared.run.pk)  # type: ignore[attr-defined]  # celery-types lacks it (Celery >= 5.4)
    return prepared


class RunNotStarted(Exception):
    """The hot path could not start the run; the caller hands the request to the full stack, which will
    answer with the proper error (the start wrote nothing)."""


@dataclass
class PendingRun:
    """A run ready to start on the event loop: its ids assigned, its start statement built, not yet sent.

    The hot path starts executing it (``execute_run(prepared, started=started)``) while ``record`` sends the
    start: the SDK's work before its first model request overlaps the statement's round trip, and the
    request itself waits for ``started`` (providers_app.egress.hold_provider_requests).
    """

    start: RunStart
    prepared: PreparedRun
    started: asyncio.Future[None]
    confirm_token: bool

    async def record(self) -> None:
        """Send the start statement. Sets ``started``'s result when it took the credits and recorded the run;
        otherwise cancels ``started`` (so no provider request is ever sent for it) and raises RunNotStarted
        (credits that cannot cover the run, or a token not confirmed: nothing was written) or the
        database's error."""
        try:
            row = await adb.fetchone(self.start.sql, self.start.params)
        except BaseException:
            self.started.cancel()
            raise
        if row is None:
            self.started.cancel()
            raise RunNotStarted("token or credits" if self.confirm_token else "credits")
        self.prepared.run.reservation_id = row[2]
        self.started.set_result(None)


async def pending_run_async(
    *,
    actor: Actor,
    agent_id: int,
    message: str,
    context_id: int | None = None,
    conversation_id: int | None = None,
    provider_id: int | None = None,
    metadata: dict[str, Any] | None = None,
    confirm_token: bool = False,
) -> PendingRun:
    """``prepare_run`` for the event loop, up to its statement: returns the PendingRun whose ``record`` sends it.

    Reads happen in a thread only when the definition is not cached or the request names a conversation or
    provider; the run's (and new conversation's) ids come from config.adb.next_id. With ``confirm_token``
    the actor is one remembered from an earlier token check (``api_token_recent_actor``), and the start's
    statement also confirms it (``token_guard_cte``): the run starts only if the token, the member's role
    and the workspace's configuration are unchanged. Sync runs only (background runs are queued on the
    Django connection's commit). Raises what ``prepare_run`` raises before its statement.
    """
    actor.require_write()
    check_message(message)
    read = functools.partial(
        run_inputs,
        actor=actor,
        agent_id=agent_id,
        context_id=context_id,
        conversation_id=conversation_id,
        provider_id=provider_id,
    )
    needs_queries = run_inputs_need_queries(
        actor=actor, agent_id=agent_id, conversation_id=conversation_id, provider_id=provider_id
    )
    inputs = await db_call(read) if needs_queries else read()
    ids = (
        await adb.next_id(AgentRun),
        await adb.next_id(Conversation) if inputs.conversation is None else None,
    )
    guard = token_guard_cte(actor) if confirm_token else None
    start = run_start(actor=actor, inputs=inputs, message=message, metadata=metadata, mode="sync", guard=guard, ids=ids)
    return PendingRun(
        start=start,
        prepared=_prepared_run(start, actor=actor, message=message),
        started=asyncio.get_running_loop().create_future(),
        confirm_token=confirm_token,
    )


def load_prepared(run: AgentRun) -> PreparedRun:
    """Rebuild what a queued run needs from its row (for the background worker).

    Raises NotFoundError when the agent was deleted meanwhile.
    """
    agent = (
        Agent.objects.filter(pk=run.agent_id).select_related("provider", "workspace").first() if run.agent_id else None
    )
    if agent is None:
        raise NotFoundError("The agent was deleted before its run could start.")
    default_provider = provider_for_run(workspace=agent.workspace)
    if run.provider_id:
        root_provider = Provider.objects.get(pk=run.provider_id)
    elif run.provider_type == "local":
        root_provider = local_provider(workspace=agent.workspace)
    else:
        root_provider = agent.provider or default_provider
    return PreparedRun(
        run=run,
        graph=load_graph(root=agent),
        message=run.input,
        context=RunContext(
            workspace_id=run.workspace_id, run_id=run.pk, context=run.context_data, metadata=run.metadata
        ),
        conversation_id=run.conversation_id or 0,
        root_provider=root_provider,
        default_provider=default_provider,
        root_model=run.model_name,
        max_turns=agent.max_turns,
        history=conversation_history(run.conversation_id) if run.conversation_id else [],
    )


@transaction.atomic
def fail_unstarted_run(*, run_id: int, error: ApplicationError) -> AgentRun:
    """End a run that could not start (its agent is gone): failed, with the reason, credits refunded."""
    run = AgentRun.objects.select_for_update().get(pk=run_id)
    if run.is_terminal:
        return run
    run.status, run.error, run.error_code = RunStatus.FAILED, error.message, error.code
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "error_code", "finished_at"])
    reservation = (
        CreditReservation.objects.filter(pk=run.reservation_id, status="open").first() if run.reservation_id else None
    )
    if reservation is not None:
        credits_refund(reservation=reservation, reason=f"Run {run.pk} failed before starting")
    return run


ABANDONED_MESSAGES = {
    RunStatus.RUNNING: "The run stopped without finishing (its server process ended); its credits were refunded.",
    RunStatus.QUEUED: "No worker started the run in time; its credits were refunded.",
}


def fail_abandoned_runs(*, older_than: timedelta | None = None, now: datetime | None = None) -> int:
    """Fail every run still queued or running CREDITS_RESERVATION_TTL_SECONDS after it was created, and
    refund its reservation. Returns how many runs it failed.

    Every live run ends before then (RUN_TIMEOUT_SECONDS and the Celery time limit are shorter, which the
    settings enforce), so such a run's process died: without this it would stay "running" for ever. A run
    that is swept cannot be finished later (its end only claims unfinished runs).
    """
    ttl = older_than if older_than is not None else timedelta(seconds=settings.CREDITS_RESERVATION_TTL_SECONDS)
    cutoff = (now or timezone.now()) - ttl
    failed = 0
    for status, message in ABANDONED_MESSAGES.items():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_RUN_TABLE} SET status = %s, error = %s, error_code = %s, finished_at = %s "  # noqa: S608
                "WHERE status = %s AND created_at < %s RETURNING id, reservation_id",
                [RunStatus.FAILED, message, "abandoned", timezone.now(), status, cutoff],
            )
            rows = cursor.fetchall()
        failed += len(rows)
        reservation_ids = [reservation_id for _, reservation_id in rows if reservation_id]
        open_reservations = CreditReservation.objects.filter(pk__in=reservation_ids, status=ReservationStatus.OPEN)
        for reservation in open_reservations.select_related("workspace"):
            try:
                credits_refund(reservation=reservation, reason="Released: the run was abandoned")
            except ConflictError:
                continue  # closed meanwhile
        for run_id, _ in rows:
            logger.warning("Run %s was %s past its time and is now failed (abandoned)", run_id, status)
    return failed


def claim_queued_run(run_id: int) -> AgentRun | None:
    """Move a queued run to running; return it, or None when another worker got it (or it is not queued)."""
    claimed = AgentRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    return AgentRun.objects.get(pk=run_id) if claimed == 1 else None


def _resolver(prepared: PreparedRun) -> Any:
    def resolve(row: Agent) -> ResolvedModel:
        if row.pk == prepared.graph.root_id:
            return build_model(
                provider=prepared.root_provider, model_name=prepared.root_model, settings=row.model_settings
            )
        return build_model(
            provider=row.provider or prepared.default_provider, model_name=row.model_name, settings=row.model_settings
        )

    return resolve


# Built SDK agents, per event loop (their models hold the loop's clients) and per loaded graph (the
# definition cache keeps one Graph per configuration version). Building them costs more than half a
# millisecond of CPU per run; the SDK does not change an agent while it runs it, so runs share them.
_sdk_agents: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Graph, dict[tuple[Any, ...], SDKAgent[RunContext]]]
] = weakref.WeakKeyDictionary()


def sdk_agent(prepared: PreparedRun) -> SDKAgent[RunContext]:
    """Return the SDK agent (handoffs and agent tools wired) for the run, built once per graph and models.

    Must be called in the event loop that will run it.
    """
    by_graph = _sdk_agents.setdefault(asyncio.get_running_loop(), weakref.WeakKeyDictionary())
    built = by_graph.setdefault(prepared.graph, {})
    key = (
        prepared.root_provider.pk,
        prepared.root_provider.updated_at,
        prepared.root_model,
        prepared.default_provider.pk,
        prepared.default_provider.updated_at,
    )
    agent = built.get(key)
    if agent is None:
        agent = built[key] = build_sdk_graph(prepared.graph, _resolver(prepared))
    return agent


def run_secrets(prepared: PreparedRun) -> list[str]:
    """Return the secrets this run's models are called with (provider keys and extra header values)."""
    providers = {p.pk: p for p in (*prepared.graph.providers(), prepared.root_provider, prepared.default_provider)}
    secrets: list[str] = []
    for provider in providers.values():
        secrets.append(provider.api_key or "")
        secrets.extend(str(value) for value in (provider.extra_headers or {}).values())
    return secrets


def _run_config(prepared: PreparedRun) -> RunConfig:
    # Its trace must never store the keys the run uses (traces_app/redaction.py).
    redaction.remember(prepared.run.trace_id, run_secrets(prepared))
    return RunConfig(
        workflow_name=prepared.run.agent_name,
        trace_id=prepared.run.trace_id,
        group_id=str(prepared.conversation_id),
        trace_metadata={
            "workspace_id": str(prepared.context.workspace_id),
            "run_id": str(prepared.run.pk),
            "agent_id": str(prepared.graph.root_id),
        },
    )


def run_usage(prepared: PreparedRun, result: RunResultBase | None) -> tuple[dict[str, Any], Decimal]:
    """Return the run's usage (its totals, and ``agents``: per agent and model) and what its tokens cost.

    Each agent's model requests are priced at the provider and model that agent ran on (runtime.UsageMeter);
    tokens the totals hold beyond what the meters saw (none are expected) at the starting agent's prices.
    """
    metered = list(prepared.context.usage.values())
    cost = sum((entry.cost for entry in metered), Decimal(0))
    usage: dict[str, Any] = {}
    if result is not None:
        totals = result.context_wrapper.usage
        usage = {
            "requests": totals.requests,
            "input_tokens": totals.input_tokens,
            "output_tokens": totals.output_tokens,
            "total_tokens": totals.total_tokens,
        }
        unmetered_in = totals.input_tokens - sum(entry.input_tokens for entry in metered)
        unmetered_out = totals.output_tokens - sum(entry.output_tokens for entry in metered)
        if unmetered_in > 0 or unmetered_out > 0:
            price_in, price_out = model_prices(prepared.root_provider, prepared.root_model)
            cost += (Decimal(max(unmetered_in, 0)) * price_in + Decimal(max(unmetered_out, 0)) * price_out) / _MILLION
    if metered:
        usage["agents"] = [entry.as_json() for entry in metered]
    return usage, cost


class RunTimedOut(Exception):
    """The run reached RUN_TIMEOUT_SECONDS."""


def describe_run_error(exc: BaseException, prepared: PreparedRun) -> ApplicationError:
    """Return the error a failed run reports: what went wrong, never a secret or a stack trace."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, openai.OpenAIError):
        return describe_failure(exc, prepared.root_provider)
    if isinstance(exc, RunTimedOut):
        return ApplicationError(
            f"The run took longer than {settings.RUN_TIMEOUT_SECONDS} s (RUN_TIMEOUT_SECONDS) and was stopped.",
            code="run_timeout",
        )
    if isinstance(exc, MaxTurnsExceeded):
        return ApplicationError(
            f"The agent did not finish within {prepared.max_turns} turns (max_turns).", code="max_turns_exceeded"
        )
    if isinstance(exc, ModelBehaviorError):
        return ApplicationError(str(exc), code="output_invalid")
    if isinstance(exc, AgentsException):
        return ApplicationError(f"The run failed: {exc}", code="run_error")
    logger.exception("Run %s failed unexpectedly", prepared.run.pk, exc_info=exc)
    return ApplicationError(f"The run failed unexpectedly ({type(exc).__name__}).", code="run_error")


_RUN_TABLE = AgentRun._meta.db_table
_ITEM_TABLE = ConversationItem._meta.db_table
_FINISH_FIELDS = (
    "status",
    "finished_at",
    "duration_ms",
    "usage",
    "new_items",
    "last_agent_name",
    "final_output",
    "cost",
    "error",
    "error_code",
)


def finish_statement(
    prepared: PreparedRun,
    *,
    result: RunResultBase | None,
    error: BaseException | None = None,
    cancelled: bool = False,
) -> tuple[str, dict[str, Any]]:
    """Set the run's outcome on ``prepared.run`` and return the statement that records it (no query).

    The statement returns one row: whether it claimed the run (1 or 0) and how many credit entries it wrote.
    """
    run = prepared.run
    now = timezone.now()
    run.finished_at = now
    run.duration_ms = int((now - run.started_at).total_seconds() * 1000) if run.started_at else None
    run.usage, cost = run_usage(prepared, result)
    if result is not None:
        run.new_items = to_json([item.to_input_item() for item in result.new_items])
        run.last_agent_name = result.last_agent.name if result.last_agent else ""
    if error is None and not cancelled and result is not None:
        output = result.final_output
        run.final_output = to_json(output) if not isinstance(output, str) else output
        run.status = RunStatus.SUCCEEDED
        run.cost = cost
    else:
        failure = describe_run_error(error, prepared) if error is not None else None
        run.status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
        run.error = failure.message if failure else "Cancelled: the client went away."
        run.error_code = failure.code if failure else "cancelled"
    assignments, params = update_set(run, _FINISH_FIELDS, name="run")
    ctes = [
        f"run_claimed AS (UPDATE {_RUN_TABLE} SET {assignments} "  # noqa: S608 (names from model metadata)
        "WHERE id = %(run_id)s AND status IN ('queued', 'running') RETURNING id)"
    ]
    params["run_id"] = run.pk
    succeeded = run.status == RunStatus.SUCCEEDED
    if succeeded and run.conversation_id:
        # The conversation remembers completed turns only: the message and everything the run produced,
        # in order (the history is read back by id).
        ctes.append(
            f"run_items AS (INSERT INTO {_ITEM_TABLE} (conversation_id, data, created_at) "  # noqa: S608
            "SELECT %(run_conversation)s, item.value, %(run_now)s "
            "FROM run_claimed, jsonb_array_elements(%(run_items)s) WITH ORDINALITY AS item(value, n) "
            "ORDER BY item.n)"
        )
        params |= {
            "run_conversation": run.conversation_id,
            "run_now": now,
            "run_items": ConversationItem._meta.get_field("data").get_db_prep_save(
                [user_item(prepared.message), *run.new_items], value_connection()
            ),
        }
    if run.reservation_id:
        credit_ctes, credit_params = credits_close_ctes(
            reservation_id=run.reservation_id,
            status=ReservationStatus.SETTLED if succeeded else ReservationStatus.REFUNDED,
            cost=run.cost if succeeded else 0,
            memo=f"Run {run.pk} {run.status}",
            only_if="run_claimed",
        )
        ctes.append(credit_ctes)
        params |= credit_params
        moved = "(SELECT count(*) FROM credit_entry)"
    else:
        moved = "0"
    return f"WITH {', '.join(ctes)} SELECT (SELECT count(*) FROM run_claimed), {moved}", params  # noqa: S608


def _check_credited(run: AgentRun, credited: int) -> None:
    if run.reservation_id and not credited:
        # Its reservation was released meanwhile (the run outlived CREDITS_RESERVATION_TTL_SECONDS).
        logger.warning("Run %s ended after its reservation was closed; its cost was not charged", run.pk)


def finish_run(
    prepared: PreparedRun,
    *,
    result: RunResultBase | None,
    error: BaseException | None = None,
    cancelled: bool = False,
) -> AgentRun:
    """Record how the run ended and settle its credits, in one statement. Returns the AgentRun.

    Success settles at the real cost and adds the turn to the conversation; failure and cancellation
    refund the reservation. Idempotent: the outcome is written by a conditional UPDATE that only an
    unfinished run matches, and the conversation and credits move only with it; a run finished already
    is returned as it is.
    """
    sql, params = finish_statement(prepared, result=result, error=error, cancelled=cancelled)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        claimed, credited = cursor.fetchone()
    if claimed != 1:
        return AgentRun.objects.get(pk=prepared.run.pk)
    _check_credited(prepared.run, credited)
    return prepared.run


async def finish_run_async(
    prepared: PreparedRun,
    *,
    result: RunResultBase | None,
    error: BaseException | None = None,
    cancelled: bool = False,
) -> AgentRun:
    """``finish_run`` for the event loop: the same statement, through config.adb."""
    sql, params = finish_statement(prepared, result=result, error=error, cancelled=cancelled)
    row = await adb.fetchone(sql, params)
    claimed, credited = row if row is not None else (0, 0)
    if claimed != 1:
        return await db_call(AgentRun.objects.get, pk=prepared.run.pk)
    _check_credited(prepared.run, credited)
    return prepared.run


Finisher = Callable[..., Awaitable[AgentRun]]


async def finish_run_in_thread(
    prepared: PreparedRun,
    *,
    result: RunResultBase | None,
    error: BaseException | None = None,
    cancelled: bool = False,
) -> AgentRun:
    """``finish_run`` from async code, through a database thread (config.db.db_call)."""
    return await db_call(finish_run, prepared, result=result, error=error, cancelled=cancelled)


async def _was_started(started: asyncio.Future[None] | None) -> bool:
    """Wait for ``started`` to be settled; return whether the run's start was recorded (None: it was)."""
    if started is None:
        return True
    if not started.done():
        await asyncio.wait((started,))
    return not started.cancelled()


async def execute_run(
    prepared: PreparedRun,
    *,
    finish: Finisher = finish_run_in_thread,
    started: asyncio.Future[None] | None = None,
) -> AgentRun:
    """Run to the end and return the finished AgentRun (succeeded or failed; never raises for run errors).

    ``finish`` records the end: through a database thread by default, or ``finish_run_async``. ``started``
    (PendingRun.started) is for a run whose start statement may still be in flight: its provider requests
    wait for it, and if it is cancelled (the start wrote nothing) the run records nothing and raises the
    error or cancellation that stopped it.
    """
    if started is not None:
        hold_provider_requests(started)  # this task's context only
    result: RunResultBase | None = None
    try:
        root_agent = sdk_agent(prepared)
        try:
            async with asyncio.timeout(settings.RUN_TIMEOUT_SECONDS):
                result = await Runner.run(
                    root_agent,
                    prepared.run_input(),
                    context=prepared.context,
                    hooks=usage_meter(root_agent),
                    max_turns=prepared.max_turns,
                    run_config=_run_config(prepared),
                )
        except TimeoutError:
            raise RunTimedOut from None
    except asyncio.CancelledError:
        if await _was_started(started):
            await asyncio.shield(finish(prepared, result=result, cancelled=True))
        raise
    except Exception as exc:
        if not await _was_started(started):
            raise
        return await finish(prepared, result=result, error=exc)
    if not await _was_started(started):  # cannot happen: a run's result needs a model request
        raise RunNotStarted("the run ended before its start was recorded")
    return await finish(prepared, result=result)


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": name, "data": data}


def _translate(event: Any) -> dict[str, Any] | None:
    """Map an SDK stream event to one of ours (text, tool_call, tool_output, handoff, agent), or None."""
    if event.type == "raw_response_event":
        if isinstance(event.data, ResponseTextDeltaEvent):
            return _event("text", {"delta": event.data.delta})
        return None
    if event.type == "agent_updated_stream_event":
        return _event("agent", {"name": event.new_agent.name})
    if event.type == "run_item_stream_event":
        item = event.item
        if event.name == "tool_called":
            raw = item.raw_item
            return _event(
                "tool_call",
                {
                    "name": getattr(raw, "name", ""),
                    "arguments": getattr(raw, "arguments", ""),
                    "call_id": getattr(raw, "call_id", ""),
                },
            )
        if event.name == "tool_output":
            raw = item.raw_item
            call_id = raw.get("call_id", "") if isinstance(raw, dict) else getattr(raw, "call_id", "")
            return _event("tool_output", {"call_id": call_id, "output": to_json(item.output)})
        if event.name == "handoff_occured":
            return _event("handoff", {"from": item.source_agent.name, "to": item.target_agent.name})
    return None


def run_response(run: AgentRun) -> dict[str, Any]:
    """Return the body of a finished run's answer, as the API documents it (AgentRunResponse)."""
    return {
        "run_id": run.pk,
        "status": run.status,
        "output": run.final_output,
        "messages": run.new_items,
        "usage": run.usage or {},
        "cost": run.cost,
        "trace_id": run.trace_id,
        "conversation_id": run.conversation_id,
        "last_agent": run.last_agent_name,
    }


def run_error_response(run: AgentRun) -> dict[str, Any]:
    """Return the body of a failed run's answer (RunErrorOut, status 502)."""
    return {"detail": run.error, "code": run.error_code, "run_id": run.pk}


def done_payload(run: AgentRun) -> dict[str, Any]:
    return {
        "run_id": run.pk,
        "status": run.status,
        "output": run.final_output,
        "usage": run.usage,
        "trace_id": run.trace_id,
        "conversation_id": run.conversation_id,
        "cost": str(run.cost),
        "error": run.error or None,
        "code": run.error_code or None,
    }


async def stream_run(prepared: PreparedRun) -> AsyncIterator[dict[str, Any]]:
    """Yield our stream events, then ``done`` with the finished run (or ``error`` then ``done``).

    If the consumer stops (the client went away), the SDK run is cancelled at once and the run is
    recorded as cancelled with its credits refunded: an abandoned stream must not keep spending.
    """
    yield _event(
        "run",
        {
            "run_id": prepared.run.pk,
            "conversation_id": prepared.conversation_id,
            "agent": prepared.run.agent_name,
            "trace_id": prepared.run.trace_id,
        },
    )
    result = None
    finished = False
    try:
        root_agent = sdk_agent(prepared)
        result = Runner.run_streamed(
            root_agent,
            prepared.run_input(),
            context=prepared.context,
            hooks=usage_meter(root_agent),
            max_turns=prepared.max_turns,
            run_config=_run_config(prepared),
        )
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
                translated = _translate(event)
                if translated is not None:
                    yield translated
        finally:
            deadline.cancel()
        if timed_out:
            raise RunTimedOut
        run = await finish_run_in_thread(prepared, result=result)
        finished = True
    except (asyncio.CancelledError, GeneratorExit):
        raise
    except Exception as exc:
        run = await finish_run_in_thread(prepared, result=result, error=exc)
        finished = True
        yield _event("error", {"code": run.error_code, "detail": run.error})
    finally:
        if not finished:
            if result is not None:
                result.cancel()
            await asyncio.shield(finish_run_in_thread(prepared, result=result, cancelled=True))
    yield _event("done", done_payload(run))


def sse(event: dict[str, Any]) -> bytes:
    """Encode one event as Server-Sent Events."""
    return f"event: {event['event']}\ndata: {json.dumps(event['data'], ensure_ascii=False)}\n\n".encode()
