"""A three-step echo workflow under load: ``POST /api/v1/workflows/{id}/run`` against three raw SDK runs.

Each workflow run chains three agents (the user's message, then each step's output as the next step's input)
on the scripted model server, which echoes the last user message. The platform serves it under one uvicorn
worker (or ``--workers``) with everything a workflow run does (credits reserved before and settled per step, a
workflow run row updated after each step, an agent run row per step with its trace, one workflow trace with a span
per step).
The baseline is a clean Python process that makes the same three ``Runner.run`` calls in sequence, tracing off.
Both sides run ``--concurrency`` (60) workflows at once. Printed: runs/s, p50 and p95 time to finish, and the
ratios platform/SDK. Target: p95 under 1 s at 60 concurrent runs on the 2-core machine.

Usage: .venv/bin/python bench/workflow.py [--runs 240] [--concurrency 60] [--rounds 3] [--workers 1] [--quick]
[--profile FILE] (py-spy's collapsed stacks of the web server, sampled at 250 Hz; the sampling slows it down)
Uses DATABASE_URL when set, else an embedded Postgres of its own under var/bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_overhead import (  # noqa: E402  (the path above makes the package importable as a script)
    bench_env,
    drive,
    free_port,
    start_web_server,
    stop_all,
    summarize,
    wait_http,
)

MESSAGE = "Summarise the quarterly report."
STEPS = 3


def start_echo_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """Start the scripted model server (tests/fakes) answering each request with its last user message."""
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port), "--echo"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def setup_workflow(model_url: str) -> tuple[int, str]:
    """Create a workspace with credits, a provider on the fake server, three agents and a workflow chaining
    them; return (workflow id, API token)."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts_app.models import User
    from accounts_app.services import api_token_create, credits_grant, workspace_create
    from agents_app.services import agent_create
    from providers_app.services import provider_create
    from workflows_app.services import workflow_create

    user = User.objects.create_user(username=f"bench-{time.time_ns()}", password=None)
    actor = workspace_create(user=user, name=f"bench {time.time_ns()}")
    credits_grant(workspace=actor.workspace, amount=10_000_000, granted_by=None)
    provider = provider_create(actor=actor, type="custom", name="fake", base_url=model_url, models=["fake-model"])
    steps = []
    for index in range(STEPS):
        agent = agent_create(actor=actor, name=f"Echo {index + 1}", instructions="Repeat.", provider_id=provider.pk)
        source = {"input_source": "user"} if index == 0 else {"input_source": "previous_step"}
        steps.append({"id": f"step{index + 1}", "agent_id": agent.pk, **source})
    workflow = workflow_create(actor=actor, name="Echo chain", steps=steps)
    return workflow.pk, api_token_create(actor=actor, name="bench").raw


async def platform_phase(
    base: str, workflow_id: int, token: str, total: int, concurrency: int
) -> tuple[float, list[float]]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/api/v1/workflows/{workflow_id}/run"
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def call() -> None:
            async with http.post(url, json={"message": MESSAGE}) as response:
                body = await response.json()
                if response.status != 200 or body.get("status") != "succeeded":
                    raise RuntimeError(f"workflow run failed: {response.status} {body}")
                if body["results"][f"step{STEPS}"]["output"] != MESSAGE:
                    raise RuntimeError(f"unexpected results: {body['results']}")

        await drive(call, concurrency, concurrency)  # warm-up
        return await drive(call, total, concurrency)


async def sdk_phase(model_url: str, total: int, concurrency: int) -> tuple[float, list[float]]:
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, RunConfig, Runner
    from openai import AsyncOpenAI

    async with AsyncOpenAI(base_url=model_url, api_key="x", max_retries=0) as client:
        agents = [
            Agent(
                name=f"Echo {index + 1}",
                instructions="Repeat.",
                model=OpenAIChatCompletionsModel(model="fake-model", openai_client=client),
                model_settings=ModelSettings(include_usage=True),
            )
            for index in range(STEPS)
        ]
        config = RunConfig(tracing_disabled=True)

        async def call() -> None:
            text = MESSAGE
            for agent in agents:
                text = (await Runner.run(agent, text, run_config=config)).final_output
            if text != MESSAGE:
                raise RuntimeError(f"unexpected output: {text!r}")

        await drive(call, concurrency, concurrency)
        return await drive(call, total, concurrency)


