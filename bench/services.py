"""Start the real services as processes for benchmarks: the same console scripts `make run` uses."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.executor_server import remove_owned_workspaces

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(target: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with grpc.insecure_channel(target) as ch:
                reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{target} did not become healthy within {timeout:.0f}s: {last}")


@contextlib.contextmanager
def service(
    script: str, args: list[str], config_dir: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `script --listen 127.0.0.1:PORT --config-dir DIR ARGS…` until the block ends."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        if config_dir is None:
            config_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{script}-")))
        log = (config_dir / "bench-stderr.log").open("wb")
        stack.callback(log.close)
        proc = subprocess.Popen(
            [str(VENV_BIN / script), "--listen", target, "--config-dir", str(config_dir), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        try:
            wait_healthy(target)
            yield target, proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if script == "firebox-executor":
                remove_docker_workspaces(config_dir)


def remove_docker_workspaces(config_dir: Path) -> None:
    """Remove the containers and volumes of the executor whose state was in `config_dir`. A stopped
    executor leaves its workspaces (warm pool members too) for its next start to adopt; a bench's
    executor has no next start, and its config dir is about to go."""
    # The same clean-up as the tests': containers, volumes and the size-limited /workspace loop
    # mounts (left mounted, they keep the config dir from being removed).
    remove_owned_workspaces(config_dir)


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def wait_quiet(busy_below: float = 0.25, within: float = 30.0) -> float:
    """Wait until the machine's CPUs were less than `busy_below` busy over one second (at most
    `within` seconds): the tail of a previous phase (containers being removed, dirty pages written
    back, a service shutting down) must not land in the next phase's windows. Returns the seconds
    waited."""
    started = time.monotonic()
    busy, total = _cpu_times()
    while time.monotonic() - started < within:
        time.sleep(1.0)
        busy2, total2 = _cpu_times()
        share = (busy2 - busy) / max(1, total2 - total)
        busy, total = busy2, total2
        if share < busy_below:
            break
    return round(time.monotonic() - started, 1)
