"""The agent as a separate process, and small process measurements, for fault and load tests.

    agent = AgentProcess(tmp_path / "agent", executor=executor.target, provider=fake_url)
    agent.start()          # waits until health answers SERVING
    agent.kill()           # SIGKILL; agent.start() again reuses the port and the database
    rss_kib(agent.pid)     # resident memory from /proc/<pid>/status

The executor's equivalent is tests.support.executor_server.ExecutorProcess.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from grpc_health.v1 import health_pb2

from tests.support.executor_server import free_port, health_status

REPO = Path(__file__).resolve().parents[2]
AGENT_SCRIPT = REPO / ".venv" / "bin" / "firebox-agent"


class AgentProcess:
    """`firebox-agent` (the console script) as a child process."""

    def __init__(
        self,
        config_dir: Path,
        executor: str,
        provider: str = "",
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.config_dir = Path(config_dir)
        self.executor = executor
        self.provider = provider
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

    def command(self) -> list[str]:
        program = [str(AGENT_SCRIPT)] if AGENT_SCRIPT.exists() else [sys.executable, "-m", "agent_service"]
        command = [
            *program,
            "--listen",
            self.target,
            "--config-dir",
            str(self.config_dir),
            "--executor",
            self.executor,
        ]
        if self.provider:
            command += ["--provider-base-url", self.provider, "--model", "fake-model"]
        return [*command, *self.args]

    def start(self, timeout: float = 30.0) -> AgentProcess:
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
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.output()}")
            if health_status(self.target, timeout=1.0) == health_pb2.HealthCheckResponse.SERVING:
                return self
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"agent did not become healthy in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no clean-up code of the agent runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(timeout=15)
        self.kill()


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (VmRSS from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
