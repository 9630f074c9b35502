"""What running a code tool in the sandbox costs: a trivial tool's ``main`` called through ``run_code`` (bubblewrap,
seccomp, rlimits, a uid per call when root) against the same function called in this process.

Prints calls per second and p50/p95 latency of both, one call at a time and two at once, and the ratio
sandbox / in-process; the target is p50 at most 30 ms per sandboxed call (a bare interpreter starts in about
10 ms here, bubblewrap adds about 5 ms).

Usage: .venv/bin/python bench/sandbox.py [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CODE = "def main(a, b=10):\n    return {'sum': a + b}\n"


def measure(call: Callable[[], Any], calls: int, workers: int) -> tuple[float, list[float]]:
    """Return (calls per second, each call's latency in ms) for ``calls`` calls on ``workers`` threads."""
    latencies: list[float] = []

    def one(_: int) -> None:
        started = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(calls)))
    return calls / (time.perf_counter() - started), latencies


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from sandbox.executor import check, run_code

    status = check(force=True)
    if not status.ok:
        sys.exit(f"The sandbox is not available here: {status.detail}")
    namespace: dict[str, Any] = {}
    exec(compile(CODE, "<tool>", "exec"), namespace)  # noqa: S102 - the baseline: the same code, in process
    in_process = namespace["main"]

    def sandboxed() -> None:
        outcome = run_code(CODE, args={"a": 2, "b": 3})
        if not outcome.ok or outcome.value != {"sum": 5}:
            raise RuntimeError(f"The sandboxed call failed: {outcome}")

    def direct() -> None:
        in_process(a=2, b=3)

    sandboxed()  # warm: the first call starts the check and fills the page cache
    print(f"{args.calls} calls of a trivial code tool (bench/sandbox.py)")
    print(f"{'':24}{'calls/s':>10}{'p50 ms':>10}{'p95 ms':>10}")
    for workers in (1, 2):
        rate, latencies = measure(sandboxed, args.calls, workers)
        base_rate, base_latencies = measure(direct, args.calls * 50, workers)
        label = f"sandbox, {workers} at once"
        print(f"{label:24}{rate:>10.1f}{p(latencies, 50):>10.2f}{p(latencies, 95):>10.2f}")
        print(
            f"{'in process, ' + str(workers) + ' at once':24}{base_rate:>10.0f}"
            f"{p(base_latencies, 50):>10.4f}{p(base_latencies, 95):>10.4f}"
        )
        ratio = p(latencies, 50) / max(p(base_latencies, 50), 1e-6)
        print(f"  ratio sandbox / in process (p50): {ratio:,.0f}x")
        if workers == 1:  # the target is a call's latency on an idle machine
            print(f"  target p50 <= 30 ms per call: {'met' if p(latencies, 50) <= 30 else 'NOT met'}")


if __name__ == "__main__":
    main()
