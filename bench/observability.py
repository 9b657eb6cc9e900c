"""What metrics and traces cost the executor's hot path: warm Execute round trips (`true` in a
shell session) with tracing off, with tracing on (spans to an in-memory exporter), and with the
metrics interceptor on; plus the per-call cost of the hooks that stay in the path when both
are off.

Usage: python -m bench.observability [--samples N] [--backend bwrap|docker]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.agent import _summary
from executor_service import metrics as executor_metrics
from firebox.common import tracing
from firebox.executor.v1 import executor_pb2, executor_pb2_grpc
from tests.support.executor_server import free_port, running_executor


async def _round_trips(backend: str, samples: int, **overrides: Any) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="firebox-bench-obs-") as tmp:
        async with running_executor(Path(tmp), backend=backend, **overrides) as target:
            channel = grpc.aio.insecure_channel(target)
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            workspace = (await stub.CreateWorkspace(executor_pb2.CreateWorkspaceRequest())).workspace.id
            shell = (
                await stub.CreateSession(executor_pb2.CreateSessionRequest(workspace_id=workspace))
            ).session.id
            request = executor_pb2.ExecuteRequest(workspace_id=workspace, session_id=shell, script="true")
            times: list[float] = []
            for n in range(samples + 20):
                started = time.perf_counter()
                call = stub.Execute()
                await call.write(request)
                await call.done_writing()
                async for _ in call:
                    pass
                if n >= 20:  # warm-up
                    times.append((time.perf_counter() - started) * 1000)
            await channel.close()
            return _summary(times)


async def bench_observability(backend: str, samples: int) -> dict[str, Any]:
    results: dict[str, Any] = {"backend": backend, "samples": samples}
    results["tracing_off"] = await _round_trips(backend, samples)
    tracing.use_exporter(InMemorySpanExporter())
    try:
        results["tracing_on"] = await _round_trips(backend, samples)
    finally:
        tracing.shutdown()
    results["metrics_on"] = await _round_trips(backend, samples, metrics_listen=f"127.0.0.1:{free_port()}")
    counter = executor_metrics.EXECUTIONS.labels("exited")
    results["hooks_off_us"] = {
        # Always in the path: the executions-by-end-reason counter (metrics or not).
        "executions_counter": round(timeit.timeit(lambda: counter.inc(), number=100_000) * 10, 3),
        # The agent's outgoing-metadata hook with tracing off.
        "trace_context_off": round(timeit.timeit(lambda: tracing.outgoing(()), number=100_000) * 10, 3),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--backend", default="bwrap", choices=("bwrap", "docker"))
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench_observability(args.backend, args.samples)), indent=2))


if __name__ == "__main__":
    main()
