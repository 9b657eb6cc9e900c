"""`make bench`: start the services, measure, print a table and write the figures as JSON.

Usage: python -m bench.run [--quick] [--out bench/results/latest.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.executor import ExecutorBench
from bench.services import service

# name -> (figure path in the results, comparison, target)
TARGETS: dict[str, tuple[tuple[str, ...], str, float]] = {
    "warm round trip p50 (ms)": (("executor", "round_trip", "execute", "p50_ms"), "<=", 1.5),
    "round trip / docker exec_run": (("executor", "round_trip", "ratio_p50"), "<=", 0.05),
    "executes/s at 32 sessions": (("executor", "throughput", "32", "executes_per_s"), ">=", 1000),
    "output streaming (MB/s)": (("executor", "streaming", "mb_per_s"), ">=", 100),
    "create-to-running / raw SDK": (("executor", "create_to_running", "ratio_p50"), "<=", 1.2),
}


async def bench_executor(target: str, quick: bool) -> dict[str, Any]:
    b = ExecutorBench(target)
    try:
        ws = await b.workspace()
        results: dict[str, Any] = {}
        results["round_trip"] = await b.round_trip(ws, n=300 if quick else 2000)
        results["throughput"] = {
            str(c): await b.throughput(ws, c, seconds=2 if quick else 5) for c in (1, 8, 32)
        }
        results["streaming"] = await b.streaming(ws, total=50_000_000 if quick else 200_000_000)
        results["create_to_running"] = await b.create_to_running(n=3 if quick else 8)
        await b.delete(ws)
        return results
    finally:
        await b.close()


def dig(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        results = results.get(key, {}) if isinstance(results, dict) else {}
    return results if results != {} else None


def render(results: dict[str, Any], console: Console) -> None:
    table = Table(title="Firebox benchmarks")
    for col in ("figure", "measured", "target", "met"):
        table.add_column(col)
    for name, (path, op, target) in TARGETS.items():
        value = dig(results, path)
        if value is None:
            table.add_row(name, "not measured", f"{op} {target}", "-")
            continue
        met = value <= target if op == "<=" else value >= target
        table.add_row(name, f"{value}", f"{op} {target}", "yes" if met else "NO")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args()
    console = Console()
    results: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
    }
    executor_args = ["--backend", "docker", "--output-cap-bytes", str(512 * 1024 * 1024)]
    with service("firebox-executor", executor_args) as (target, _proc):
        console.print(f"executor at {target}")
        results["executor"] = asyncio.run(bench_executor(target, args.quick))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    render(results, console)
    console.print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
