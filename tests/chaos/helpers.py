"""Helpers of the chaos tests: run a command and read what it said, collect log files."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc

# A host variable that must never be visible inside a workspace (set in the executor's environment).
HOST_PROBE_NAME = "CHAOS_HOST_ONLY_VARIABLE"
HOST_PROBE_VALUE = "host-value-7c1e"


class Result:
    """Everything an Execute stream said."""

    def __init__(self, responses: Sequence[pb.ExecuteResponse]) -> None:
        self.responses = list(responses)
        self.stdout = b"".join(r.stdout_data for r in responses)
        self.stderr = b"".join(r.stderr_data for r in responses)
        self.final = responses[-1] if responses else pb.ExecuteResponse()

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    def __repr__(self) -> str:
        return (
            f"Result(end={pb.EndReason.Name(self.final.end_reason)}, exit={self.final.exit_code.value}, "
            f"message={self.final.message!r}, stdout={self.stdout[:300]!r}, stderr={self.stderr[:300]!r})"
        )


def execute(
    stub: executor_pb2_grpc.ExecutorServiceStub,
    workspace_id: str,
    script: str,
    timeout: float = 60.0,
    session_id: str = "",
    command_timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    first = pb.ExecuteRequest(workspace_id=workspace_id, script=script, session_id=session_id, env=env or {})
    if command_timeout is not None:
        first.timeout.FromMilliseconds(int(command_timeout * 1000))
    return Result(list(stub.Execute(iter([first]), timeout=timeout)))


def all_log_text(*dirs: Path) -> dict[Path, bytes]:
    """Every file under these directories (logs, training logs, process output), by path."""
    files: dict[Path, bytes] = {}
    for directory in dirs:
        for path in Path(directory).rglob("*"):
            if (
                path.is_file()
                and path.suffix not in (".db", ".db-wal", ".db-shm")
                and path.name != "instance-id"
            ):
                files[path] = path.read_bytes()
    return files


class HealthProbe:
    """Checks the executor's health every 100 ms on its own channel, recording each latency."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    self.latencies.append(time.perf_counter() - started)
                except grpc.RpcError as exc:
                    self.failures.append(exc.code().name)
                self._stop.wait(0.1)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def summary(self) -> str:
        if not self.latencies:
            return "no health answers"
        return (
            f"{len(self.latencies)} checks, median {statistics.median(self.latencies) * 1000:.1f} ms, "
            f"max {max(self.latencies) * 1000:.1f} ms"
        )
