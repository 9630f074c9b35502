"""A workflow run, step by step: ``start_workflow_run`` checks the request and records the run, ``execute_workflow``
walks its steps to the end. Every agent step is an agent run made through the one run lifecycle
(agents_app/runs/), so it has its own credits, usage and trace spans; the workflow's trace holds a span per step
with the step's run beneath it. After each step the run's row records the results, the path taken and the next
step, which is where a resumed run goes on from.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from agents import custom_span, gen_trace_id, trace
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.models import CreditAccount
from accounts_app.selectors import workspace_get_for_user
from accounts_app.services.credits import insufficient_credits
from agents_app.events import Feed, RowState, publish_final
from agents_app.models import AgentContext, AgentRun, RunStatus
from agents_app.runs.background import fail_unstarted_run
from agents_app.runs.execution import execute_run
from agents_app.runs.inputs import MAX_MESSAGE_CHARS, check_message
from agents_app.runs.lifecycle import start_run
from config import adb
from config.db import db_call
from workflows_app.definition import (
    END,
    Graph,
    StepResult,
    StepSpec,
    next_step,
    output_text,
    render_template,
)
from workflows_app.exceptions import (
    ApplicationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)
from workflows_app.models import StepRun, WorkflowRun, WorkflowRunStatus
from workflows_app.plans import checked_graph, plan_is_cached, workflow_estimate, workflow_plan
from workflows_app.selectors import workflow_run_get
from workflows_app.statements import (
    close_step_statement,
    end_statement,
    open_step_statement,
    progress_statement,
    start_statement,
)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
logger = logging.getLogger(__name__)
WATCH_SECONDS = 1.0  # how soon a running workflow sees that it was cancelled
_USAGE_KEYS = ("requests", "input_tokens", "output_tokens", "total_tokens")


@dataclass
class WorkflowStart:
    """A workflow run recorded as started, with what its execution needs."""

    run: WorkflowRun
    graph: Graph
    actor: Actor


@dataclass
class _PreparedStart:
    """A run checked and built, not recorded yet: its row and the statement that records it."""

    run: WorkflowRun
    graph: Graph
    needed: Decimal
    sql: str
    params: dict[str, Any]


def _prepare_start(
    *,
    actor: Actor,
    workflow_id: int,
    message: str,
    context_id: int | None,
    mode: str,
    metadata: dict[str, Any] | None,
) -> _PreparedStart:
    """Check the request and build the run (see ``start_workflow_run``). Reads the database only for a context or
    a workflow whose plan is not cached (``_start_needs_queries``)."""
    actor.require_write()
    check_message(message)
    plan = workflow_plan(actor=actor, workflow_id=workflow_id)
    workflow = plan.workflow
    context = None
    if context_id is not None:
        context = AgentContext.objects.filter(pk=context_id, agent__workspace=actor.workspace).first()
        if context is None:
            raise NotFoundError("Context not found.")
    needed = workflow_estimate(actor, plan.graph, message)
    now = timezone.now()
    queued = mode == "background"
    run = WorkflowRun(
        workspace=actor.workspace,
        workflow=workflow,
        workflow_name=workflow.name,
        workflow_version=workflow.version,
        steps=workflow.steps,
        status=WorkflowRunStatus.QUEUED if queued else WorkflowRunStatus.RUNNING,
        mode=mode,
        message=message,
        context_name=context.name if context else "",
        context_data=dict(context.content) if context else {},
        trace_id=gen_trace_id(),
        metadata=metadata or {},
        created_by=actor.user,
        created_at=now,
        started_at=None if queued else now,
        attempts=0 if queued else 1,
        claimed_at=None if queued else now,
    )
    sql, params = start_statement(run, needed)
    return _PreparedStart(run=run, graph=plan.graph, needed=needed, sql=sql, params=params)


def _credits_refused(actor: Actor, needed: Decimal) -> ApplicationError:
    balance = CreditAccount.objects.filter(workspace=actor.workspace).values_list("balance", flat=True).first()
    return insufficient_credits(
        balance=balance or Decimal(0), required=needed, what="the workflow (each of its steps once)"
    )


async def start_workflow_run_async(
    *,
    actor: Actor,
    workflow_id: int,
    message: str,
    context_id: int | None = None,
    mode: str = "sync",
    metadata: dict[str, Any] | None = None,
) -> WorkflowStart:
    """Check the request and record the run: running, or queued for ``mode`` ``"background"``. Returns it.

    Raises PermissionDeniedError for viewers, NotFoundError for another workspace's workflow or context,
    InvalidInputError for an empty message or steps that no longer hold (an agent deleted), and
    InsufficientCreditsError (402) when the balance cannot cover every step's reservation; nothing is written then.
    Each step reserves and settles its own credits as it runs. A workflow whose plan is cached (unchanged since
    its last run in this process) starts with one statement and no read.
    """
    prepare = functools.partial(
        _prepare_start,
        actor=actor,
        workflow_id=workflow_id,
        message=message,
        context_id=context_id,
        mode=mode,
        metadata=metadata,
    )
    cached = context_id is None and plan_is_cached(actor, workflow_id)
    prepared = prepare() if cached else await db_call(prepare)
    row = await adb.fetchone(prepared.sql, prepared.params)
    if row is None:
        raise await db_call(_credits_refused, actor, prepared.needed)
    run = prepared.run
    run.pk = row[0]
    run._state.adding = False
    return WorkflowStart(run=run, graph=prepared.graph, actor=actor)


def start_workflow_run(**kwargs: Any) -> WorkflowStart:
    """``start_workflow_run_async`` for sync code (a page, a test): same arguments, answer and errors."""
    return async_to_sync(start_workflow_run_async)(**kwargs)


@dataclass
class StepOutcome:
    """A finished step (an agent step, or a parallel group with its branches)."""

    result: StepResult
    answer: dict[str, Any]
    error: str = ""
    error_code: str = ""
    cancelled: bool = False
    # A main-flow step's row and agent run, closed when the run records the step (one statement for both).
    row: StepRun | None = None
    agent_run: AgentRun | None = None
    iteration: int = 0


def add_usage(total: dict[str, int], usage: dict[str, Any]) -> None:
    """Add a run's token counts (``usage``) into ``total``."""
    for key in _USAGE_KEYS:
        total[key] = total.get(key, 0) + int(usage.get(key) or 0)


