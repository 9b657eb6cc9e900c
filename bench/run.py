"""`make bench`: start the services, measure, print a table and write the figures as JSON.

Usage: python -m bench.run [--quick] [--out bench/results/latest.json]

Starts its own executor (docker backend, a warm pool) and agent processes (with the fake model
provider of tests/support/fake_provider.py) and measures them; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agent_service.runs import DEFAULT_LEASE_SECONDS
from bench.agent import bench_agent
from bench.executor import ExecutorBench
from bench.memory import agent_memory, executor_memory, rss_mb
from bench.providers import STALL_IDLE_SECONDS, bench_providers
from bench.replicas import bench_replicas
from bench.services import service
from bench.terminals import bench_terminals
from bench.trainlog import bench_trainlog
from bench.workspaces import bench_workspaces

# name -> (figure path in the results, comparison, target); comparison None = shown, no target.
TARGETS: dict[str, tuple[tuple[str, ...], str | None, float | None]] = {
    "warm round trip p50 (ms)": (("executor", "round_trip", "execute", "p50_ms"), "<=", 1.5),
    "round trip / docker exec_run": (("executor", "round_trip", "ratio_p50"), "<=", 0.05),
    "docker exec_run p50 (ms)": (("executor", "round_trip", "docker_exec_run", "p50_ms"), None, None),
    "Execute through agent p50 (ms)": (("agent", "execute", "p50_ms"), "<=", 2.5),
    "through agent / docker exec_run": (("agent", "execute_ratio_p50"), None, None),
    "executes/s at 1 session": (("executor", "throughput", "1", "executes_per_s"), None, None),
    "executes/s at 8 sessions": (("executor", "throughput", "8", "executes_per_s"), None, None),
    "executes/s at 32 sessions": (("executor", "throughput", "32", "executes_per_s"), ">=", 1000),
    "output streaming (MB/s, dd bs=1M)": (("executor", "streaming", "mb_per_s"), ">=", 100),
    "PTY round trip p50 (ms)": (("executor", "terminals", "pty_round_trip", "p50_ms"), None, None),
    "stdin into a session command (MB/s)": (("executor", "terminals", "stdin", "mb_per_s"), ">=", 50),
    "stdin into a PTY (MB/s)": (("executor", "terminals", "pty_stdin", "mb_per_s"), ">=", 10),
    "attach replay of 1 MiB p50 (ms)": (
        ("executor", "terminals", "attach_replay", "replay_1mib", "p50_ms"),
        None,
        None,
    ),
    "ForwardPort (MB/s)": (("executor", "terminals", "port_forward", "forward_port_mb_per_s"), None, None),
    "docker exec piping the same (MB/s)": (
        ("executor", "terminals", "port_forward", "docker_exec_pipe_mb_per_s"),
        None,
        None,
    ),
    "create-to-running / raw SDK": (("executor", "create_to_running", "ratio_p50"), "<=", 1.2),
    "create-to-running p50 (ms)": (("executor", "create_to_running", "firebox", "p50_ms"), None, None),
    "warm pool create p50 (ms)": (("executor", "warm_pool", "p50_ms"), "<=", 20),
    "stock Debian create-to-running / raw SDK": (
        ("workspaces", "stock_create_to_running", "debian", "ratio_p50"),
        "<=",
        1.2,
    ),
    "stock busybox create-to-running / raw SDK": (
        ("workspaces", "stock_create_to_running", "busybox", "ratio_p50"),
        "<=",
        1.2,
    ),
    "pause+resume p50 (ms)": (("workspaces", "pause_resume", "firebox", "p50_ms"), None, None),
    "pause+resume / SDK pause+unpause": (("workspaces", "pause_resume", "ratio_p50"), None, None),
    "snapshot of 100 MiB p50 (ms)": (
        ("workspaces", "snapshot_and_fork", "snapshot", "firebox", "p50_ms"),
        None,
        None,
    ),
    "SDK commit p50 (ms, no volume)": (
        ("workspaces", "snapshot_and_fork", "snapshot", "docker_sdk", "p50_ms"),
        None,
        None,
    ),
    "fork-to-first-Execute p50 (ms)": (
        ("workspaces", "snapshot_and_fork", "fork_to_first_execute", "firebox", "p50_ms"),
        None,
        None,
    ),
    "SDK create+start+exec of commit p50 (ms)": (
        ("workspaces", "snapshot_and_fork", "fork_to_first_execute", "docker_sdk", "p50_ms"),
        None,
        None,
    ),
    "per-turn workspace snapshot (1 MiB project) p50 (ms)": (
        ("workspaces", "turn_snapshot", "snapshot", "p50_ms"),
        None,
        None,
    ),
    "per-turn workspace snapshot disk p50 (bytes)": (
        ("workspaces", "turn_snapshot", "disk_bytes_p50"),
        None,
        None,
    ),
    "devcontainer build + create p50 (ms)": (
        ("workspaces", "devcontainer_build", "first_create", "firebox", "p50_ms"),
        None,
        None,
    ),
    "SDK build + create+start p50 (ms)": (
        ("workspaces", "devcontainer_build", "first_create", "docker_sdk", "p50_ms"),
        None,
        None,
    ),
    "devcontainer create, image cached p50 (ms)": (
        ("workspaces", "devcontainer_build", "cached_create", "firebox", "p50_ms"),
        None,
        None,
    ),
    "agent added TTFT p50 (ms)": (("agent", "ttft", "added_p50_ms"), "<=", 5),
    "relayed delta events/s at 64 runs": (("agent", "relay", "64", "deltas_per_s"), ">=", 20000),
    "TTFT added p50, openai / anthropic wire (ms)": (("providers", "ttft_added_p50_ms"), None, None),
    "provider CPU per token, openai / anthropic (µs)": (("providers", "relay_us_per_token"), None, None),
    "openai SDK's own stream CPU per token (µs)": (
        ("providers", "openai", "relay", "sdk_stream_us_per_token"),
        None,
        None,
    ),
    "stall ended after last token, openai (s)": (
        ("providers", "openai", "stall", "ended_after_last_token_s"),
        "<=",
        STALL_IDLE_SECONDS + 1,
    ),
    "stall ended after last token, anthropic (s)": (
        ("providers", "anthropic", "stall", "ended_after_last_token_s"),
        "<=",
        STALL_IDLE_SECONDS + 1,
    ),
    "training log cost (%)": (("trainlog", "overhead_pct"), "<=", 5),
    "executor RSS idle (MB)": (("memory", "executor", "idle_mb"), None, None),
    "executor RSS, W workspaces (MB)": (("memory", "executor", "with_workspaces_mb"), None, None),
    "executor RSS, S shell sessions (MB)": (("memory", "executor", "with_sessions_mb"), None, None),
    "runs/s, SQLite, 1 agent": (("replicas", "sqlite_1", "runs_per_s"), None, None),
    "runs/s, PostgreSQL, 1 agent": (("replicas", "postgresql_1", "runs_per_s"), None, None),
    "runs/s, PostgreSQL, 3 agents": (("replicas", "postgresql_3", "runs_per_s"), None, None),
    "events/s, SQLite, 1 agent": (("replicas", "sqlite_1", "events_per_s"), None, None),
    "events/s, PostgreSQL, 1 agent": (("replicas", "postgresql_1", "events_per_s"), None, None),
    "events/s, PostgreSQL, 3 agents": (("replicas", "postgresql_3", "events_per_s"), None, None),
    "follower on another agent p50 (ms)": (("replicas", "follower_latency", "p50_ms"), None, None),
    "follower on another agent p99 (ms)": (("replicas", "follower_latency", "p99_ms"), None, None),
    "follower on the running agent p50 (ms)": (("replicas", "owner_follower_latency", "p50_ms"), None, None),
    "takeover after kill -9, run going on again p50 (ms)": (("replicas", "takeover", "p50_ms"), None, None),
    "takeover after kill -9, run going on again max (ms)": (("replicas", "takeover", "max_ms"), None, None),
    "agent RSS idle (MB)": (("memory", "agent", "idle_mb"), None, None),
    "agent RSS, S sessions (MB)": (("memory", "agent", "with_sessions_mb"), None, None),
}


async def bench_executor(target: str, config_dir: Path, quick: bool, pool_size: int) -> dict[str, Any]:
    b = ExecutorBench(target)
    try:
        ws = await b.workspace()
        results: dict[str, Any] = {}
        results["round_trip"] = await b.round_trip(ws, n=300 if quick else 2000)
        results["throughput"] = {
            str(c): await b.throughput(ws, c, seconds=2 if quick else 5) for c in (1, 8, 32)
        }
        results["streaming"] = await b.streaming(ws, mib=50 if quick else 200)
        results["terminals"] = await bench_terminals(target, quick)
        await b.delete(ws)
        results["create_to_running"] = await b.create_to_running(n=3 if quick else 8)
        results["warm_pool"] = await b.warm_pool(config_dir, pool_size, n=pool_size * (2 if quick else 5))
        return results
    finally:
        await b.close()


async def wait_pool(target: str, config_dir: Path, size: int) -> None:
    b = ExecutorBench(target)
    try:
        await b.wait_pool(config_dir, size)
    finally:
        await b.close()


FAILED: list[str] = []


def guarded(name: str, console: Console, measure: Any) -> dict[str, Any]:
    """One part's figures; a part that fails is reported in the results, the rest still run, and the
    run as a whole exits non-zero (a benchmark that measured nothing must not look like a pass)."""
    try:
        return measure()
    except Exception as exc:
        console.print(f"[red]{name} benchmark failed: {exc!r}[/red]")
        FAILED.append(name)
        return {"error": repr(exc)}


def dig(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        results = results.get(key, {}) if isinstance(results, dict) else {}
    return results if results != {} else None


def render(results: dict[str, Any], console: Console) -> list[str]:
    """Print the table; return the names of the figures that were not measured."""
    unmeasured = []
    table = Table(title="Firebox benchmarks")
    for col in ("figure", "measured", "target", "met"):
        table.add_column(col)
    for name, (path, op, target) in TARGETS.items():
        value = dig(results, path)
        wanted = f"{op} {target}" if op else ""
        if value is None:
            table.add_row(name, "not measured", wanted, "-")
            unmeasured.append(name)
            continue
        if op is None or target is None:
            table.add_row(name, f"{value}", "", "")
            continue
        met = value <= target if op == "<=" else value >= target
        table.add_row(name, f"{value}", wanted, "yes" if met else "NO")
    console.print(table)
    return unmeasured


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
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # Other work on the machine moves every figure: the 1-minute load at start and end.
            "load_start": round(os.getloadavg()[0], 2),
        },
    }
    pool_size = 2 if args.quick else 4
    workspaces, sessions = (20, 200) if args.quick else (100, 1000)
    results["sizes"] = {"warm_pool": pool_size, "memory_workspaces": workspaces, "memory_sessions": sessions}
    executor_args = [
        "--backend",
        "docker",
        "--output-cap-bytes",
        str(512 * 1024 * 1024),
        "--warm-pool-size",
        str(pool_size),
        "--log-level",
        "warning",
    ]
    with (
        tempfile.TemporaryDirectory(prefix="firebox-bench-executor-") as tmp,
        service("firebox-executor", executor_args, config_dir=Path(tmp)) as (target, proc),
    ):
        console.print(f"executor at {target}")
        config_dir = Path(tmp)
        # Idle: started, the warm pool full (its refill is the only background work).
        asyncio.run(wait_pool(target, config_dir, pool_size))
        idle = rss_mb(proc.pid)
        # Memory first, so that the buffers of the later throughput runs do not count as idle.
        memory = guarded(
            "executor memory",
            console,
            lambda: asyncio.run(executor_memory(target, proc.pid, workspaces, sessions)),
        )
        results["memory"] = {"executor": {**memory, "idle_mb": idle}}
        console.print("memory measured; executor figures…")
        results["executor"] = guarded(
            "executor",
            console,
            lambda: asyncio.run(bench_executor(target, config_dir, args.quick, pool_size)),
        )
        console.print("workspace lifecycle figures…")
        results["workspaces"] = guarded(
            "workspaces", console, lambda: asyncio.run(bench_workspaces(target, args.quick))
        )
        console.print("agent figures…")
        results["agent"] = guarded("agent", console, lambda: asyncio.run(bench_agent(args.quick, target)))
        exec_run = dig(results, ("executor", "round_trip", "docker_exec_run", "p50_ms"))
        through_agent = dig(results, ("agent", "execute", "p50_ms"))
        if exec_run and through_agent:
            results["agent"]["execute_ratio_p50"] = round(through_agent / exec_run, 4)
        results["memory"]["agent"] = guarded("agent memory", console, lambda: agent_memory(target, sessions))
    console.print("provider paths…")
    results["providers"] = guarded("providers", console, lambda: asyncio.run(bench_providers(args.quick)))
    wires = ("openai", "anthropic")
    if all(dig(results, ("providers", w, "ttft", "added_p50_ms")) is not None for w in wires):
        providers = results["providers"]
        providers["ttft_added_p50_ms"] = " / ".join(str(providers[w]["ttft"]["added_p50_ms"]) for w in wires)
        providers["relay_us_per_token"] = " / ".join(
            str(providers[w]["relay"]["module_us_per_token"]) for w in wires
        )
    console.print("training log cost…")
    results["trainlog"] = guarded("training log", console, lambda: bench_trainlog(args.quick))
    results["replicas"] = guarded(
        "agent replicas",
        console,
        lambda: asyncio.run(
            bench_replicas(args.quick, kills=3 if args.quick else 10, lease=DEFAULT_LEASE_SECONDS)
        ),
    )
    results["machine"]["load_end"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    unmeasured = render(results, console)
    console.print(f"figures written to {args.out}")
    if FAILED or unmeasured:
        console.print(
            f"[red]failed parts: {FAILED or 'none'}; figures not measured: {unmeasured or 'none'}[/red]"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
