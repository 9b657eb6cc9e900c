"""Shell-session fixtures: the same tests run on a local /bin/sh, a Docker container and bwrap."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from executor_service.backend import WorkspaceInfo
from executor_service.execution import ExecuteSpec, Execution, ExecutionEngine, Finished, Output, Started
from executor_service.sessions import SessionManager
from executor_service.shell import ShellConfig
from tests.support.shells import (
    TEST_IMAGE,
    BwrapShellBackend,
    DockerShellBackend,
    LocalShellBackend,
    bwrap_available,
    docker_available,
    workspace_info,
)

OUTPUT_CAP = 256 * 1024


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


@pytest.fixture(scope="session")
def docker_container(tmp_path_factory: pytest.TempPathFactory) -> object:
    """One container for the docker kinds, with a host directory bind-mounted read-only at
    /run/firebox for the session FIFOs (as the executor's docker backend mounts one)."""
    if not docker_available():
        pytest.skip("no Docker engine")
    import docker
    from docker.types import Mount

    io_dir = tmp_path_factory.mktemp("fifo-io").resolve()
    io_dir.chmod(0o755)
    client = docker.from_env()
    container = client.containers.run(
        TEST_IMAGE,
        ["sleep", "86400"],
        detach=True,
        init=True,  # reaps the zombies of killed sessions, as docker-init does in workspaces
        read_only=True,
        tmpfs={"/tmp": "size=64m,mode=1777"},
        mounts=[Mount("/run/firebox", str(io_dir), type="bind", read_only=True)],
        user="1000:1000",
        network_mode="none",
        pids_limit=256,
        mem_limit="256m",
        labels={"dev.firebox.test": "shell"},
        working_dir="/workspace",
    )
    yield client, container, io_dir
    container.remove(force=True)
    client.close()


def _backend(kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> object:
    if kind == "local":
        return LocalShellBackend(tmp_path_factory.mktemp("local-ws"))
    if kind == "bwrap":
        if not bwrap_available():
            pytest.skip("bubblewrap cannot create namespaces here")
        return BwrapShellBackend(tmp_path_factory.mktemp("bwrap-ws"))
    client, container, io_dir = request.getfixturevalue("docker_container")
    # "docker": the exec socket; "docker-fifo": FIFOs through the shared mount.
    return DockerShellBackend(client, container.id, io_dir=io_dir if kind == "docker-fifo" else None)


KINDS = [
    pytest.param("local"),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker-fifo", marks=pytest.mark.docker),
    pytest.param("bwrap", marks=pytest.mark.bwrap),
]


@pytest.fixture(params=KINDS)
async def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    kind = request.param
    backend = _backend(kind, request, tmp_path_factory)
    sessions = SessionManager(backend, max_sessions_per_workspace=4, shell_config=ShellConfig())  # type: ignore[arg-type]
    engine = ExecutionEngine(backend, sessions, output_cap_bytes=OUTPUT_CAP)  # type: ignore[arg-type]
    workspace = workspace_info("ws-" + secrets.token_hex(4), kind)
    yield Env(kind, sessions, engine, workspace)
    await sessions.shutdown(0)
