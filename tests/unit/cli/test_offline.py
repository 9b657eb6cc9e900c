"""The `firebox` console script with no server to talk to: one line on stderr, documented exit codes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FIREBOX = REPO / ".venv" / "bin" / "firebox"


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def firebox(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")}
    base.update({"FIREBOX_AGENT": closed_port(), "FIREBOX_EXECUTOR": closed_port(), **(env or {})})
    return subprocess.run([str(FIREBOX), *args], capture_output=True, text=True, env=base, timeout=60)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_exec_with_executor_down_exits_125_with_one_actionable_line() -> None:
    result = firebox("exec", "--", "true")
    assert result.returncode == 125
    line = one_line(result.stderr)
    assert line.startswith("firebox: cannot reach the executor at 127.0.0.1:")
    assert "connection refused" in line and "FIREBOX_EXECUTOR" in line


def test_listing_with_agent_down_exits_4_naming_the_agent_and_the_variable() -> None:
    result = firebox("sessions", "list")
    assert result.returncode == 4
    line = one_line(result.stderr)
    assert "cannot reach the agent" in line and "FIREBOX_AGENT" in line and "make run" in line


def test_flag_wins_over_environment_for_the_target() -> None:
    target = closed_port()
    result = firebox("--executor", target, "workspaces", "list")
    assert result.returncode == 4
    assert f"the executor at {target}" in one_line(result.stderr)


def test_connection_flags_are_accepted_after_the_subcommand_too() -> None:
    target = closed_port()
    result = firebox("workspaces", "list", "--executor", target)
    assert result.returncode == 4
    assert f"the executor at {target}" in one_line(result.stderr)


def test_status_with_both_down_exits_4_and_its_json_parses() -> None:
    result = firebox("status", "--json")
    assert result.returncode == 4
    report = json.loads(result.stdout)
    assert report["agent"]["health"] == "UNREACHABLE"
    assert report["executor"]["health"] == "UNREACHABLE"
    assert "cannot reach the executor" in report["executor"]["error"]


def test_unknown_command_is_a_usage_error_exit_2() -> None:
    result = firebox("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in one_line(result.stderr)


def test_exec_without_a_command_is_a_usage_error() -> None:
    result = firebox("exec")
    assert result.returncode == 2
    assert "exec needs a command" in one_line(result.stderr)


def test_client_certificate_without_key_is_a_usage_error_before_any_call(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    result = firebox("--tls-cert", str(cert), "workspaces", "list")
    assert result.returncode == 2
    assert "--tls-key" in one_line(result.stderr)


def test_help_lists_every_command_and_the_exit_codes() -> None:
    result = firebox("--help")
    assert result.returncode == 0
    for command in ("exec", "chat", "sessions", "workspaces", "runs", "status"):
        assert command in result.stdout
    assert "3 not found" in result.stdout
