"""A run's lifecycle, one home per step; every entry point (the JSON endpoint and its fast transport,
Server-Sent Events, the background worker, the chat page through the API) goes through the same functions.

- ``inputs``: what a run reads before it starts (the message checked, the agent's definition, the context,
  the conversation so far, the provider and model).
- ``statements``: the single statements that record a run's start (credits taken, conversation and run
  inserted) and its end (outcome, conversation turn, credits settled or refunded), built without I/O.
- ``lifecycle``: ``start_run`` and ``end_run``, which send those statements, and ``ActiveRun``, a started
  run with everything its execution needs.
- ``execution``: ``execute_run`` and ``stream_run``, the run through the SDK, ended by ``end_run`` however it
  stops (success, failure, timeout, cancellation).
- ``answer``: the one presenter of a run's answer, its stream events and its ``done`` event.
- ``background``: runs no request waits for: queued runs claimed by the worker, runs whose process died.

Nothing here imports the Celery tasks or the event publisher; they import it.
"""
