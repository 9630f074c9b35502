"""What storing traces costs: ``POST /run`` with trace storage on and off, and the trace list at a million spans.

1. Two uvicorn workers on the same database and scripted model server, one with TRACES_ENABLED and one
   without, driven alternately at concurrency 32 (and 1) for several rounds; the ratio is off / on runs per
   second (target: at most 1.10).
2. A million spans (100,000 traces of 10 spans) in a workspace of their own, then the first page of its
   trace list (50 newest, as the API and the page ask for it), timed repeatedly (target: p95 under 50 ms).

Usage: DATABASE_URL=... .venv/bin/python bench/trace_overhead.py [--runs 400] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_overhead import (  # noqa: E402
    bench_env,
    free_port,
    percentile,
    platform_phase,
    setup_platform,
    start_model_server,
    start_web_server,
    stop_all,
    summarize,
    wait_http,
)


def fill_spans(traces: int, spans_per_trace: int) -> int:
    """Insert ``traces`` traces of ``spans_per_trace`` spans in a new workspace; return its id."""
    from django.db import connection

    from accounts_app.models import User
    from accounts_app.services import workspace_create

    user = User.objects.create_user(username=f"bench-traces-{time.time_ns()}", password=None)
    workspace = workspace_create(user=user, name="bench traces").workspace
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO traces_app_trace (trace_id, workspace_id, name, group_id, metadata, status, started_at,
                ended_at, duration_ms, span_count, error_count, input_tokens, output_tokens)
            SELECT 'trace_bench_' || %(ws)s || '_' || g, %(ws)s, 'Bench agent', '', '{}',
                   CASE WHEN g %% 20 = 0 THEN 'error' ELSE 'ok' END,
                   now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval + interval '2 seconds',
                   2000, %(spans)s, 0, 100, 50
            FROM generate_series(1, %(traces)s) g
            """,
            {"ws": workspace.pk, "traces": traces, "spans": spans_per_trace},
        )
        cursor.execute(
            """
            INSERT INTO traces_app_span (trace_id, span_id, parent_id, kind, name, started_at, ended_at,
                duration_ms, data, error, input_tokens, output_tokens)
            SELECT 'trace_bench_' || %(ws)s || '_' || g, 'span_' || g || '_' || s, '', 'generation', 'fake-model',
                   now(), now(), 1.5, '{"type": "generation", "input": [{"role": "user", "content": "Hi"}]}',
                   NULL, 10, 5
            FROM generate_series(1, %(traces)s) g, generate_series(1, %(spans)s) s
            """,
            {"ws": workspace.pk, "traces": traces, "spans": spans_per_trace},
        )
        cursor.execute("ANALYZE traces_app_trace")
        cursor.execute("ANALYZE traces_app_span")
    return workspace.pk


def time_first_page(workspace_id: int, repeats: int) -> list[float]:
    from accounts_app.actor import Actor
    from accounts_app.models import Role, Workspace
    from traces_app.selectors import trace_list

    workspace = Workspace.objects.get(pk=workspace_id)
    actor = Actor(user=workspace.created_by, workspace=workspace, role=Role.OWNER)
    timings = []
    for i in range(repeats):
        filters = [{}, {"status": "error"}, {"min_duration_ms": 1000}][i % 3]
        started = time.perf_counter()
        page = list(trace_list(actor=actor, **filters)[:50])
        timings.append((time.perf_counter() - started) * 1000)
        assert len(page) == 50
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="timed runs per round at concurrency 32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans for the list query part")
    parser.add_argument("--quick", action="store_true", help="few runs and spans, to check the script works")
    args = parser.parse_args()
    runs = 64 if args.quick else args.runs
    spans = 20_000 if args.quick else args.spans

    env = bench_env()
    model_port, on_port, off_port = free_port(), free_port(), free_port()
    model_url = f"http://127.0.0.1:{model_port}/v1"
    processes = [start_model_server(env, model_port)]
    try:
        wait_http(model_url + "/models")
        agent_id, token = setup_platform(model_url)
        processes.append(start_web_server(env, on_port, TRACES_ENABLED="true"))
        processes.append(start_web_server(env, off_port, TRACES_ENABLED="false"))
        on, off = f"http://127.0.0.1:{on_port}", f"http://127.0.0.1:{off_port}"
        wait_http(on + "/healthz")
        wait_http(off + "/healthz")

        print(f"\n{'':<28}{'runs/s':>10}{'p50 ms':>10}{'p95 ms':>10}   (median of {args.rounds} alternating rounds)")
        for concurrency, total in ((1, max(30, runs // 4)), (32, runs)):
            rounds: dict[str, list[tuple[float, list[float]]]] = {"off": [], "on": []}
            for round_number in range(args.rounds):
                # Alternate which side goes first, so that neither always follows the other's load.
                order = (("off", off), ("on", on)) if round_number % 2 == 0 else (("on", on), ("off", off))
                for name, base in order:
                    rounds[name].append(asyncio.run(platform_phase(base, agent_id, token, total, concurrency)))
            print(f"c={concurrency}, {total} runs per round")
            rps = {}
            for name, label in (("off", "  traces off"), ("on", "  traces stored")):
                rps[name], p50, p95 = summarize(rounds[name])
                print(f"{label:<28}{rps[name]:>10.1f}{p50:>10.2f}{p95:>10.2f}")
            ratio = rps["off"] / rps["on"]
            print(f"  ratio off/on: {ratio:.2f}   target <= 1.10 -> {'met' if ratio <= 1.10 else 'NOT met'}")

        if not spans:
            return
        workspace_id = fill_spans(spans // 10, 10)
        timings = time_first_page(workspace_id, 60)
        p95 = percentile(timings, 0.95)
        print(
            f"\nTrace list, first page of 50, {spans:,} spans in {spans // 10:,} traces: "
            f"p50 {statistics.median(timings):.2f} ms, p95 {p95:.2f} ms "
            f"(target p95 < 50 ms -> {'met' if p95 < 50 else 'NOT met'})"
        )
    finally:
        stop_all(processes)


if __name__ == "__main__":
    main()
