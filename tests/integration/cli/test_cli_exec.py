"""`firebox exec` and the workspace commands as a real child process against a real executor."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.cli import finish, firebox, interrupt, start_firebox

pytestmark = pytest.mark.docker


async def test_exec_streams_stdout_and_stderr_apart_and_passes_the_exit_code(executor) -> None:
    result = await firebox(
        "exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3", executor=executor.target
    )
    assert result.code == 3
    assert result.stdout == b"out\n"
    assert "err\n" in result.stderr


async def test_exec_creates_the_default_workspace_on_first_use(executor) -> None:
    result = await firebox("exec", "--", "true", executor=executor.target)
    assert result.code == 0, result.stderr
    listed = await firebox("workspaces", "list", "--json", executor=executor.target)
    names = [w["name"] for w in json.loads(listed.stdout)["workspaces"]]
    assert names.count("default") == 1


async def test_exec_forwards_piped_stdin_and_its_end(executor) -> None:
    data = b"line one\nline two\n\x00\xff binary tail without newline"
    result = await firebox("exec", "--", "cat", executor=executor.target, stdin=data)
    assert result.code == 0, result.stderr
    assert result.stdout == data


async def test_exec_with_a_terminal_less_stdin_sees_end_of_input(executor) -> None:
    # stdin is /dev/null here: `cat` must end rather than wait for input.
    result = await firebox("exec", "--", "cat", executor=executor.target)
    assert result.code == 0 and result.stdout == b""


async def test_exec_past_its_timeout_exits_124_and_says_why(executor) -> None:
    result = await firebox("exec", "--timeout", "1", "--", "sleep", "30", executor=executor.target)
    assert result.code == 124
    assert "firebox:" in result.stderr


async def test_exec_output_arrives_live_and_ctrl_c_stops_the_command(executor) -> None:
    await firebox("exec", "--", "true", executor=executor.target)  # the default workspace exists
    process = await start_firebox(
        "exec", "--", "sh", "-c", "echo started; sleep 60; echo never", executor=executor.target
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)
    assert first == b"started\n"  # printed before the sleep ends
    interrupt(process)
    result = await finish(process, limit=30)
    # 128 + SIGINT when the interrupt ends it, 128 + SIGKILL when the executor escalates.
    assert result.code in (130, 137)
    assert b"never" not in result.stdout
    assert "stopping" in result.stderr


async def test_exec_second_ctrl_c_kills_a_command_that_ignores_interrupts(executor) -> None:
    await firebox("exec", "--", "true", executor=executor.target)
    process = await start_firebox(
        "exec", "--", "sh", "-c", "trap '' INT; echo started; sleep 60; echo never", executor=executor.target
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 30) == b"started\n"
    interrupt(process)
    await asyncio.sleep(0.1)
    interrupt(process)
    result = await finish(process, limit=30)
    assert result.code == 137  # 128 + SIGKILL
    assert b"never" not in result.stdout
    # The second Ctrl-C sends a kill; on a loaded machine the executor's own escalation of an
    # ignored interrupt (after 0.5 s) may get there first. Either way the CLI said it was stopping.
    assert "stopping (Ctrl-C again to kill)" in result.stderr, result.stderr
    assert "killing the command" in result.stderr or "killed" in result.stderr, result.stderr


async def test_exec_session_keeps_the_working_directory_between_commands(executor) -> None:
    first = await firebox("exec", "--session", "cli-cwd", "--", "cd", "/tmp", executor=executor.target)
    assert first.code == 0, first.stderr
    second = await firebox("exec", "--session", "cli-cwd", "--", "pwd", executor=executor.target)
    assert second.code == 0, second.stderr
    assert second.stdout == b"/tmp\n"


async def test_exec_quotes_arguments_like_argv(executor) -> None:
    result = await firebox("exec", "--", "printf", "[%s]", "a b", "$HOME", "*", executor=executor.target)
    assert result.code == 0, result.stderr
    assert result.stdout == b"[a b][$HOME][*]"


async def test_exec_argv_flag_runs_the_program_without_a_shell(executor) -> None:
    result = await firebox("exec", "--argv", "--", "printf", "%s", "a;b", executor=executor.target)
    assert result.code == 0, result.stderr
    assert result.stdout == b"a;b"


async def test_exec_shell_flag_runs_shell_text(executor) -> None:
    result = await firebox("exec", "--shell", "--", "echo a b | wc -w", executor=executor.target)
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == b"2"


async def test_exec_in_an_unknown_workspace_exits_125_with_one_line(executor) -> None:
    result = await firebox("exec", "--workspace", "no-such-workspace", "--", "true", executor=executor.target)
    assert result.code == 125
    line = result.error_line()
    assert "no-such-workspace" in line and "firebox workspaces list" in line


async def test_workspace_lifecycle_through_the_cli(executor) -> None:
    created = await firebox("workspaces", "create", "cli-life", "--json", executor=executor.target)
    assert created.code == 0, created.stderr
    workspace = json.loads(created.stdout)["workspace"]
    assert workspace["name"] == "cli-life" and workspace["status"] == "WORKSPACE_STATUS_RUNNING"

    shown = await firebox("workspaces", "show", "cli-life", "--json", executor=executor.target)
    assert json.loads(shown.stdout)["workspace"]["id"] == workspace["id"]

    stopped = await firebox("workspaces", "stop", workspace["id"], "--json", executor=executor.target)
    assert json.loads(stopped.stdout)["workspace"]["status"] == "WORKSPACE_STATUS_EXITED"

    refused = await firebox("exec", "-w", "cli-life", "--", "true", executor=executor.target)
    assert refused.code == 125
    assert "firebox:" in refused.error_line()

    started = await firebox("workspaces", "start", "cli-life", executor=executor.target)
    assert started.code == 0 and "running" in started.text

    deleted = await firebox("workspaces", "delete", "cli-life", executor=executor.target)
    assert deleted.code == 0, deleted.stderr
    gone = await firebox("workspaces", "show", "cli-life", executor=executor.target)
    assert gone.code == 3
    assert "cli-life" in gone.error_line()


async def test_status_reports_the_executor_backend_and_version_and_exits_4_without_agent(executor) -> None:
    result = await firebox("status", "--json", executor=executor.target)
    report = json.loads(result.stdout)
    assert report["executor"]["health"] == "SERVING"
    assert report["executor"]["info"]["backend"] == "BACKEND_DOCKER"
    assert report["executor"]["info"]["version"]
    assert report["agent"]["health"] == "UNREACHABLE"
    assert result.code == 4
