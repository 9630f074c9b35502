"""``POST /api/v1/workflows/{id}/run`` for token calls, on the API hot path (config/hot_path.py).

A plain JSON run (no ``stream``, no ``background``) is started, executed and answered through the same functions
as the ninja endpoint (workflows_app/engine.py, ``workflow_run_answer``), rendered by the same renderer. Only the
outcomes of a run that has started (200 with the results, 502 with what failed) are answered here; anything else (a
viewer, another workspace's workflow, too few credits, stream and background runs) goes to Django before anything
of the run is written.
"""

from __future__ import annotations

import re

from ninja import Schema

from config.hot_path import HandOver, HotCall, Route
from workflows_app.api import workflow_run_answer
from workflows_app.engine import execute_workflow, start_workflow_run_async
from workflows_app.schemas import WorkflowRunAnswer, WorkflowRunFailed, WorkflowRunInput

ANSWERS: dict[int, type[Schema]] = {200: WorkflowRunAnswer, 502: WorkflowRunFailed}


async def serve_workflow_run(call: HotCall) -> None:
    """Run the workflow and answer with its results (200) or what failed (502); raises HandOver otherwise."""
    payload = call.payload(WorkflowRunInput)
    if payload.stream or payload.background:
        raise HandOver
    actor = await call.actor()
    start = start_workflow_run_async(
        actor=actor,
        workflow_id=int(call.match.group(1)),
        message=payload.message,
        context_id=payload.context_id,
        metadata=payload.metadata,
    )
    await call.run(start, execute_workflow, workflow_run_answer, ANSWERS)


WORKFLOW_RUN_ROUTE = Route(re.compile(r"/api/v1/workflows/([0-9]{1,18})/run"), serve_workflow_run)
