"""What the training log costs: Execute throughput with the log on and off (target: at most 5%).

Two executors run side by side, one with `--training-log on`, one with `off`; measurement windows
alternate between them, in the order on-off then off-on (so that neither side always follows the
other), so that drift on a shared machine hits both alike, and each side's figure is the median of
its windows; the paired estimate is the median of each round's two windows' difference. One-second
windows on the development VM vary by ±15-20% on their own, against a cost of a few percent:
hence 60 pairs, over the same open sessions (an A/A run, both sides off, gives about 0%). The
writer process's CPU per record is reported too: it moves far less with the machine's other
load. The "on" side's log is then read back to prove it really wrote.

    python -m bench.trainlog [--quick]          # or call bench_trainlog() from `make bench`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.executor import ExecutorBench, execute
from bench.services import service, wait_quiet

TARGET_OVERHEAD_PCT = 5.0


async def _windows(
    targets: dict[str, str], rounds: int, seconds: float, concurrency: int
) -> dict[str, list[float]]:
    benches = {mode: ExecutorBench(target) for mode, target in targets.items()}
    rates: dict[str, list[float]] = {mode: [] for mode in targets}
    workspaces: dict[str, str] = {}
    sessions: dict[str, list[str]] = {}
    try:
        for mode, b in benches.items():
            workspaces[mode] = await b.workspace()
            # Sessions live through every window: starting and closing shells (docker execs)
            # between windows would spill work into the other side's next window.
            sessions[mode] = [await b.session(workspaces[mode]) for _ in range(concurrency)]
            for session_id in sessions[mode]:  # warm up: shells, channels, the writer's files
                for _ in range(10):
                    await execute(b.stub, workspace_id=workspaces[mode], session_id=session_id, script="true")
        for round_number in range(rounds):
            order = list(benches.items())
            for mode, b in order if round_number % 2 == 0 else reversed(order):
                result = await b.throughput(workspaces[mode], concurrency, seconds, sessions[mode])
                if result["errors"]:
                    raise RuntimeError(f"training log {mode}: {result['errors']} Execute calls failed")
                rates[mode].append(result["executes_per_s"])
    finally:
        for mode, b in benches.items():
            if mode in workspaces:
                await b.delete(workspaces[mode])
            await b.close()
    return rates


def _writer_cpu_seconds(service_pid: int) -> float | None:
    """User and system CPU of the service's training-log writer process so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or b"trainlog_writer" not in (entry / "cmdline").read_bytes():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == service_pid:  # its parent
            return (int(fields[11]) + int(fields[12])) / ticks
    return None


def bench_trainlog(quick: bool = False, concurrency: int = 8) -> dict[str, Any]:
    """Start two executors (training log on / off), measure, and return the figures."""
    rounds, seconds = (4, 1.0) if quick else (60, 1.0)
    with tempfile.TemporaryDirectory(prefix="firebox-bench-trainlog-") as tmp:
        on_dir, off_dir = Path(tmp, "on"), Path(tmp, "off")
        on_dir.mkdir()
        off_dir.mkdir()
        base = ["--backend", "docker"]
        with (
            service("firebox-executor", [*base, "--training-log", "on"], config_dir=on_dir) as (on, on_proc),
            service("firebox-executor", [*base, "--training-log", "off"], config_dir=off_dir) as (off, _),
        ):
            settled = wait_quiet()
            rates = asyncio.run(_windows({"on": on, "off": off}, rounds, seconds, concurrency))
            writer_cpu = _writer_cpu_seconds(on_proc.pid)
        # The services have stopped (and flushed): count what the "on" side wrote.
        written = sum(1 for path in (on_dir / "logs").glob("executions-*.jsonl") for _ in path.open("rb"))
        off_written = len(list((off_dir / "logs").glob("executions-*.jsonl")))
    on_median, off_median = statistics.median(rates["on"]), statistics.median(rates["off"])
    overhead = round((off_median - on_median) / off_median * 100, 2)
    # Each round's two windows are adjacent in time: their ratio cancels slow drift.
    paired = statistics.median(
        (off - on) / off * 100 for on, off in zip(rates["on"], rates["off"], strict=True)
    )
    return {
        "concurrency": concurrency,
        "window_seconds": seconds,
        "executes_per_s_on": rates["on"],
        "executes_per_s_off": rates["off"],
        "median_on": on_median,
        "median_off": off_median,
        "overhead_pct": overhead,
        "paired_overhead_pct": round(paired, 2),
        "target_overhead_pct": TARGET_OVERHEAD_PCT,
        "met": overhead <= TARGET_OVERHEAD_PCT,
        "records_written_on": written,
        "waited_for_quiet_s": settled,
        # CPU the writer process spent per record, warm-up included (None: not found).
        "writer_cpu_us_per_record": round(writer_cpu / written * 1e6, 1) if writer_cpu and written else None,
        "files_written_off": off_written,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter windows (a smoke run)")
    parser.add_argument("--concurrency", type=int, default=8, help="sessions executing at once (default 8)")
    args = parser.parse_args()
    print(json.dumps(bench_trainlog(args.quick, args.concurrency), indent=2))


if __name__ == "__main__":
    main()
