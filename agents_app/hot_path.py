"""``POST /api/v1/agents/{id}/run`` for token calls, on the API hot path (config/hot_path.py).

A plain JSON run (no ``stream``, no ``background``) is started, executed, ended and answered through the same
functions as the ninja endpoint (agents_app/runs/), rendered by the same renderer. Only the outcomes of a run that
has started (200 with the run, 502 with its error) are answered here; anything else (a viewer, another workspace's
agent, too few credits, stream and background runs) goes to Django before anything of the run is written.
"""

from __future__ import annotations

import re

from agents_app.runs.answer import run_answer
from agents_app.runs.execution import execute_run
from agents_app.runs.lifecycle import start_run
from agents_app.schemas import RUN_ANSWERS, AgentRunInput
from config.hot_path import HandOver, HotCall, Route


async def serve_run(call: HotCall) -> None:
    """Run the agent and answer with the run (200) or its recorded error (502); raises HandOver otherwise."""
    payload = call.payload(AgentRunInput)
    if payload.stream or payload.background:
        raise HandOver
    actor = await call.actor()
    start = start_run(actor=actor, agent_id=int(call.match.group(1)), **payload.run_fields())
    await call.run(start, execute_run, run_answer, RUN_ANSWERS)


RUN_ROUTE = Route(re.compile(r"/api/v1/agents/([0-9]{1,18})/run"), serve_run)