@dataclass
class _Walk:
    """A run's progress as its row records it (restored from it when a run resumes)."""

    results: dict[str, StepResult] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    jumps: dict[tuple[str, int], int] = field(default_factory=dict)
    iterations: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    cost: Decimal = Decimal(0)

    @classmethod
    def of(cls, run: WorkflowRun) -> _Walk:
        walk = cls(
            answers=dict(run.results or {}),
            path=list(run.path or []),
            usage={k: int(v) for k, v in (run.usage or {}).items() if k in _USAGE_KEYS},
            cost=run.cost or Decimal(0),
        )
        for key, taken in (run.jumps or {}).items():
            step_id, _, index = key.rpartition(":")
            walk.jumps[(step_id, int(index))] = int(taken)
        for step_id, answer in walk.answers.items():
            walk.results[step_id] = StepResult(
                output=answer.get("output"),
                last_agent=answer.get("last_agent", ""),
                guardrail_tripped=bool(answer.get("guardrail_tripped")),
            )
        for step_id in walk.path:
            walk.iterations[step_id] = walk.iterations.get(step_id, 0) + 1
        return walk

    def workflow_results(self) -> dict[str, Any]:
        """What each step receives as ``workflow_results``: the earlier steps' outputs, keyed by step id."""
        return {step_id: {"output": answer.get("output")} for step_id, answer in self.answers.items()}

    def add_usage(self, usage: dict[str, Any], cost: Decimal) -> None:
        add_usage(self.usage, usage)
        self.cost += cost


def _answer(agent_run: AgentRun | None, step: StepSpec, error: str = "", error_code: str = "") -> dict[str, Any]:
    """Return what the results say of one step (the spec's ``{output, messages, usage}`` and more)."""
    if agent_run is None:
        return {"status": WorkflowRunStatus.FAILED, "output": None, "error": error, "code": error_code}
    return {
        "status": "succeeded" if agent_run.status in (RunStatus.SUCCEEDED, RunStatus.BLOCKED) else agent_run.status,
        "output": agent_run.final_output,
        "messages": agent_run.new_items or [],
        "usage": {k: v for k, v in (agent_run.usage or {}).items() if k in _USAGE_KEYS},
        "cost": str(agent_run.cost),
        "run_id": str(agent_run.pk),
        "last_agent": agent_run.last_agent_name,
        "guardrail_tripped": agent_run.status == RunStatus.BLOCKED,
        "agent_id": step.agent_id,
        **({"error": agent_run.error, "code": agent_run.error_code} if agent_run.error else {}),
    }