def sdk_worker(model_url: str) -> None:
    """Serve SDK phases in this (clean) process: read "total concurrency" lines, answer JSON lines."""
    for line in sys.stdin:
        total, concurrency = map(int, line.split())
        rps, latencies = asyncio.run(sdk_phase(model_url, total, concurrency))
        print(json.dumps({"rps": rps, "latencies": latencies}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=240, help="timed workflow runs per round and side")
    parser.add_argument("--concurrency", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (median reported)")
    parser.add_argument("--quick", action="store_true", help="few runs, to check the script works")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn workers serving the platform (the SDK side is one process)"
    )
    parser.add_argument(
        "--profile", metavar="SVG", help="record the web server with py-spy into this file of collapsed stacks"
    )
    parser.add_argument("--sdk-worker", metavar="MODEL_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sdk_worker:
        sdk_worker(args.sdk_worker)
        return
    total, rounds_count = (args.concurrency, 1) if args.quick else (args.runs, args.rounds)

    env = bench_env()
    model_port, web_port = free_port(), free_port()
    model_url = f"http://127.0.0.1:{model_port}/v1"
    processes: list[subprocess.Popen[Any]] = [start_echo_server(env, model_port)]
    web: subprocess.Popen[Any] | None = None
    try:
        wait_http(model_url + "/models")
        workflow_id, token = setup_workflow(model_url)
        profiler = (
            ("py-spy", "record", "--gil", "--rate", "250", "--format", "raw", "-o", args.profile, "--")
            if args.profile
            else ()
        )
        web = start_web_server(env, web_port, prefix=profiler, workers=args.workers)
        processes.append(web)
        sdk = subprocess.Popen(
            [sys.executable, __file__, "--sdk-worker", model_url],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(sdk)
        base = f"http://127.0.0.1:{web_port}"
        wait_http(base + "/healthz")

        def sdk_side(runs: int, concurrency: int) -> tuple[float, list[float]]:
            if sdk.stdin is None or sdk.stdout is None:
                raise RuntimeError("the SDK process has no pipes")
            sdk.stdin.write(f"{runs} {concurrency}\n")
            sdk.stdin.flush()
            answer = sdk.stdout.readline()
            if not answer:
                raise RuntimeError("the SDK process ended")
            result = json.loads(answer)
            return result["rps"], result["latencies"]

        sides: dict[str, Any] = {
            "raw SDK, 3 x Runner.run": sdk_side,
            "platform POST /run": lambda runs, c: asyncio.run(platform_phase(base, workflow_id, token, runs, c)),
        }
        # Alternating rounds: this machine's speed drifts between minutes; both sides see the same drift.
        rounds: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in sides}
        for _ in range(rounds_count):
            for name, phase in sides.items():
                rounds[name].append(phase(total, args.concurrency))

        print(f"\n3-step echo workflow, c={args.concurrency}, {total} runs per round, median of {rounds_count} rounds")
        print(f"{'':<28}{'runs/s':>10}{'p50 ms':>10}{'p95 ms':>10}")
        medians = {name: summarize(side_rounds) for name, side_rounds in rounds.items()}
        for name, (rps, p50, p95) in medians.items():
            print(f"  {name:<26}{rps:>10.1f}{p50:>10.1f}{p95:>10.1f}")
        (sdk_rps, _, sdk_p95), (platform_rps, _, platform_p95) = medians.values()
        print(
            f"  throughput ratio platform/raw: {platform_rps / sdk_rps:.2f}   p95 ratio: {platform_p95 / sdk_p95:.2f}"
        )
        met = "met" if platform_p95 < 1000 else "NOT met"
        print(f"\nTarget: p95 under 1 s at c={args.concurrency} -> {met} ({platform_p95:.0f} ms)")
    finally:
        if args.profile and web is not None:
            web.send_signal(signal.SIGINT)  # py-spy writes its flame graph on an interrupt
            web.wait(timeout=60)
        stop_all(processes)


if __name__ == "__main__":
    main()
