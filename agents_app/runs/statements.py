"""The two statements that record a run, built without I/O: its start (credits taken, and only then the
reservation, the new conversation and the run inserted) and its end (the outcome, the conversation's new
turn, the credits settled or refunded). Each is one round trip and commits on its own, so a run holds no
database connection, and no lock, while its model works."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import openai
from agents import (
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OutputGuardrailTripwireTriggered,
    gen_trace_id,
    get_current_trace,
)
from agents.exceptions import AgentsException, RunErrorDetails
from agents.result import RunResultBase
from django.conf import settings
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.models import ReservationStatus
from accounts_app.services.credits import credits_close_ctes, credits_take_ctes
from agents_app.guardrails import Kind, default_message
from agents_app.models import AgentRun, Conversation, ConversationItem, RunStatus
from agents_app.runs.inputs import RunInputs, user_item
from agents_app.runtime import to_json
from config.db import insert_cte, update_set, value_connection
from config.errors import ApplicationError
from providers_app.failures import describe_failure
from providers_app.models import Provider, model_prices

if TYPE_CHECKING:
    from agents_app.runs.lifecycle import ActiveRun

logger = logging.getLogger(__name__)
_MILLION = Decimal(1_000_000)
_RUN_TABLE = AgentRun._meta.db_table
_ITEM_TABLE = ConversationItem._meta.db_table
# A run's cost as its column stores it, so that a run just ended reads as it will when loaded again.
_COST_STEP = Decimal(1).scaleb(-AgentRun._meta.get_field("cost").decimal_places)


def _estimate_tokens(text: str) -> int:
    return len(text) // 3 + 1


def reservation_amount(provider: Provider, model: str, message: str, instructions: str) -> Decimal:
    """Return the credits a run reserves at its start: a minimum plus a worst case of its turns' tokens."""
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


@dataclass
class StartStatement:
    """A run about to start: its rows (not saved yet) and the one statement that records them."""

    inputs: RunInputs
    run: AgentRun
    conversation: Conversation
    sql: str
    params: dict[str, Any]
    amount: Decimal

    def recorded(self, row: Sequence[Any]) -> AgentRun:
        """Return the run, with the ids from the statement's ``row`` (run, conversation, reservation) set."""
        run, conversation = self.run, self.conversation
        run.pk, conversation.pk, run.reservation_id = row[0], row[1], row[2]
        run._state.adding = conversation._state.adding = False
        run.conversation = conversation
        return run