def step_input(step: StepSpec, *, message: str, walk: _Walk, context: dict[str, Any], group_input: str | None) -> str:
    """Return the text a step runs on: its template, its named source, or by default the user's message for the
    first step and the previous step's output for the others (a branch: its group's input)."""
    if step.input_template is not None:
        return render_template(step.input_template, message=message, results=walk.results, context=context)
    if step.input_source == "user":
        return message
    if step.input_source_id is not None:
        source = walk.results.get(step.input_source_id)
        return output_text(source.output) if source is not None else ""
    if group_input is not None:
        return group_input
    if walk.path:
        previous = walk.results.get(walk.path[-1])
        return output_text(previous.output) if previous is not None else ""
    return message


class WorkflowExecution:
    """One walk through a workflow run's steps, from where its row says it is to its end."""

    def __init__(self, start: WorkflowStart, emit: Emit | None = None) -> None:
        self.run = start.run
        self.graph = start.graph
        self.actor = start.actor
        self.walk = _Walk.of(start.run)
        self.emit = emit
        self.sequence = len(self.walk.path)
        # The claim this execution holds: every write of the run's row is conditional on it (a fencing token).
        self.token = start.run.attempts
        self.stopped: str | None = None  # why the watcher stopped the walk: "cancelled" or "lost"
        self.resumed = start.run.attempts > 1

    async def _event(self, name: str, data: dict[str, Any]) -> None:
        if self.emit is not None:
            await self.emit({"event": name, "data": data})

    async def execute(self) -> WorkflowRun:
        """Run the remaining steps; returns the finished WorkflowRun (never raises for a step's failure).

        A watcher renews the run's claim and stops the walk when the run is cancelled (its running step's agent run
        is cancelled and refunded) or claimed by another worker (this one lost it: nothing more is written).
        Cancelled from outside (the client went away), the run is recorded as cancelled; then the cancellation
        goes on.
        """
        run = self.run
        await self._event("workflow_run", {"workflow_run_id": str(run.pk), "trace_id": run.trace_id})
        walker = asyncio.create_task(self._walk())
        watcher = _watcher()
        watcher.add(self, walker)
        try:
            error, code = await walker
        except asyncio.CancelledError:
            outer = asyncio.current_task()
            if self.stopped is None or (outer is not None and outer.cancelling()):
                await asyncio.shield(self._finish(WorkflowRunStatus.CANCELLED, "The run was cancelled.", "cancelled"))
                raise
            finished = await self._finish(WorkflowRunStatus.CANCELLED, "", "")
            await self._event("done", workflow_run_fields(finished))
            return finished
        finally:
            watcher.remove(self)
        status = WorkflowRunStatus.FAILED if error else WorkflowRunStatus.SUCCEEDED
        finished = await self._finish(status, error, code)
        await self._event("done", workflow_run_fields(finished))
        return finished

    async def _walk(self) -> tuple[str, str]:
        """Run steps from the run's next one to the end; returns ``(error, code)`` ("" when every step passed)."""
        run = self.run
        metadata = {"workspace_id": str(run.workspace_id), "workflow_run_id": str(run.pk)}
        current = run.next_step_id or self.graph.first.id
        with trace(run.workflow_name, trace_id=run.trace_id, metadata=metadata):
            while current != END:
                if self.sequence >= settings.WORKFLOW_MAX_STEP_RUNS:
                    return (
                        f"The run stopped after {self.sequence} steps (WORKFLOW_MAX_STEP_RUNS) before step "
                        f"{current!r}: a loop went round too often.",
                        "step_budget_exceeded",
                    )
                step = self.graph.by_id[current]
                outcome = await self._step(step)
                following = END if outcome.error else next_step(self.graph, step, outcome.result, self.walk.jumps)
                await self._record(step, outcome, following)
                if outcome.row is not None:  # not a step an earlier execution finished
                    await self._event("step", {"step_id": step.id, "iteration": outcome.iteration} | outcome.answer)
                if outcome.error:
                    return f"Step {step.id!r} failed: {outcome.error}", outcome.error_code or "step_failed"
                current = following
        return "", ""

    async def _step(self, step: StepSpec) -> StepOutcome:
        self.sequence += 1
        iteration = self.walk.iterations.get(step.id, 0) + 1
        self.walk.iterations[step.id] = iteration
        if step.kind == "parallel":
            return await self._parallel(step, iteration)
        return await self._agent_step(step, iteration, group_id="", group_input=None, close=False)

    async def _agent_step(
        self, step: StepSpec, iteration: int, *, group_id: str, group_input: str | None, close: bool = True
    ) -> StepOutcome:
        """Run an agent step; returns its outcome. A branch (``close``) closes its row and tells its result here; a
        main-flow step leaves both to ``_walk``, which records them with the run's progress."""
        run = self.run
        if self.resumed:  # a step this run finished before its worker died is never run again
            done = await db_call(self._finished_step, step, iteration)
            if done is not None:
                self.walk.add_usage(done.answer.get("usage", {}), Decimal(done.answer.get("cost") or 0))
                return done
        text = step_input(step, message=run.message, walk=self.walk, context=run.context_data, group_input=group_input)
        row = await self._open_step(step, iteration, group_id, text[:MAX_MESSAGE_CHARS])
        await self._event("step", {"step_id": step.id, "iteration": iteration, "status": "running"})
        with custom_span(f"Step {step.id}", data={"step_id": step.id, "iteration": iteration, "group": group_id}):
            agent_run: AgentRun | None = None
            error, code = "", ""
            if not text.strip():
                error, code = "its input is empty (check its input source or template).", "empty_input"
            else:
                try:
                    active = await start_run(
                        actor=self.actor,
                        agent_id=int(step.agent_id or 0),
                        message=text[:MAX_MESSAGE_CHARS],
                        metadata={"workflow_run_id": str(run.pk), "step_id": step.id},
                        extra_context={**run.context_data, "workflow_results": self.walk.workflow_results()},
                    )
                except ApplicationError as exc:  # credits, rate limits, an agent deleted meanwhile
                    error, code = exc.message, exc.code
                else:
                    agent_run = await execute_run(active)
                    if agent_run.status not in (RunStatus.SUCCEEDED, RunStatus.BLOCKED):
                        error, code = agent_run.error or f"its run ended {agent_run.status}.", agent_run.error_code
        answer = _answer(agent_run, step, error, code)
        outcome = StepOutcome(
            result=StepResult(
                output=answer["output"],
                last_agent=answer.get("last_agent", ""),
                guardrail_tripped=bool(answer.get("guardrail_tripped")),
            ),
            answer=answer,
            error=error,
            error_code=code,
            row=row,
            agent_run=agent_run,
            iteration=iteration,
        )
        if agent_run is not None:
            self.walk.add_usage(agent_run.usage or {}, agent_run.cost)
        if close:
            await self._close_step(row, agent_run, outcome)
            await self._event("step", {"step_id": step.id, "iteration": iteration} | answer)
        return outcome

    async def _parallel(self, step: StepSpec, iteration: int) -> StepOutcome:
        group_input = step_input(
            step, message=self.run.message, walk=self.walk, context=self.run.context_data, group_input=None
        )
        row = await self._open_step(step, iteration, "", group_input[:MAX_MESSAGE_CHARS])
        await self._event("step", {"step_id": step.id, "iteration": iteration, "status": "running"})
        with custom_span(f"Step {step.id}", data={"step_id": step.id, "iteration": iteration, "parallel": True}):
            branches = [self.graph.by_id[b] for b in step.branches]
            for branch in branches:
                self.walk.iterations[branch.id] = self.walk.iterations.get(branch.id, 0) + 1
            outcomes = await asyncio.gather(
                *(
                    self._agent_step(b, self.walk.iterations[b.id], group_id=step.id, group_input=group_input)
                    for b in branches
                )
            )
        for branch, outcome in zip(branches, outcomes, strict=True):
            self.walk.results[branch.id] = outcome.result
            self.walk.answers[branch.id] = outcome.answer
        failed = [(b, o) for b, o in zip(branches, outcomes, strict=True) if o.error]
        output = {b.id: o.result.output for b, o in zip(branches, outcomes, strict=True)}
        usage: dict[str, int] = {}
        for outcome in outcomes:
            add_usage(usage, outcome.answer.get("usage", {}))
        answer: dict[str, Any] = {
            "status": WorkflowRunStatus.FAILED if failed else WorkflowRunStatus.SUCCEEDED,
            "output": output,
            "usage": usage,
            "branches": [b.id for b in branches],
        }
        error = code = ""
        if failed:
            branch, first = failed[0]
            error, code = f"branch {branch.id!r} failed: {first.error}", first.error_code
            answer |= {"error": error, "code": code}
        return StepOutcome(
            result=StepResult(output=output), answer=answer, error=error, error_code=code, row=row, iteration=iteration
        )

    # --- Rows ----------------------------------------------------------------------------------------------------

    async def _open_step(self, step: StepSpec, iteration: int, group_id: str, text: str) -> StepRun:
        """Record a step as running; returns its row."""
        row = StepRun(
            workflow_run_id=self.run.pk,
            step_id=step.id,
            iteration=iteration,
            sequence=self.sequence,
            group_id=group_id,
            agent_id=step.agent_id,
            input=text,
            status=WorkflowRunStatus.RUNNING,
            started_at=timezone.now(),
        )
        if self.resumed:  # the step its lost worker was running has a row already: it starts over
            return await db_call(self._reopen_step, row)
        found = await adb.fetchone(*open_step_statement(row))
        row.pk = found[0] if found is not None else None
        row._state.adding = False
        return row

    @staticmethod
    def _reopen_step(row: StepRun) -> StepRun:
        values = {
            name: getattr(row, name) for name in ("sequence", "group_id", "agent_id", "input", "status", "started_at")
        }
        found, _ = StepRun.objects.update_or_create(
            workflow_run_id=row.workflow_run_id,
            step_id=row.step_id,
            iteration=row.iteration,
            defaults=values | {"agent_run": None, "error": "", "error_code": ""},
        )
        return found

    def _finished_step(self, step: StepSpec, iteration: int) -> StepOutcome | None:
        """Return the outcome of ``step``'s ``iteration`` when an earlier execution of this run finished it."""
        row = (
            StepRun.objects.filter(
                workflow_run_id=self.run.pk, step_id=step.id, iteration=iteration, status=WorkflowRunStatus.SUCCEEDED
            )
            .select_related("agent_run")
            .first()
        )
        if row is None or row.agent_run is None:
            return None
        answer = _answer(row.agent_run, step)
        result = StepResult(
            output=answer["output"], last_agent=answer["last_agent"], guardrail_tripped=answer["guardrail_tripped"]
        )
        return StepOutcome(result=result, answer=answer)

    @staticmethod
    def _closed(row: StepRun, agent_run: AgentRun | None, outcome: StepOutcome) -> StepRun:
        """Set on ``row`` what its finished step records; returns it."""
        now = timezone.now()
        row.status = WorkflowRunStatus.FAILED if outcome.error else WorkflowRunStatus.SUCCEEDED
        row.agent_run = agent_run
        row.output = outcome.result.output
        row.last_agent_name = outcome.result.last_agent[:100]
        row.guardrail_tripped = outcome.result.guardrail_tripped
        row.usage = outcome.answer.get("usage", {})
        row.cost = agent_run.cost if agent_run is not None else Decimal(0)
        row.error, row.error_code = outcome.error, outcome.error_code[:50]
        row.finished_at = now
        row.duration_ms = max(0, int((now - row.started_at).total_seconds() * 1000))
        return row

    async def _close_step(self, row: StepRun, agent_run: AgentRun | None, outcome: StepOutcome) -> None:
        await adb.fetchone(*close_step_statement(self._closed(row, agent_run, outcome)))

    async def _record(self, step: StepSpec, outcome: StepOutcome, following: str) -> None:
        """Record a finished step: close its row, and on the run's row its result, the path and where the run goes
        next (one statement)."""
        walk = self.walk
        walk.results[step.id] = outcome.result
        walk.answers[step.id] = outcome.answer
        walk.path.append(step.id)
        run = self.run
        run.results = walk.answers
        run.path = walk.path
        run.jumps = {f"{step_id}:{index}": taken for (step_id, index), taken in walk.jumps.items()}
        run.next_step_id = "" if following == END else following
        run.usage = walk.usage
        run.cost = walk.cost
        run.final_output = outcome.result.output
        row = self._closed(outcome.row, outcome.agent_run, outcome) if outcome.row is not None else None
        await adb.fetchone(*progress_statement(run, token=self.token, row=row))

    async def _finish(self, status: str, error: str, code: str) -> WorkflowRun:
        """End the run with ``status`` unless it ended already (cancelled meanwhile) or another execution holds it;
        mark this execution's unfinished step runs cancelled. Returns the run as recorded."""
        if self.stopped != "lost":
            sql, params = end_statement(
                self.run,
                token=self.token,
                status=status,
                error=error,
                code=code,
                usage=self.walk.usage,
                cost=self.walk.cost,
            )
            ended = await adb.fetchone(sql, params)
            if ended is not None and ended[0] == 1:
                return self.run
        return await db_call(WorkflowRun.objects.get, pk=self.run.pk)


