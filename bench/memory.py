"""Resident memory of the services (VmRSS from /proc/<pid>/status): idle, with many workspaces, and
with many sessions.

- executor: idle after start-up; with W workspaces; with S shell sessions spread evenly over those
  W workspaces (S / W each, every one a live `sh` with its docker exec attach socket open).
- agent: idle after start-up; with S agent sessions (conversations, stored in its SQLite database).

Full run: W = 100, S = 1000. Quick run: W = 20, S = 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from bench.executor import ExecutorBench
from bench.services import service
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.executor.v1 import executor_pb2 as pb
from tests.support.service_process import rss_kib

REPO = Path(__file__).resolve().parents[1]
# Requests in flight at once while filling: enough to keep the engine busy, not a stampede.
FILL_CONCURRENCY = 8


def rss_mb(pid: int) -> float:
    """Resident set size of process `pid` in MiB (VmRSS)."""
    return round(rss_kib(pid) / 1024, 1)


async def bounded(n: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run make(0..n-1) with at most FILL_CONCURRENCY at once, in order of the results."""
    gate = asyncio.Semaphore(FILL_CONCURRENCY)

    async def one(i: int) -> Any:
        async with gate:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def executor_memory(target: str, pid: int, workspaces: int, sessions: int) -> dict[str, Any]:
    """RSS of the executor at `target` (process `pid`) idle, with `workspaces`, with `sessions`."""
    b = ExecutorBench(target)
    created: list[str] = []
    try:
        idle = rss_mb(pid)
        # With env: a request the warm pool does not serve, so these are ordinary cold creates.
        created = await bounded(
            workspaces,
            lambda i: b.stub.CreateWorkspace(pb.CreateWorkspaceRequest(env={"FIREBOX_BENCH": str(i)})),
        )
        created = [r.workspace.id for r in created]
        await asyncio.sleep(1.0)
        with_workspaces = rss_mb(pid)
        await bounded(sessions, lambda i: b.session(created[i % len(created)]))
        await asyncio.sleep(1.0)
        with_sessions = rss_mb(pid)
        return {
            "idle_mb": idle,
            "workspaces": workspaces,
            "with_workspaces_mb": with_workspaces,
            "sessions": sessions,
            "with_sessions_mb": with_sessions,
        }
    finally:
        # Deleting a workspace closes its sessions.
        await bounded(len(created), lambda i: b.delete(created[i]))
        await b.close()


@contextlib.contextmanager
def _fake_provider() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_provider", "--deltas", "3"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def agent_memory(executor_target: str, sessions: int) -> dict[str, Any]:
    """Start an agent (fake provider), and measure its RSS idle and with `sessions` sessions."""
    with (
        tempfile.TemporaryDirectory(prefix="firebox-bench-agent-mem-") as tmp,
        _fake_provider() as url,
        service(
            "firebox-agent",
            ["--executor", executor_target, "--provider-base-url", url, "--model", "fake-model"],
            config_dir=Path(tmp),
        ) as (target, proc),
    ):
        return asyncio.run(_agent_sessions(target, proc.pid, sessions))


async def _agent_sessions(target: str, pid: int, sessions: int) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        await asyncio.sleep(1.0)
        idle = rss_mb(pid)
        await bounded(sessions, lambda i: stub.CreateSession(agent_pb2.CreateSessionRequest(title=f"s{i}")))
        await asyncio.sleep(1.0)
        return {"idle_mb": idle, "sessions": sessions, "with_sessions_mb": rss_mb(pid)}