def start_statement(
    *,
    actor: Actor,
    inputs: RunInputs,
    message: str,
    metadata: dict[str, Any],
    mode: str,
    extra_context: dict[str, Any] | None = None,
) -> StartStatement:
    """Return the run's rows and the statement that takes the credits and records them (no query).

    The statement returns (run id, conversation id, reservation id), or no row when the workspace's credits
    cannot cover the reservation, in which case it wrote nothing.
    """
    agent = inputs.definition.agent
    context = inputs.context
    run = AgentRun(
        workspace=actor.workspace,
        agent=agent,
        agent_name=agent.name,
        conversation=inputs.conversation,
        status=RunStatus.QUEUED if mode == "background" else RunStatus.RUNNING,
        mode=mode,
        input=message,
        context_name=context.name if context else "",
        context_data={**(context.content if context else {}), **(extra_context or {})},
        provider=inputs.root_provider if inputs.root_provider.pk else None,
        provider_type=inputs.root_provider.type,
        model_name=inputs.root_model,
        trace_id=current_trace_id() or gen_trace_id(),
        metadata=metadata,
        created_by=actor.user,
        started_at=timezone.now(),
    )
    # One statement: take the credits, and only if they were taken, record the reservation, the new
    # conversation and the run. The balance is locked for that statement and its commit only.
    ctes, params, amount = credits_take_ctes(
        workspace=actor.workspace,
        amount=reservation_amount(inputs.root_provider, inputs.root_model, message, agent.instructions),
        purpose=f"Run of {agent.name}",
        reserved_by=actor.user,
    )
    parts = [ctes]
    computed = {"reservation_id": "credit_reservation.id"}
    conversation = inputs.conversation
    if conversation is None:
        conversation = Conversation(
            workspace=actor.workspace, agent=agent, title=message.strip()[:200], created_by=actor.user
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
    # The start may commit without waiting for the disk (RUN_START_ASYNC_COMMIT): a crash can lose only
    # starts whose runs had not ended, each whole (credits, reservation and run together), because the run's
    # end commits durably and so flushes its start.
    commit_mode = ", run_commit AS (SELECT set_config('synchronous_commit', 'off', true))"
    async_commit = settings.RUN_START_ASYNC_COMMIT
    statement = (
        f"WITH {', '.join(parts)}{commit_mode if async_commit else ''} "  # noqa: S608
        "SELECT run_row.id, run_row.conversation_id, credit_reservation.id "
        f"FROM run_row, credit_reservation{', run_commit' if async_commit else ''}"
    )
    return StartStatement(
        inputs=inputs, run=run, conversation=conversation, sql=statement, params=params, amount=amount
    )


class RunTimedOut(Exception):
    """The run reached RUN_TIMEOUT_SECONDS."""


def describe_run_error(exc: BaseException, active: ActiveRun) -> ApplicationError:
    """Return the error a failed run reports: what went wrong, never a secret or a stack trace."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, openai.OpenAIError):
        return describe_failure(exc, active.root_provider)
    if isinstance(exc, RunTimedOut):
        return ApplicationError(
            f"The run took longer than {settings.RUN_TIMEOUT_SECONDS} s (RUN_TIMEOUT_SECONDS) and was stopped.",
            code="run_timeout",
        )
    if isinstance(exc, MaxTurnsExceeded):
        return ApplicationError(
            f"The agent did not finish within {active.max_turns} turns (max_turns).", code="max_turns_exceeded"
        )
    if isinstance(exc, ModelBehaviorError):
        return ApplicationError(str(exc), code="output_invalid")
    if isinstance(exc, AgentsException):
        return ApplicationError(f"The run failed: {exc}", code="run_error")
    logger.exception("Run %s failed unexpectedly", active.run.pk, exc_info=exc)
    return ApplicationError(f"The run failed unexpectedly ({type(exc).__name__}).", code="run_error")


def run_usage(active: ActiveRun, result: RunResultBase | RunErrorDetails | None) -> tuple[dict[str, Any], Decimal]:
    """Return the run's usage (its totals, and ``agents``: per agent and model) and what its tokens cost.

    Each agent's model requests are priced at the provider and model that agent ran on (runtime.UsageMeter);
    tokens the totals hold beyond what the meters saw (none are expected) at the starting agent's prices.
    """
    metered = list(active.context.usage.values())
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
            price_in, price_out = model_prices(active.root_provider, active.root_model)
            cost += (Decimal(max(unmetered_in, 0)) * price_in + Decimal(max(unmetered_out, 0)) * price_out) / _MILLION
    if metered:
        usage["agents"] = [entry.as_json() for entry in metered]
    return usage, cost.quantize(_COST_STEP)


# The columns a run's end writes: none is indexed, so the end can update the row in place (a test checks).
END_FIELDS = (
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
    "guardrails",
    "citations",
)


@dataclass
class Blocked:
    """A run a guardrail stopped: the tripped verdict, and what the run shows and the conversation keeps.

    A blocked input keeps nothing (the message must not reach the model on a later turn); a blocked output
    keeps the turn with the guardrail's message in place of the answer.
    """

    verdict: dict[str, Any]
    items: list[dict[str, Any]]
    last_agent: str
    keep_turn: bool


def blocked_outcome(exc: BaseException, active: ActiveRun) -> Blocked | None:
    """Return how a guardrail's tripwire ended the run, or None when ``exc`` is not a tripwire."""
    if not isinstance(exc, InputGuardrailTripwireTriggered | OutputGuardrailTripwireTriggered):
        return None
    kind: Kind = "input" if isinstance(exc, InputGuardrailTripwireTriggered) else "output"
    name = exc.guardrail_result.guardrail.get_name()
    verdict = next(
        (v for v in active.context.verdicts if v["type"] == kind and v["name"] == name and v["tripwire_triggered"]),
        {"type": kind, "name": name, "tripwire_triggered": True, "message": default_message(kind, name)},
    )
    data = exc.run_data
    last_agent = data.last_agent.name if data is not None and data.last_agent else ""
    if kind == "input":
        return Blocked(verdict=verdict, items=[], last_agent=last_agent, keep_turn=False)
    items = [item.to_input_item() for item in data.new_items] if data is not None else []
    # The answer's messages are withheld; the steps before them (tool calls and their outputs) are kept.
    while items and isinstance(items[-1], dict) and items[-1].get("type") == "message":
        items.pop()
    replacement = {"role": "assistant", "content": verdict["message"]}
    return Blocked(verdict=verdict, items=[*to_json(items), replacement], last_agent=last_agent, keep_turn=True)


def end_statement(
    run: AgentRun,
    *,
    result: RunResultBase | None,
    usage: dict[str, Any],
    cost: Decimal,
    verdicts: list[dict[str, Any]] | None = None,
    citations: list[dict[str, Any]] | None = None,
    failure: ApplicationError | None = None,
    cancelled: bool = False,
    blocked: Blocked | None = None,
) -> tuple[str, dict[str, Any]]:
    """Set the run's outcome on ``run`` and return the statement that records it (no query).

    Success (a ``result``, no ``failure``, not ``cancelled``) records the output and the conversation's new
    turn (``run.input`` and what the run produced) and settles the credits at ``cost``; ``blocked`` (a guardrail
    tripped) records its message as the output, keeps the turn only for a blocked output, and settles at
    ``cost`` (what was really asked of models); failure and cancellation refund them. ``verdicts``: every
    guardrail check; ``citations``: what its file searches found. The statement returns one row: whether it
    claimed the run (1 or 0: only an unfinished run is claimed, so ending twice changes nothing) and how many
    credit entries it wrote.
    """
    now = timezone.now()
    run.finished_at = now
    run.duration_ms = int((now - run.started_at).total_seconds() * 1000) if run.started_at else None
    run.usage = usage
    run.guardrails = verdicts or []
    run.citations = citations or []
    if result is not None:
        run.new_items = to_json([item.to_input_item() for item in result.new_items])
        run.last_agent_name = result.last_agent.name if result.last_agent else ""
    if blocked is not None and not cancelled:
        # Only the model requests that were made are paid for (a judge's; none when an input was blocked).
        run.new_items, run.last_agent_name = blocked.items, blocked.last_agent
        run.final_output = blocked.verdict.get("message", "")
        run.status = RunStatus.BLOCKED
        run.cost = cost
    elif failure is None and not cancelled and result is not None:
        output = result.final_output
        run.final_output = to_json(output) if not isinstance(output, str) else output
        run.status = RunStatus.SUCCEEDED
        run.cost = cost
    else:
        run.status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
        run.error = failure.message if failure else "Cancelled: the client went away."
        run.error_code = failure.code if failure else "cancelled"
    assignments, params = update_set(run, END_FIELDS, name="run")
    ctes = [
        f"run_claimed AS (UPDATE {_RUN_TABLE} SET {assignments} "  # noqa: S608 (names from model metadata)
        "WHERE id = %(run_id)s AND status IN ('queued', 'running') RETURNING id)"
    ]
    params["run_id"] = run.pk
    paid = run.status in (RunStatus.SUCCEEDED, RunStatus.BLOCKED)
    keep_turn = run.status == RunStatus.SUCCEEDED or (blocked is not None and blocked.keep_turn and paid)
    if keep_turn and run.conversation_id:
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
                [user_item(run.input), *run.new_items], value_connection()
            ),
        }
    if run.reservation_id:
        credit_ctes, credit_params = credits_close_ctes(
            reservation_id=run.reservation_id,
            status=ReservationStatus.SETTLED if paid else ReservationStatus.REFUNDED,
            cost=run.cost if paid else 0,
            memo=f"Run {run.pk} {run.status}",
            only_if="run_claimed",
        )
        ctes.append(credit_ctes)
        params |= credit_params
        moved = "(SELECT count(*) FROM credit_entry)"
    else:
        moved = "0"
    return f"WITH {', '.join(ctes)} SELECT (SELECT count(*) FROM run_claimed), {moved}", params  # noqa: S608