class _Watcher:
    """Watches every workflow run executing on one event loop: every WATCH_SECONDS one query sees which were
    cancelled or claimed by another worker (and their walks are stopped), and every WORKFLOW_HEARTBEAT_SECONDS one
    statement renews the claims of the others. One query a second for the process, however many runs it holds."""

    def __init__(self) -> None:
        self.walks: dict[WorkflowExecution, asyncio.Task[tuple[str, str]]] = {}
        self.task: asyncio.Task[None] | None = None

    def add(self, execution: WorkflowExecution, walker: asyncio.Task[tuple[str, str]]) -> None:
        self.walks[execution] = walker
        if self.task is None or self.task.done():
            # A context of its own: it outlives the request that started it (a request's context ends with it).
            self.task = asyncio.create_task(self._watch(), context=contextvars.Context())

    def remove(self, execution: WorkflowExecution) -> None:
        self.walks.pop(execution, None)

    async def _watch(self) -> None:
        since_beat = 0.0
        while self.walks:
            await asyncio.sleep(WATCH_SECONDS)
            since_beat += WATCH_SECONDS
            renew = since_beat >= settings.WORKFLOW_HEARTBEAT_SECONDS
            if renew:
                since_beat = 0.0
            watched = dict(self.walks)
            tokens = {execution.run.pk: execution.token for execution in watched}
            try:
                reasons = await db_call(_not_held, tokens, renew)
            except Exception:  # the database is away for a moment: look again at the next tick
                logger.exception("Could not check %s running workflow runs", len(tokens))
                continue
            for execution, walker in watched.items():
                reason = reasons.get(execution.run.pk)
                if reason is not None and not walker.done():
                    execution.stopped = reason
                    walker.cancel()
                    self.remove(execution)


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watcher] = weakref.WeakKeyDictionary()


