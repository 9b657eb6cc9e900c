"""Shell-session fixtures: the same tests run on the executor's own backends, each with a workspace
it made: Docker (session shells over the exec socket, and over FIFOs) and bubblewrap."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from executor_service.backend import BWRAP, DOCKER, Policy, WorkspaceInfo, WorkspaceSpec
from executor_service.backends import choose_backend
from executor_service.backends.docker import DockerBackend
from executor_service.config import DEFAULT_IMAGE as TEST_IMAGE
from executor_service.engine import ExecutionEngine
from executor_service.execution import ExecuteSpec, Execution, Finished, Output, Started
from executor_service.sessions import SessionManager
from executor_service.shell import ShellConfig

OUTPUT_CAP = 256 * 1024
MEMORY_BYTES = 64 * 1024 * 1024


@dataclass
class Env:
    """A session manager and an engine over one backend, and the workspace they run in."""

    kind: str
    sessions: SessionManager
    engine: ExecutionEngine
    workspace: WorkspaceInfo

    async def start(self, script: str | None = None, session: str | None = None, **kw: object) -> Execution:
        spec = ExecuteSpec(workspace_id=self.workspace.id, session_id=session, script=script, **kw)  # type: ignore[arg-type]
        return await self.engine.start(self.workspace, spec)

    async def run(
        self, script: str | None = None, session: str | None = None, stdin: bytes | None = None, **kw: object
    ) -> Result:
        execution = await self.start(script, session, **kw)
        if stdin is not None:
            await execution.write_input(stdin)
        await execution.close_input()
        return await collect(execution)

    async def session(self) -> str:
        return (await self.sessions.create(self.workspace)).id


@dataclass
class Result:
    started: Started
    finished: Finished
    stdout: bytes = b""
    stderr: bytes = b""
    events: list[object] = field(default_factory=list)


async def collect(execution: Execution, limit: float = 30) -> Result:
    events = []

    async def read() -> None:
        async for event in execution.events():
            events.append(event)

    await asyncio.wait_for(read(), limit)
    assert isinstance(events[0], Started), events
    assert isinstance(events[-1], Finished), events
    outputs = [e for e in events if isinstance(e, Output)]
    return Result(
        events[0],
        events[-1],
        b"".join(o.stdout for o in outputs),
        b"".join(o.stderr for o in outputs),
        events,
    )


@dataclass
class Backing:
    """One of the executor's own backends and a workspace it made, shared by a module's tests."""

    kind: str
    backend: Any
    workspace: WorkspaceInfo


async def _backing(kind: str, config_dir: Path) -> AsyncIterator[Backing]:
    if kind == "bwrap":
        backend = await choose_backend(BWRAP, config_dir)
    else:
        # "docker": session shells over the exec socket; "docker-fifo": over FIFOs in a mounted
        # directory (the executor's choice when the engine shares its filesystem).
        backend = await choose_backend(
            DOCKER, config_dir, session_io="fifo" if kind == "docker-fifo" else "attach"
        )
    # The default policy but for memory: a small limit, so the out-of-memory case is quick.
    policy = Policy(memory_bytes=MEMORY_BYTES)
    spec = WorkspaceSpec(
        id="ws_" + secrets.token_hex(8), name=f"shell-{kind}", image=TEST_IMAGE, policy=policy
    )
    workspace = await backend.create(spec)
    try:
        yield Backing(kind, backend, workspace)
    finally:
        await backend.delete(workspace.id)
        if isinstance(backend, DockerBackend):
            backend.client.close()


KINDS = [
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker-fifo", marks=pytest.mark.docker),
    pytest.param("bwrap", marks=pytest.mark.bwrap),
]


@pytest.fixture(scope="module", params=KINDS)
async def backing(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backing]:
    async for made in _backing(request.param, tmp_path_factory.mktemp(f"{request.param}-executor")):
        yield made


@pytest.fixture
async def env(backing: Backing) -> AsyncIterator[Env]:
    """A fresh session manager and engine over the module's workspace (as the executor builds them)."""
    sessions = SessionManager(backing.backend, max_sessions_per_workspace=4, shell_config=ShellConfig())
    engine = ExecutionEngine(backing.backend, sessions, output_cap_bytes=OUTPUT_CAP)
    yield Env(backing.kind, sessions, engine, backing.workspace)
    await sessions.shutdown(0)
