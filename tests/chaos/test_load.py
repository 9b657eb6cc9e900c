"""Load: 200 concurrent Execute streams for 30 s with zero errors, and the executor's resident
memory afterwards within 10% of where it was before (after a warm-up at the same load).

The executor is a separate process; its RSS is read from /proc/<pid>/status.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_server import ExecutorProcess
from tests.support.service_process import rss_kib

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

STREAMS = 200
# Sessions (warm shells, the agents' hot path) spread over workspaces of at most 32 sessions each.
WORKSPACES = 8
LOAD_SECONDS = 30.0
WARMUP_SECONDS = 8.0


@dataclass
class Tally:
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(f"{kind}: {detail}")


async def one_stream(
    stub: executor_pb2_grpc.ExecutorServiceStub, slot: tuple[str, str], n: int, until: float, tally: Tally
) -> None:
    """Run short commands back to back on one stream slot until `until`, checking every answer."""
    i = 0
    while time.monotonic() < until:
        i += 1
        expected = f"s{n}-{i}"
        first = pb.ExecuteRequest(workspace_id=slot[0], session_id=slot[1], argv=["echo", expected])
        try:
            responses = [r async for r in stub.Execute(iter([first]), timeout=60)]
        except grpc.aio.AioRpcError as exc:
            tally.error(exc.code().name, exc.details() or "")
            continue
        out = b"".join(r.stdout_data for r in responses)
        final = responses[-1] if responses else pb.ExecuteResponse()
        if (
            final.end_reason != pb.END_REASON_EXITED
            or final.exit_code.value != 0
            or out != f"{expected}\n".encode()
        ):
            tally.error("WRONG_RESULT", f"{out!r} {final.message!r}")
        else:
            tally.ok += 1


async def load(target: str, slots: list[tuple[str, str]], seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(*(one_stream(stub, slots[n], n, until, tally) for n in range(STREAMS)))
        return tally, time.monotonic() - started


async def test_200_concurrent_streams_for_30s_without_errors_and_memory_returns(
    executor: ExecutorProcess, stub, record_property
) -> None:
    workspace_ids = [
        stub.CreateWorkspace(pb.CreateWorkspaceRequest(name=f"load-{n}"), timeout=60).workspace.id
        for n in range(WORKSPACES)
    ]
    pid = executor.proc.pid
    try:
        async with grpc.aio.insecure_channel(executor.target) as channel:
            aio_stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            sessions = await asyncio.gather(
                *(
                    aio_stub.CreateSession(
                        pb.CreateSessionRequest(workspace_id=workspace_ids[n % WORKSPACES]), timeout=120
                    )
                    for n in range(STREAMS)
                )
            )
        slots = [(r.session.workspace_id, r.session.id) for r in sessions]
        warm, _ = await load(executor.target, slots, WARMUP_SECONDS)
        assert not warm.errors, (warm.errors, warm.samples)
        await asyncio.sleep(3)
        before = rss_kib(pid)
        tally, took = await load(executor.target, slots, LOAD_SECONDS)
        peak = rss_kib(pid)
        # Give buffers and finished executions a moment to be released.
        after = peak
        for _ in range(20):
            await asyncio.sleep(0.5)
            after = rss_kib(pid)
            if after <= before * 1.10:
                break
        rate = tally.ok / took
        summary = (
            f"{STREAMS} streams x {took:.1f}s: {tally.ok} executes ({rate:.0f}/s), errors {dict(tally.errors)}; "
            f"executor RSS before {before / 1024:.1f} MiB, right after {peak / 1024:.1f} MiB, "
            f"settled {after / 1024:.1f} MiB ({(after - before) / before * 100:+.1f}%)"
        )
        print(summary)
        record_property("load", summary)
        assert not tally.errors, (summary, tally.samples)
        assert tally.ok > STREAMS, summary
        assert after <= before * 1.10, summary
    finally:
        for workspace_id in workspace_ids:
            stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=workspace_id), timeout=60)