def _watcher() -> _Watcher:
    """Return the running event loop's watcher (a worker's task runs its own loop, the web process one for all)."""
    loop = asyncio.get_running_loop()
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = _Watcher()
    return watcher


def _not_held(tokens: dict[int, int], renew: bool) -> dict[int, str]:
    """Return why each run of ``tokens`` (run id: the attempt its execution holds) is no longer its execution's:
    ``"cancelled"``, or ``"lost"`` (failed by the sweep, or claimed again by another worker). Runs still held are
    left out; with ``renew`` their claims are renewed."""
    held = Q()
    for pk, token in tokens.items():
        held |= Q(pk=pk, attempts=token)
    if renew:
        WorkflowRun.objects.filter(held, status=WorkflowRunStatus.RUNNING).update(claimed_at=timezone.now())
    states = {
        pk: (status, attempts)
        for pk, status, attempts in WorkflowRun.objects.filter(pk__in=tokens).values_list("pk", "status", "attempts")
    }
    reasons = {}
    for pk, token in tokens.items():
        status, attempts = states.get(pk, ("", None))
        if (status, attempts) != (WorkflowRunStatus.RUNNING, token):
            reasons[pk] = "cancelled" if status == WorkflowRunStatus.CANCELLED else "lost"
    return reasons


def end_workflow_run(
    run: WorkflowRun,
    *,
    token: int | None,
    status: str,
    error: str,
    code: str,
    usage: dict[str, int] | None = None,
    cost: Decimal | None = None,
) -> bool:
    """End ``run`` (if still queued or running, under claim ``token`` unless None) with ``status``, ``error`` and
    ``code``; its step runs still open are marked cancelled. Returns whether this call ended it."""
    sql, params = end_statement(run, token=token, status=status, error=error, code=code, usage=usage, cost=cost)
    ended = adb.fetchone_sync(sql, params)
    return ended is not None and ended[0] == 1


