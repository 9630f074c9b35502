"""Throughput and latency of ``POST /api/v1/agents/{id}/run`` through the whole platform, against the raw SDK.

Both sides call the same fast scripted model server (aiohttp, a separate process) and use one process
for the system under test: one uvicorn worker for the platform (database, auth, credits, run records,
conversation memory, traces; a plain token run like these is served by the API hot path, config/hot_path.py), and one
clean Python process for ``Runner.run`` (only the SDK imported, so its garbage collector walks no more
than the SDK's own objects). The load for the platform comes from this process with aiohttp, which is
much cheaper than a run. Results are printed as ratios; the targets are at least 0.5 of the raw
throughput at concurrency 32, and at most 10 ms added to the p50 latency at concurrency 1. A third phase
streams the same run (``"stream": true`` against ``Runner.run_streamed``) at concurrency 1 and compares the time
to the first text delta: at most 5 ms added at p50.

The platform's processes freeze their start-up heap and collect garbage less often (config/memory.py,
GC_THRESHOLDS). The targets are judged against the SDK as a user runs it (Python's defaults); the SDK
run with the platform's collector settings is printed too, so the share of the gain that any SDK
program could have is visible.

Usage: .venv/bin/python bench/run_overhead.py [--runs 400] [--rounds 3] [--quick]
Uses DATABASE_URL when set, else an embedded Postgres of its own under var/bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(rounds: list[tuple[float, list[float]]]) -> tuple[float, float, float]:
    """Return the medians over rounds of (runs per second, p50 ms, p95 ms)."""
    rps = statistics.median(r for r, _ in rounds)
    p50 = statistics.median(statistics.median(latencies) for _, latencies in rounds)
    p95 = statistics.median(percentile(latencies, 0.95) for _, latencies in rounds)
    return rps, p50, p95


def stop_all(processes: list[subprocess.Popen[Any]]) -> None:
    for process in reversed(processes):
        process.terminate()
        process.wait(timeout=20)


async def drive(call, total: int, concurrency: int) -> tuple[float, list[float]]:
    """Run ``call`` ``total`` times with ``concurrency`` in flight; return (runs per second, latencies in ms).

    A latency runs to the end of the call, or to the time the call returns (a streamed call: its first text).
    """
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one() -> None:
        async with semaphore:
            started = time.perf_counter()
            first = await call()  # a streamed call returns when its first text came (perf_counter), else None
            latencies.append(((first if first is not None else time.perf_counter()) - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return total / (time.perf_counter() - started), latencies


def bench_env() -> dict[str, str]:
    """Return (and apply to this process) the environment of a benchmark: DATABASE_URL or an embedded database
    of its own, the fake model server allowed, quiet logs."""
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if not env.get("DATABASE_URL"):
        env["VAR_DIR"] = str(ROOT / "var" / "bench")
    env["PROVIDER_EGRESS_ALLOWLIST"] = "127.0.0.1"
    env["LOG_LEVEL"] = "warning"
    os.environ.update(env)
    return env


def start_model_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """Start the fast scripted model server (tests/fakes) on ``port``."""
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def start_web_server(
    env: dict[str, str], port: int, *, prefix: tuple[str, ...] = (), workers: int = 1, **extra_env: str
) -> subprocess.Popen[bytes]:
    """Start the platform under ``workers`` uvicorn workers on ``port``, with ``extra_env`` added to ``env`` (and
    the command behind ``prefix``, such as a profiler's)."""
    command = [*prefix, sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port)]
    command += ["--workers", str(workers)]
    command += ["--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(command, cwd=ROOT, env={**env, **extra_env})


def setup_platform(model_url: str) -> tuple[int, str]:
    """Create a workspace with credits, a provider on the fake server and an agent; return (agent id, token)."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts_app.models import User
    from accounts_app.services import api_token_create, credits_grant, workspace_create
    from agents_app.services import agent_create
    from providers_app.services import provider_create

    user = User.objects.create_user(username=f"bench-{time.time_ns()}", password=None)
    actor = workspace_create(user=user, name=f"bench {time.time_ns()}")
    credits_grant(workspace=actor.workspace, amount=1_000_000, granted_by=None)
    provider = provider_create(actor=actor, type="custom", name="fake", base_url=model_url, models=["fake-model"])
    agent = agent_create(actor=actor, name="Bench", instructions="You are helpful.", provider_id=provider.pk)
    return agent.pk, api_token_create(actor=actor, name="bench").raw


async def platform_phase(
    base: str, agent_id: int, token: str, total: int, concurrency: int
) -> tuple[float, list[float]]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/api/v1/agents/{agent_id}/run"
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def call() -> None:
            async with http.post(url, json={"message": "What is the weather in Paris?"}) as response:
                body = await response.json()
                if response.status != 200 or body.get("status") != "succeeded":
                    raise RuntimeError(f"run failed: {response.status} {body}")

        await drive(call, max(20, concurrency * 2), concurrency)  # warm-up
        return await drive(call, total, concurrency)


async def platform_stream_phase(base: str, agent_id: int, token: str, total: int) -> tuple[float, list[float]]:
    """Streamed runs one at a time; latencies are the time to the first ``text`` event."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/api/v1/agents/{agent_id}/run"
    async with aiohttp.ClientSession(headers=headers) as http:

        async def call() -> float:
            first = None
            async with http.post(url, json={"message": "What is the weather in Paris?", "stream": True}) as response:
                async for line in response.content:
                    if first is None and line.startswith(b"event: text"):
                        first = time.perf_counter()
                    elif line.startswith(b"event: error"):
                        raise RuntimeError("streamed run failed")
            if first is None:
                raise RuntimeError("no text event")
            return first

        await drive(call, 20, 1)
        return await drive(call, total, 1)


async def sdk_phase(model_url: str, total: int, concurrency: int, stream: bool = False) -> tuple[float, list[float]]:
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, RunConfig, Runner
    from openai import AsyncOpenAI

    async with AsyncOpenAI(base_url=model_url, api_key="x", max_retries=0) as client:
        agent = Agent(
            name="Bench",
            instructions="You are helpful.",
            model=OpenAIChatCompletionsModel(model="fake-model", openai_client=client),
            model_settings=ModelSettings(include_usage=True),
        )
        config = RunConfig(tracing_disabled=True)

        async def call() -> None:
            result = await Runner.run(agent, "What is the weather in Paris?", run_config=config)
            if not result.final_output:
                raise RuntimeError("empty output")

        async def call_streamed() -> float:
            first = None
            streamed = Runner.run_streamed(agent, "What is the weather in Paris?", run_config=config)
            async for event in streamed.stream_events():
                if (
                    first is None
                    and event.type == "raw_response_event"
                    and event.data.type == "response.output_text.delta"
                ):
                    first = time.perf_counter()
            if first is None:
                raise RuntimeError("no text delta")
            return first

        if stream:
            await drive(call_streamed, 20, 1)
            return await drive(call_streamed, total, 1)
        await drive(call, max(20, concurrency * 2), concurrency)
        return await drive(call, total, concurrency)


def sdk_worker(model_url: str, gc_tuned: bool) -> None:
    """Serve SDK phases in this (clean) process: read "total concurrency" lines, answer JSON lines."""
    import agents  # noqa: F401  (loaded before the heap is frozen, as the platform's are)

    if gc_tuned:
        gc.collect()
        gc.freeze()
        gc.set_threshold(20000, 20, 20)  # the platform's default GC_THRESHOLDS
    for line in sys.stdin:
        total, concurrency, stream = map(int, line.split())
        rps, latencies = asyncio.run(sdk_phase(model_url, total, concurrency, bool(stream)))
        print(json.dumps({"rps": rps, "latencies": latencies}), flush=True)


class SDKProcess:
    """A child process that runs the raw SDK side (``sdk_worker``), so its heap holds the SDK only."""

    def __init__(self, env: dict[str, str], model_url: str, *, gc_tuned: bool = False) -> None:
        command = [sys.executable, __file__, "--sdk-worker", model_url] + (["--gc-tuned"] if gc_tuned else [])
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def phase(self, total: int, concurrency: int, stream: bool = False) -> tuple[float, list[float]]:
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the SDK process has no pipes")
        stdin.write(f"{total} {concurrency} {int(stream)}\n")
        stdin.flush()
        answer = stdout.readline()
        if not answer:
            raise RuntimeError("the SDK process ended")
        result = json.loads(answer)
        return result["rps"], result["latencies"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="timed runs per configuration at concurrency 32")
    parser.add_argument("--quick", action="store_true", help="few runs, to check the script works")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (median reported)")
    parser.add_argument("--sdk-worker", metavar="MODEL_URL", help=argparse.SUPPRESS)
    parser.add_argument("--gc-tuned", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sdk_worker:
        sdk_worker(args.sdk_worker, args.gc_tuned)
        return
    runs_c32 = 64 if args.quick else args.runs
    runs_c1 = 30 if args.quick else max(100, args.runs // 4)

    env = bench_env()
    model_port, web_port = free_port(), free_port()
    model_url = f"http://127.0.0.1:{model_port}/v1"
    processes: list[subprocess.Popen[Any]] = [start_model_server(env, model_port)]
    try:
        wait_http(model_url + "/models")
        agent_id, token = setup_platform(model_url)
        processes.append(start_web_server(env, web_port))
        plain, tuned = SDKProcess(env, model_url), SDKProcess(env, model_url, gc_tuned=True)
        processes += [plain.process, tuned.process]
        sides: dict[str, Any] = {"raw SDK Runner.run": plain.phase, "raw SDK, platform's GC": tuned.phase}
        base = f"http://127.0.0.1:{web_port}"
        sides["platform POST /run"] = lambda total, c: asyncio.run(platform_phase(base, agent_id, token, total, c))
        wait_http(base + "/healthz")

        streamed: dict[str, list[tuple[float, list[float]]]] = {"raw SDK Runner.run_streamed": [], "platform": []}
        for _ in range(args.rounds):
            streamed["raw SDK Runner.run_streamed"].append(plain.phase(runs_c1, 1, stream=True))
            streamed["platform"].append(asyncio.run(platform_stream_phase(base, agent_id, token, runs_c1)))

        rows = []
        for concurrency, total in ((1, runs_c1), (32, runs_c32)):
            # Alternate the sides, several rounds: this machine's speed drifts by tens of percent between
            # minutes, and alternating exposes every side to the same drift.
            rounds: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in sides}
            for _ in range(args.rounds):
                for name, phase in sides.items():
                    rounds[name].append(phase(total, concurrency))
            rows.append((concurrency, total, rounds))

        print(f"\n{'':<28}{'runs/s':>10}{'p50 ms':>10}{'p95 ms':>10}   (median of {args.rounds} alternating rounds)")
        results = {}
        for concurrency, total, rounds in rows:
            print(f"c={concurrency}, {total} runs per round")
            medians = {name: summarize(side_rounds) for name, side_rounds in rounds.items()}
            for name, (rps, p50, p95) in medians.items():
                print(f"  {name:<26}{rps:>10.1f}{p50:>10.2f}{p95:>10.2f}")
            (sdk_rps, sdk_p50, _), (tuned_rps, tuned_p50, _), (platform_rps, platform_p50, _) = medians.values()
            ratio, added = platform_rps / sdk_rps, platform_p50 - sdk_p50
            results[concurrency] = (ratio, added)
            print(
                f"  throughput ratio platform/raw: {ratio:.2f} (against the SDK with the platform's GC: "
                f"{platform_rps / tuned_rps:.2f})   p50 added: {added:+.2f} ms ({platform_p50 - tuned_p50:+.2f} ms)"
            )
        print(f"streamed, c=1, {runs_c1} runs per round: time to the first text event")
        first_text = {name: summarize(side_rounds) for name, side_rounds in streamed.items()}
        for name, (_, p50, p95) in first_text.items():
            print(f"  {name:<26}{'':>10}{p50:>10.2f}{p95:>10.2f}")
        added_first = first_text["platform"][1] - first_text["raw SDK Runner.run_streamed"][1]
        print(f"  p50 added: {added_first:+.2f} ms")
        ratio, added_c1 = results[32][0], results[1][1]
        print(
            f"\nTargets: c=32 ratio >= 0.50 -> {'met' if ratio >= 0.5 else 'NOT met'} ({ratio:.2f}); "
            f"c=1 p50 added <= 10 ms -> {'met' if added_c1 <= 10 else 'NOT met'} ({added_c1:+.2f} ms); "
            f"first text p50 added <= 5 ms -> {'met' if added_first <= 5 else 'NOT met'} ({added_first:+.2f} ms)"
        )
    finally:
        stop_all(processes)


if __name__ == "__main__":
    main()
