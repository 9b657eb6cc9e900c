"""Executor benchmarks: warm round trip against the docker SDK's exec_run, throughput under
concurrency, output streaming, and workspace create-to-running against a raw SDK create+start."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import docker
import grpc

from executor_service.backend import LABEL_ID
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc as pb_grpc

IMAGE = "firebox-busybox:latest"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 0.50) * 1000, 3),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
        "n": len(samples),
    }


async def execute(stub: Any, **first: Any) -> tuple[int, int, pb.ExecuteResponse]:
    """Run one Execute the way grpcurl does (send, half-close, read to the end).
    Returns (stdout bytes, stderr bytes, final message)."""
    call = stub.Execute()
    await call.write(pb.ExecuteRequest(**first))
    await call.done_writing()
    out = err = 0
    final = None
    async for resp in call:
        out += len(resp.stdout_data)
        err += len(resp.stderr_data)
        if resp.HasField("exit_code"):
            final = resp
    assert final is not None, "Execute ended without a final message"
    return out, err, final


class ExecutorBench:
    """Benchmarks against one running executor at `target`."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(
            target, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self.stub = pb_grpc.ExecutorServiceStub(self.channel)
        self.docker = docker.from_env()

    async def close(self) -> None:
        await self.channel.close()
        self.docker.close()

    async def workspace(self) -> str:
        reply = await self.stub.CreateWorkspace(pb.CreateWorkspaceRequest(image=IMAGE))
        return reply.workspace.id

    async def delete(self, workspace_id: str) -> None:
        await self.stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=workspace_id))

    async def session(self, workspace_id: str) -> str:
        reply = await self.stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace_id))
        return reply.session.id

    async def round_trip(self, workspace_id: str, n: int = 2000) -> dict[str, Any]:
        """`true` in a warm session, one after another, against exec_run on the same container."""
        session_id = await self.session(workspace_id)
        for _ in range(50):  # warm up
            await execute(self.stub, workspace_id=workspace_id, session_id=session_id, script="true")
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            _, _, final = await execute(
                self.stub, workspace_id=workspace_id, session_id=session_id, script="true"
            )
            samples.append(time.perf_counter() - t0)
            assert final.exit_code.value == 0, final
        container = self.docker.containers.list(filters={"label": f"{LABEL_ID}={workspace_id}"})[0]
        sdk = []
        for _ in range(50):
            t0 = time.perf_counter()
            await asyncio.to_thread(container.exec_run, ["true"])
            sdk.append(time.perf_counter() - t0)
        await self.stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
        ours, theirs = summary_ms(samples), summary_ms(sdk)
        return {
            "execute": ours,
            "docker_exec_run": theirs,
            "ratio_p50": round(ours["p50_ms"] / theirs["p50_ms"], 4),
        }

    async def throughput(self, workspace_id: str, concurrency: int, seconds: float = 5.0) -> dict[str, Any]:
        """Executes of `true` per second with `concurrency` sessions each running one at a time."""
        sessions = [await self.session(workspace_id) for _ in range(concurrency)]
        done = 0
        errors = 0
        stop_at = time.perf_counter() + seconds

        async def worker(session_id: str) -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                try:
                    await execute(self.stub, workspace_id=workspace_id, session_id=session_id, script="true")
                    done += 1
                except grpc.aio.AioRpcError:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for s in sessions))
        elapsed = time.perf_counter() - t0
        for s in sessions:
            await self.stub.CloseSession(pb.CloseSessionRequest(session_id=s))
        return {"concurrency": concurrency, "executes_per_s": round(done / elapsed, 1), "errors": errors}

    async def streaming(self, workspace_id: str, total: int = 200_000_000) -> dict[str, Any]:
        """Stream `total` bytes of output from one command to the client."""
        session_id = await self.session(workspace_id)
        t0 = time.perf_counter()
        out, _, final = await execute(
            self.stub, workspace_id=workspace_id, session_id=session_id, script=f"head -c {total} /dev/zero"
        )
        elapsed = time.perf_counter() - t0
        await self.stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
        assert out == total and not final.output_truncated, (out, final)
        return {"bytes": out, "seconds": round(elapsed, 3), "mb_per_s": round(out / elapsed / 1e6, 1)}

    async def create_to_running(self, n: int = 8) -> dict[str, Any]:
        """CreateWorkspace until RUNNING, against a raw docker SDK create+start of the same image."""
        ours = []
        for _ in range(n):
            t0 = time.perf_counter()
            ws = await self.workspace()
            ours.append(time.perf_counter() - t0)
            await self.delete(ws)
        raw = []
        for _ in range(n):
            t0 = time.perf_counter()
            c = await asyncio.to_thread(
                self.docker.containers.create, IMAGE, ["sh", "-c", "while :; do sleep 3600; done"], init=True
            )
            await asyncio.to_thread(c.start)
            raw.append(time.perf_counter() - t0)
            await asyncio.to_thread(c.remove, force=True)
        a, b = summary_ms(ours), summary_ms(raw)
        return {"firebox": a, "docker_sdk": b, "ratio_p50": round(a["p50_ms"] / b["p50_ms"], 3)}
