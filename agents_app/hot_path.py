"""``POST /api/v1/agents/{id}/run`` for token calls, on the API hot path (config/hot_path.py).

A plain JSON run (no ``stream``, no ``background``) is started, executed, ended and answered through the same
functions as the ninja endpoint (agents_app/runs/), rendered by the same renderer. Only the outcomes of a run that
has started (200 with the run, 502 with its error) are answered here; anything else (a viewer, another workspace's
agent, too few credits, stream and background runs) goes to Django before anything of the run is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from agents_app.runs.answer import run_answer
from agents_app.runs.execution import execute_run
from agents_app.runs.lifecycle import start_run
from agents_app.schemas import RUN_ANSWERS, AgentRunInput
from config.hot_path import HandOver, HotCall, Receive, Route


async def serve_run(call: HotCall) -> None:
    """Run the agent and answer with the run (200) or its recorded error (502); raises HandOver otherwise."""
    payload = call.payload(AgentRunInput)
    if payload.stream or payload.background:
        raise HandOver
    actor = await call.actor()
    try:
        active = await start_run(actor=actor, agent_id=int(call.match.group(1)), **payload.run_fields())
    except Exception:
        # Nothing was written: the full stack answers with the error (or, if the cause has gone, the run).
        raise HandOver from None
    run_task = asyncio.ensure_future(execute_run(active))
    disconnect = asyncio.ensure_future(_disconnected(call.receive))
    await asyncio.wait((run_task, disconnect), return_when=asyncio.FIRST_COMPLETED)
    if not run_task.done():
        # The client went away: cancel the run (it is recorded as cancelled and its credits refunded).
        run_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run_task
        return
    disconnect.cancel()
    try:
        status, data = run_answer(run_task.result())
    except Exception:
        # The run could not be recorded (the database went away): as config/api.py answers the unexpected.
        logging.getLogger("config.api").exception("Unhandled error in POST %s", call.scope["path"])
        status, data = 500, {"detail": "Internal server error.", "code": "server_error"}
    else:
        data = RUN_ANSWERS[status].model_validate(data).model_dump()  # as the ninja endpoint's answer
    await call.answer(status, data)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


RUN_ROUTE = Route(re.compile(r"/api/v1/agents/([0-9]{1,18})/run"), serve_run)