def workflow_run_fields(run: WorkflowRun) -> dict[str, Any]:
    """Return what an answer or ``done`` event says of a workflow run: the results keyed by step id (as the spec's
    ``execute_workflow`` returns them), the path taken, the last step's output, usage, cost and any error."""
    return {
        "workflow_run_id": str(run.pk),
        "workflow_id": run.workflow_id,
        "status": run.status,
        "results": run.results or {},
        "output": run.final_output,
        "path": run.path or [],
        "usage": run.usage or {},
        "cost": run.cost,
        "trace_id": run.trace_id,
        "error": run.error or None,
        "code": run.error_code or None,
        "duration_ms": run.duration_ms,
    }


async def execute_workflow(start: WorkflowStart, emit: Emit | None = None) -> WorkflowRun:
    """Run a started workflow run to its end; returns the finished WorkflowRun (see WorkflowExecution.execute)."""
    return await WorkflowExecution(start, emit).execute()


# --- Background runs, resume, cancel, stream -------------------------------------------------------------------


def workflow_stream_key(run: WorkflowRun) -> str:
    """Return the Redis stream of ``run``'s events: its id and its trace id, which no other run shares."""
    return f"workflow-run-events:{run.pk}:{run.trace_id}"


def workflow_done_event(run: WorkflowRun) -> dict[str, Any]:
    """Return a workflow run's last event, ``done``, with what its answer says."""
    return {"event": "done", "data": workflow_run_fields(run)}


