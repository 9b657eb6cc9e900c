"""Executor benchmarks: warm round trip against the docker SDK's exec_run, throughput under
concurrency, output streaming, workspace create-to-running against a raw docker SDK create+start,
and getting a workspace from the warm pool."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import docker
import grpc

from bench.services import wait_quiet
from executor_service.backend import LABEL_ID, LABEL_POOL
from executor_service.backends.docker import LABEL_OWNER
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc as pb_grpc

IMAGE = "firebox-busybox:latest"
# Cold creates carry this env: the warm pool only serves requests without env.
COLD_ENV = {"FIREBOX_BENCH": "cold"}


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
        # The workspace may have come from the warm pool, whose refill (a container start) would
        # otherwise run during the first second of samples.
        await asyncio.to_thread(wait_quiet)
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

    async def throughput(
        self, workspace_id: str, concurrency: int, seconds: float = 5.0, sessions: list[str] | None = None
    ) -> dict[str, Any]:
        """Executes of `true` per second with `concurrency` sessions each running one at a time:
        new sessions, closed afterwards, or the caller's `sessions` (left open)."""
        owned = sessions is None
        if sessions is None:
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
        for s in sessions if owned else ():
            await self.stub.CloseSession(pb.CloseSessionRequest(session_id=s))
        return {"concurrency": concurrency, "executes_per_s": round(done / elapsed, 1), "errors": errors}

    async def streaming(self, workspace_id: str, mib: int = 200) -> dict[str, Any]:
        """Stream `mib` MiB of output from one command to the client. The generator is
        `dd bs=1M`: busybox `head -c` writes 4 KiB blocks, which measures head, not the executor."""
        session_id = await self.session(workspace_id)
        script = f"dd if=/dev/zero bs=1M count={mib} 2>/dev/null"
        t0 = time.perf_counter()
        out, _, final = await execute(
            self.stub, workspace_id=workspace_id, session_id=session_id, script=script
        )
        elapsed = time.perf_counter() - t0
        await self.stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
        assert out == mib * 1024 * 1024 and not final.output_truncated, (out, final)
        return {
            "generator": script,
            "bytes": out,
            "seconds": round(elapsed, 3),
            "mb_per_s": round(out / elapsed / 1e6, 1),
        }

    async def create_to_running(self, n: int = 8) -> dict[str, Any]:
        """CreateWorkspace until RUNNING (cold: not from the pool), against a raw docker SDK
        create+start of the same image and env; the two alternate so drift hits both alike."""
        ours, raw = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            reply = await self.stub.CreateWorkspace(pb.CreateWorkspaceRequest(image=IMAGE, env=COLD_ENV))
            ours.append(time.perf_counter() - t0)
            await self.delete(reply.workspace.id)
            t0 = time.perf_counter()
            c = await asyncio.to_thread(
                self.docker.containers.create,
                IMAGE,
                ["sh", "-c", "while :; do sleep 3600; done"],
                init=True,
                environment=COLD_ENV,
            )
            await asyncio.to_thread(c.start)
            raw.append(time.perf_counter() - t0)
            await asyncio.to_thread(c.remove, force=True)
        a, b = summary_ms(ours), summary_ms(raw)
        return {"firebox": a, "docker_sdk": b, "ratio_p50": round(a["p50_ms"] / b["p50_ms"], 3)}

    def pool_waiting(self, config_dir: Path) -> int:
        """Warm-pool members of the executor whose state is in `config_dir` that nobody took."""
        owner = (config_dir / "instance-id").read_text().strip()
        members = self.docker.containers.list(filters={"label": [f"{LABEL_OWNER}={owner}", LABEL_POOL]})
        claimed = {p.stem for p in (config_dir / "pool-claims").glob("*.json")}
        return sum(1 for c in members if c.labels.get(LABEL_ID) not in claimed)

    async def wait_pool(self, config_dir: Path, size: int, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        while await asyncio.to_thread(self.pool_waiting, config_dir) < size:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the warm pool did not fill to {size} within {within:.0f}s")
            await asyncio.sleep(0.2)

    async def warm_pool(self, config_dir: Path, size: int, n: int) -> dict[str, Any]:
        """CreateWorkspace served by a full warm pool of `size`: `n` samples, taken `size` at a
        time, each batch after the pool has refilled."""
        samples: list[float] = []
        while len(samples) < n:
            await self.wait_pool(config_dir, size)
            batch = []
            for _ in range(min(size, n - len(samples))):
                t0 = time.perf_counter()
                batch.append(await self.workspace())
                samples.append(time.perf_counter() - t0)
            for ws in batch:
                await self.delete(ws)
        return {"pool_size": size, **summary_ms(samples)}
