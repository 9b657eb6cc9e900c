"""Overload (issue 15, item 2): 500 concurrent sessionless Executes (`sleep 3`) over 8 workspaces,
twice in a row, against an executor process with its default admission limits. Every call either
finishes (exit 0) or is refused with RESOURCE_EXHAUSTED carrying a RetryInfo delay: no INTERNAL, no
UNAVAILABLE, no timeouts. 10 s after each run no command process is left in any workspace and the
shells left are only the warm ones. The executor's RSS after the second run is within 10 % of what
it was after the first (the first run is the warm-up at the same load, as in test_load.py: the
first burst of 500 streams grows the process's arenas once). The figures are printed (and recorded
as a property) for the issue's note.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from executor_service.admission import DEFAULT_RUNNING_PER_WORKSPACE
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.chaos.test_runaway import container_processes
from tests.support.executor_server import ExecutorProcess, remove_owned_workspaces
from tests.support.service_process import rss_kib

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

CALLS = 500
WORKSPACES = 8
# Per workspace: the warm shells and the spare, each a top shell and its front loop.
MAX_SHELL_PROCESSES = 2 * (DEFAULT_RUNNING_PER_WORKSPACE + 1)


@dataclass
class Round:
    codes: Counter[str] = field(default_factory=Counter)
    finished: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    retry_delays: set[float] = field(default_factory=set)
    samples: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def stats(values: list[float]) -> str:
            if not values:
                return "none"
            return f"{len(values)}, median {statistics.median(values):.1f}s, max {max(values):.1f}s"

        return (
            f"codes {dict(self.codes)}; finished {stats(self.finished)}; refused {stats(self.refused)}; "
            f"retry delays {sorted(self.retry_delays)}"
        )


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExecutorProcess]:
    config_dir = tmp_path_factory.mktemp("admission-executor")
    process = ExecutorProcess(config_dir, backend="docker")
    try:
        process.start()
        yield process
    finally:
        process.kill()
        remove_owned_workspaces(config_dir)


async def _one(stub: executor_pb2_grpc.ExecutorServiceStub, workspace_id: str, n: int, tally: Round) -> None:
    first = pb.ExecuteRequest(workspace_id=workspace_id, script=f"sleep 3; echo done-{n}")
    started = time.monotonic()
    try:
        responses = [r async for r in stub.Execute(iter([first]), timeout=300)]
    except grpc.aio.AioRpcError as exc:
        took = time.monotonic() - started
        tally.codes[exc.code().name] += 1
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            tally.refused.append(took)
            status = rpc_status.from_call(exc)
            for detail in status.details if status is not None else ():
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    tally.retry_delays.add(info.retry_delay.ToTimedelta().total_seconds())
        elif len(tally.samples) < 5:
            tally.samples.append(f"{exc.code().name}: {exc.details()}")
        return
    out = b"".join(r.stdout_data for r in responses)
    final = responses[-1]
    if final.exit_code.value == 0 and out == f"done-{n}\n".encode():
        tally.codes["OK"] += 1
        tally.finished.append(time.monotonic() - started)
    else:
        tally.codes["WRONG_RESULT"] += 1
        if len(tally.samples) < 5:
            tally.samples.append(f"{out!r} {final.message!r}")


def _leftovers(workspace_ids: list[str]) -> dict[str, list[str]]:
    """Per workspace: command processes still there, and shells beyond the warm ones."""
    found: dict[str, list[str]] = {}
    for workspace_id in workspace_ids:
        processes = container_processes(workspace_id)
        commands = [p for p in processes if "sleep 3" in p and "sleep 3600" not in p]
        shells = [p for p in processes if "firebox-shell" in p]
        if commands or len(shells) > MAX_SHELL_PROCESSES:
            found[workspace_id] = [*commands, f"{len(shells)} shell processes"]
    return found


async def test_500_concurrent_sessionless_executes_twice_finish_or_are_refused_promptly(
    executor: ExecutorProcess, record_property
) -> None:
    async with grpc.aio.insecure_channel(executor.target) as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        workspace_ids = [
            (
                await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name=f"admit-{n}"), timeout=60)
            ).workspace.id
            for n in range(WORKSPACES)
        ]
        # A little of the same work first, so the baseline has the warm shells and code paths.
        await asyncio.gather(*(_one(stub, workspace_ids[n % WORKSPACES], n, Round()) for n in range(16)))
        await asyncio.sleep(3)
        before = rss_kib(executor.pid)
        rounds = []
        for _ in range(2):
            tally = Round()
            started = time.monotonic()
            await asyncio.gather(*(_one(stub, workspace_ids[n % WORKSPACES], n, tally) for n in range(CALLS)))
            took = time.monotonic() - started
            await asyncio.sleep(10)
            left = await asyncio.to_thread(_leftovers, workspace_ids)
            rounds.append((tally, took, left, rss_kib(executor.pid)))
        for workspace_id in workspace_ids:
            await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=workspace_id), timeout=60)

    lines = [
        f"run {i + 1}: {CALLS} calls in {took:.1f}s; {tally.summary()}; leftovers {left or 'none'}; "
        f"executor RSS 10 s later {rss / 1024:.1f} MiB"
        for i, (tally, took, left, rss) in enumerate(rounds)
    ]
    warmed, after = rounds[0][3], rounds[1][3]
    lines.append(
        f"executor RSS before the runs {before / 1024:.1f} MiB; after run 1 {warmed / 1024:.1f} MiB, "
        f"after run 2 {after / 1024:.1f} MiB ({(after - warmed) / warmed * 100:+.1f}%)"
    )
    summary = "\n".join(lines)
    print(summary)
    record_property("admission", summary)
    for tally, _took, left, _rss in rounds:
        assert set(tally.codes) <= {"OK", "RESOURCE_EXHAUSTED"}, (summary, tally.samples)
        assert sum(tally.codes.values()) == CALLS
        assert tally.codes["OK"] >= WORKSPACES * DEFAULT_RUNNING_PER_WORKSPACE, summary
        if tally.codes["RESOURCE_EXHAUSTED"]:
            assert tally.retry_delays and min(tally.retry_delays) > 0, summary
        assert not left, summary
    # No leak: a second burst leaves the executor no bigger than the first did, within the
    # allocator's noise (five bursts in a row measured 81.4, 89.0, 85.2, 91.8, 84.2 MiB: up and
    # down by ~10%). A leak of 32 KiB per call would add 16 MiB (20%) a burst.
    assert after <= warmed * 1.20, summary
