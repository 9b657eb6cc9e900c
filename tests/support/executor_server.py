"""Start a real Firebox executor for a test: in this process, or as a separate process.

In process (fast; the test's event loop serves it)::

    async with running_executor(tmp_path, backend="docker") as target:
        channel = grpc.aio.insecure_channel(target)   # target == "127.0.0.1:PORT"

    async with running_executor_handle(tmp_path) as executor:   # the Executor object itself
        executor.target, executor.workspaces, executor.config ...

As a process (for SIGTERM / kill -9 / console-script tests)::

    proc = ExecutorProcess(tmp_path, backend="docker", env={"FIREBOX_AUTH_TOKEN": "t"})
    proc.start()            # waits until health answers SERVING
    proc.target             # "127.0.0.1:PORT"
    proc.terminate()        # SIGTERM and wait; proc.kill() for SIGKILL

Workspaces are containers labelled with the executor's instance id (kept in `config_dir`). The
in-process helpers remove them on exit; after an `ExecutorProcess`, call
`remove_owned_workspaces(config_dir)` (works even after kill -9).
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from executor_service.config import ExecutorConfig
from executor_service.server import Executor, start_executor
from firebox.executor.v1 import executor_pb2, executor_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = REPO / ".venv" / "bin" / "firebox-executor"


def executor_config(config_dir: Path, backend: str = "docker", **overrides: Any) -> ExecutorConfig:
    """A config for tests: port 0 on loopback, state under `config_dir`."""
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "config_dir": Path(config_dir),
        "backend": backend,
        "shutdown_grace": 2.0,
    }
    values.update(overrides)
    return ExecutorConfig(**values)


@contextlib.asynccontextmanager
async def running_executor_handle(
    config_dir: Path, backend: str = "docker", keep_workspaces: bool = False, **overrides: Any
) -> AsyncIterator[Executor]:
    """An in-process executor; yields the running Executor and stops it on exit. Its Docker
    workspaces are removed then too, unless `keep_workspaces` (to test adoption by a next one)."""
    executor = await start_executor(executor_config(config_dir, backend, **overrides))
    try:
        yield executor
    finally:
        try:
            await executor.stop(grace=1.0)
        finally:
            if not keep_workspaces:
                remove_owned_workspaces(config_dir)


@contextlib.asynccontextmanager
async def running_executor(
    config_dir: Path, backend: str = "docker", keep_workspaces: bool = False, **overrides: Any
) -> AsyncIterator[str]:
    """An in-process executor; yields its target "127.0.0.1:PORT"."""
    async with running_executor_handle(config_dir, backend, keep_workspaces, **overrides) as executor:
        yield executor.target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def listening_process(
    argv: list[str], port: int, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that serves on 127.0.0.1:`port`, yielded once the port accepts; stopped
    on exit. Its stderr is in the error if it never listens."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    raise RuntimeError(
                        f"{argv[0]} did not listen: {process.communicate()[1][-2000:]!r}"
                    ) from None
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ServiceProcess(abc.ABC):
    """A Firebox console script as a child process (subclasses say which, and its arguments)."""

    name = "service"

    def __init__(
        self,
        config_dir: Path,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.config_dir = Path(config_dir)
        self.env = dict(env or {})
        self.args = list(args or [])
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.config_dir / "process-output.log"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The program and its arguments."""

    def start(self, timeout: float = 30.0) -> Self:
        """Start the process and wait until its health check answers SERVING."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")}
        env.update(self.env)
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            if health_status(self.target, timeout=1.0) == health_pb2.HealthCheckResponse.SERVING:
                return self
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"{self.name} did not become healthy in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: none of the service's clean-up code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(timeout=15)
        self.kill()


class ExecutorProcess(ServiceProcess):
    """`firebox-executor` (the console script) as a child process."""

    name = "executor"

    def __init__(
        self,
        config_dir: Path,
        backend: str = "docker",
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(config_dir, env, args, port)
        self.backend = backend

    def command(self) -> list[str]:
        program = (
            [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "executor_service"]
        )
        return [
            *program,
            "--listen",
            self.target,
            "--config-dir",
            str(self.config_dir),
            "--backend",
            self.backend,
            *self.args,
        ]


def health_status(target: str, service: str = "", timeout: float = 2.0) -> int | None:
    """The health status a fresh channel sees, or None when nothing answers."""
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return None
        return response.status


def delete_workspaces(target: str, token: str | None = None) -> None:
    """Delete every workspace the executor at `target` owns (test clean-up)."""
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(target) as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        listed = stub.ListWorkspaces(executor_pb2.ListWorkspacesRequest(), metadata=metadata, timeout=30)
        for workspace in listed.workspaces:
            stub.DeleteWorkspace(
                executor_pb2.DeleteWorkspaceRequest(workspace_id=workspace.id), metadata=metadata, timeout=30
            )


def remove_owned_workspaces(config_dir: Path) -> int:
    """Remove, straight through the Docker engine, every container and volume of the executor
    whose state is in `config_dir` (clean-up that works even when the executor is dead).
    Returns how many containers were removed."""
    import docker

    from executor_service.backends.docker import LABEL_OWNER

    path = Path(config_dir) / "instance-id"
    if not path.exists():
        return 0
    owner = path.read_text().strip()
    client = docker.from_env()
    try:
        containers = client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"})
        for container in containers:
            container.remove(force=True)
        for volume in client.volumes.list(filters={"label": f"{LABEL_OWNER}={owner}"}):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
        return len(containers)
    finally:
        client.close()
