"""The agent as a separate process, and small process measurements, for fault and load tests.

    agent = AgentProcess(tmp_path / "agent", executor=executor.target, provider=fake_url)
    agent.start()          # waits until health answers SERVING
    agent.kill()           # SIGKILL; agent.start() again reuses the port and the database
    rss_kib(agent.pid)     # resident memory from /proc/<pid>/status

The executor's equivalent is tests.support.executor_server.ExecutorProcess.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.executor_server import ServiceProcess

REPO = Path(__file__).resolve().parents[2]
AGENT_SCRIPT = REPO / ".venv" / "bin" / "firebox-agent"


class AgentProcess(ServiceProcess):
    """`firebox-agent` (the console script) as a child process."""

    name = "agent"

    def __init__(
        self,
        config_dir: Path,
        executor: str,
        provider: str = "",
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(config_dir, env, args, port)
        self.executor = executor
        self.provider = provider

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


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (VmRSS from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