def workflow_run_feed(run: WorkflowRun) -> Feed:
    """Return the feed of a workflow run's events (agents_app/events.py), resumable like an agent run's."""

    async def state() -> RowState:
        found = await db_call(WorkflowRun.objects.get, pk=run.pk)
        return found.status, workflow_done_event(found) if found.is_terminal else None

    return Feed(workflow_stream_key(run), state)


def end_interrupted_steps(run: WorkflowRun) -> int:
    """End, as failed and refunded, the agent runs of ``run``'s steps still open (their worker died). Returns how
    many."""
    open_runs = AgentRun.objects.filter(
        workspace_id=run.workspace_id,
        status__in=(RunStatus.RUNNING, RunStatus.QUEUED),
        metadata__workflow_run_id=str(run.pk),
    ).values_list("pk", flat=True)
    error = ApplicationError("The worker running this workflow step stopped before it ended.", code="worker_lost")
    ended = 0
    for run_id in open_runs:
        fail_unstarted_run(run_id=run_id, error=error)
        ended += 1
    return ended


def claim_workflow_run(workflow_run_id: int) -> WorkflowRun | None:
    """Claim a queued workflow run for this worker: running, one more attempt (its fencing token), its claim renewed
    from now on. Returns it, or None when it is not queued (another worker has it, or it ended or was cancelled).
    Agent runs an earlier worker left open are ended first: the interrupted step runs again from its start."""
    now = timezone.now()
    claimed = WorkflowRun.objects.filter(pk=workflow_run_id, status=WorkflowRunStatus.QUEUED).update(
        status=WorkflowRunStatus.RUNNING,
        attempts=F("attempts") + 1,
        claimed_at=now,
        started_at=Coalesce(F("started_at"), Value(now)),
    )
    if not claimed:
        return None
    run = WorkflowRun.objects.get(pk=workflow_run_id)
    end_interrupted_steps(run)
    return run


def resumed_start(run: WorkflowRun) -> WorkflowStart:
    """Return what a claimed run's execution needs: the member who started it, as they may act now, and its steps
    as it started with them. Raises ApplicationError when it cannot go on (that member left or may no longer run
    workflows; an agent of its steps was deleted)."""
    if run.created_by is None:
        raise PermissionDeniedError("The member who started the run was deleted.")
    try:
        actor = workspace_get_for_user(user=run.created_by, workspace_id=run.workspace_id)
    except NotFoundError:
        raise PermissionDeniedError("The member who started the run has left the workspace.") from None
    actor.require_write()
    return WorkflowStart(run=run, graph=checked_graph(actor, run.steps), actor=actor)


