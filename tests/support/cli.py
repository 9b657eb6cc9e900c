"""Run the real `firebox` console script as a child process from async tests, so the test's event
loop keeps serving in-process servers while the CLI talks to them.

    result = await firebox("exec", "--", "echo", "hi", executor=target)
    assert result.code == 0 and result.stdout == b"hi\\n"
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIREBOX = REPO / ".venv" / "bin" / "firebox"


@dataclass
class CliResult:
    code: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    def error_line(self) -> str:
        """The single line firebox prints on failure (asserts there is exactly one, no traceback)."""
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in self.stderr, self.stderr
        return lines[0]


def cli_env(
    *, executor: str | None = None, agent: str | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The test process's environment without FIREBOX_* settings, plus the targets given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")}
    # Nothing listens on port 9 on loopback: a service a test does not start is unreachable.
    env["FIREBOX_EXECUTOR"] = executor or "127.0.0.1:9"
    env["FIREBOX_AGENT"] = agent or "127.0.0.1:9"
    env.update(extra or {})
    return env


async def start_firebox(
    *args: str,
    executor: str | None = None,
    agent: str | None = None,
    env: dict[str, str] | None = None,
    stdin: int | None = asyncio.subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """Start `firebox ARGS...` with pipes for stdout and stderr."""
    return await asyncio.create_subprocess_exec(
        str(FIREBOX),
        *args,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(executor=executor, agent=agent, extra=env),
    )


async def firebox(
    *args: str,
    executor: str | None = None,
    agent: str | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    limit: float = 90.0,
) -> CliResult:
    """Run `firebox ARGS...` to the end; `stdin` bytes are piped in (else stdin is /dev/null)."""
    process = await start_firebox(
        *args,
        executor=executor,
        agent=agent,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return CliResult(process.returncode, stdout, stderr.decode(errors="replace"))


async def finish(process: asyncio.subprocess.Process, limit: float = 60.0) -> CliResult:
    """Wait for a started firebox and gather what it printed."""
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return CliResult(process.returncode, stdout, stderr.decode(errors="replace"))


def interrupt(process: asyncio.subprocess.Process) -> None:
    """Ctrl-C, as a terminal would send it."""
    process.send_signal(signal.SIGINT)