def fail_workflow_run(run: WorkflowRun, error: ApplicationError | str, code: str = "") -> WorkflowRun:
    """End a claimed run (``run`` as claimed) that cannot go on as failed, with the reason. Returns it as recorded."""
    message = error.message if isinstance(error, ApplicationError) else error
    code = error.code if isinstance(error, ApplicationError) else code
    end_workflow_run(run, token=run.attempts, status=WorkflowRunStatus.FAILED, error=message, code=code)
    return WorkflowRun.objects.get(pk=run.pk)


def workflow_run_cancel(*, actor: Actor, workflow_run_id: int) -> WorkflowRun:
    """Cancel a queued or running workflow run; returns it. A running one's execution stops within a second: its
    running step's agent run is cancelled and refunded; finished steps keep their results. A queued one's event
    readers are told here (no process runs it to tell them).

    Raises PermissionDeniedError for viewers, NotFoundError for another workspace's run, ConflictError when it
    has ended already.
    """
    actor.require_write()
    run = workflow_run_get(actor=actor, run_id=workflow_run_id)
    by = actor.user.get_username()
    was_queued = run.status == WorkflowRunStatus.QUEUED
    if not end_workflow_run(
        run, token=None, status=WorkflowRunStatus.CANCELLED, error=f"Cancelled by {by}.", code="cancelled"
    ):
        run.refresh_from_db()
        raise ConflictError(f"The run has already ended ({run.status}).")
    ended = WorkflowRun.objects.prefetch_related("step_runs").get(pk=run.pk)
    if was_queued:
        publish_final(workflow_stream_key(run), workflow_done_event(ended))
    return ended


def resume_stalled_workflow_runs(*, now: datetime | None = None) -> tuple[int, int]:
    """Hand background runs whose worker died (claim not renewed for WORKFLOW_STALL_SECONDS) back to the workers,
    and re-send queued runs no worker took; fail stalled runs tried WORKFLOW_MAX_ATTEMPTS times and stalled sync or
    streamed runs (their request ended with their process). Returns ``(requeued, failed)``. Run by Celery beat.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKFLOW_STALL_SECONDS)
    stalled = WorkflowRun.objects.filter(status=WorkflowRunStatus.RUNNING, claimed_at__lt=cutoff)
    failed = 0
    hopeless = stalled.filter(~Q(mode="background") | Q(attempts__gte=settings.WORKFLOW_MAX_ATTEMPTS))
    for run in hopeless:
        tries = f" {run.attempts} times" if run.mode == "background" else ""
        end_interrupted_steps(run)
        if end_workflow_run(
            run,
            token=run.attempts,
            status=WorkflowRunStatus.FAILED,
            error=f"The run stopped{tries} without finishing (its process ended).",
            code="abandoned",
        ):
            failed += 1
    requeued = 0
    for run_id, attempts in stalled.filter(mode="background").values_list("pk", "attempts"):
        requeued += WorkflowRun.objects.filter(pk=run_id, attempts=attempts, status=WorkflowRunStatus.RUNNING).update(
            status=WorkflowRunStatus.QUEUED, claimed_at=now
        )
        queue_workflow_run(run_id)
    forgotten = WorkflowRun.objects.filter(status=WorkflowRunStatus.QUEUED).filter(
        Q(claimed_at__lt=cutoff) | Q(claimed_at__isnull=True, created_at__lt=cutoff)
    )
    for run_id in forgotten.values_list("pk", flat=True):
        WorkflowRun.objects.filter(pk=run_id, status=WorkflowRunStatus.QUEUED).update(claimed_at=now)
        queue_workflow_run(run_id)
        requeued += 1
    return requeued, failed


def queue_workflow_run(workflow_run_id: int) -> None:
    """Hand a queued workflow run (committed) to a worker."""
    from workflows_app.tasks import workflow_run_execute  # the task module imports this one

    workflow_run_execute.delay(workflow_run_id)


async def stream_workflow(start: WorkflowStart) -> AsyncIterator[dict[str, Any]]:
    """Yield a started run's events as they happen, ending with ``done``. If the consumer stops (the client went
    away), the run is cancelled: its running step's agent run is cancelled and refunded."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    task = asyncio.create_task(execute_workflow(start, emit=queue.put))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None:
            yield event
            if event["event"] == "done":
                break
        await task  # raises what the execution raised, if it ended without its done event
    finally:
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
