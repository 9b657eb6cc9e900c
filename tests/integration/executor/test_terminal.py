"""Executions on a terminal (ExecuteRequest.tty) over real gRPC, on the docker backend (busybox:
no script, python or socat in the image) and on bwrap. Full-screen programs are checked on a
VT100 screen emulator fed with the terminal's bytes."""

from __future__ import annotations

import asyncio
import shutil

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute, first_request
from tests.support.executor_server import running_executor_handle
from tests.support.screen import TerminalExecution

pytestmark = pytest.mark.docker


def tty_request(
    workspace_id: str, script: str, rows: int = 24, cols: int = 80, **fields: object
) -> pb.ExecuteRequest:
    return first_request(workspace_id, script, tty=True, winsize=pb.Winsize(rows=rows, cols=cols), **fields)


async def test_program_sees_a_terminal_of_the_requested_size_with_term_set(stub, workspace):
    result = await execute(
        stub,
        workspace.id,
        script="test -t 0 && test -t 1 && test -t 2 && echo on-a-tty; stty size; echo $TERM",
        tty=True,
        winsize=pb.Winsize(rows=33, cols=101),
    )
    assert result.stdout == b"on-a-tty\r\n33 101\r\nxterm\r\n"
    assert result.stderr == b"" and result.exit_code == 0 and result.end_reason == pb.END_REASON_EXITED
    assert result.first.execution_id.startswith("ex_") and result.first.pid > 0


async def test_interactive_shell_shows_its_prompt_and_runs_what_is_typed(stub, workspace):
    first = tty_request(workspace.id, "PS1='fb$ ' exec sh -i")
    async with TerminalExecution(stub, first) as term:
        await term.wait_for("fb$")
        term.type("echo $((6 * 7))\r")
        screen = await term.wait_for("42")
        assert "fb$ echo $((6 * 7))" in screen
        term.type("exit 5\r")
        result = await term.finish()
    assert result.exit_code == 5


async def test_ctrl_c_interrupts_the_foreground_job_and_ctrl_d_ends_its_input(stub, workspace):
    first = tty_request(workspace.id, "PS1='fb$ ' exec sh -i")
    async with TerminalExecution(stub, first) as term:
        await term.wait_for("fb$")
        term.type("sleep 300; echo after-$((40 + 2))\r")
        await asyncio.sleep(0.5)
        term.type(b"\x03")
        await term.wait_for("^C")
        term.type("cat; echo cat-ended-$?\r")
        await asyncio.sleep(0.3)
        term.type("typed\r")
        await term.wait_for("typed\ntyped")
        term.type(b"\x04")
        screen = await term.wait_for("cat-ended-0")
        assert "after-42" not in screen
        term.type("exit\r")
        result = await term.finish()
    assert result.exit_code == 0


async def test_busybox_vi_opens_a_file_and_writes_it_back(stub, workspace):
    await execute(stub, workspace.id, script="printf 'first line\\n' > vi-test.txt")
    async with TerminalExecution(stub, tty_request(workspace.id, "vi vi-test.txt")) as term:
        screen = await term.wait_for("first line")
        assert "~" in screen  # vi marks the lines past the end of the file
        term.type("A, edited")
        await term.wait_for("first line, edited")
        # Escape alone: busybox vi reads ESC and what follows at once as one key sequence.
        term.type("\x1b")
        await asyncio.sleep(0.3)
        term.type(":wq\r")
        result = await term.finish()
    assert result.exit_code == 0
    saved = await execute(stub, workspace.id, script="cat vi-test.txt")
    assert saved.stdout == b"first line, edited\n"


async def test_top_redraws_at_the_new_size_after_a_resize(stub, workspace):
    async with TerminalExecution(stub, tty_request(workspace.id, "top -d 1", rows=20, cols=60)) as term:
        await term.wait_for("PID")
        # The wrapper shell's long command line is cut at the terminal's width.
        assert max(len(line.rstrip()) for line in term.screen.display) <= 60
        term.resize(40, 150)
        for _ in range(100):
            if max(len(line.rstrip()) for line in term.screen.display) > 60:
                break
            await asyncio.sleep(0.1)
        widths = [len(line.rstrip()) for line in term.screen.display]
        assert max(widths) > 60, term.text
        term.type("q")
        result = await term.finish()
    assert result.exit_code == 0


async def test_a_later_winsize_resizes_and_the_program_gets_sigwinch(stub, workspace):
    script = "trap 'stty size' WINCH; echo ready; while :; do sleep 0.1; done"
    async with TerminalExecution(stub, tty_request(workspace.id, script)) as term:
        await term.wait_for("ready")
        term.resize(10, 33)
        await term.wait_for("10 33")
        term.live.send(pb.ExecuteRequest(stop=pb.STOP_SIGNAL_INTERRUPT))
        result = await term.finish()
    assert result.end_reason == pb.END_REASON_STOPPED


async def test_an_interrupt_a_terminal_program_ignores_escalates_to_a_kill_and_says_so(stub, workspace):
    script = "trap '' INT; echo ready; while :; do sleep 0.1; done"
    async with TerminalExecution(stub, tty_request(workspace.id, script)) as term:
        await term.wait_for("ready")
        term.live.send(pb.ExecuteRequest(stop=pb.STOP_SIGNAL_INTERRUPT))
        result = await term.finish()
    assert result.final.end_reason == pb.END_REASON_STOPPED and result.exit_code == 137
    assert result.final.message == "killed: it did not end within the grace period after an interrupt"


async def test_a_killed_terminal_takes_its_background_jobs_with_it(stub, workspace):
    script = "sleep 4242 & echo started; wait"
    async with TerminalExecution(stub, tty_request(workspace.id, script)) as term:
        await term.wait_for("started")
        term.live.send(pb.ExecuteRequest(stop=pb.STOP_SIGNAL_KILL))
        result = await term.finish()
    assert result.end_reason == pb.END_REASON_STOPPED and result.exit_code == 137
    left = await execute(stub, workspace.id, script="ps -o args | grep -c '[s]leep 4242'")
    assert left.stdout == b"0\n"


async def test_timeout_kills_a_terminal_program(stub, workspace):
    result = await execute(stub, workspace.id, script="sleep 60", tty=True, timeout=0.5)
    assert result.end_reason == pb.END_REASON_TIMED_OUT and result.exit_code == 137


async def test_in_a_session_a_terminal_starts_in_its_state_and_what_it_changes_is_kept(stub, workspace):
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace.id))).session
    try:
        await execute(
            stub,
            workspace.id,
            script="cd /tmp; KEPT=1; export EXPORTED=2; set -- a 'b c'",
            session_id=session.id,
        )
        on_tty = await execute(
            stub,
            workspace.id,
            script='pwd; echo "$KEPT $EXPORTED $# $2"; cd /; export NEW=3; set -- "it\'s"',
            session_id=session.id,
            tty=True,
        )
        assert on_tty.stdout == b"/tmp\r\n1 2 2 b c\r\n" and on_tty.exit_code == 0
        after = await execute(
            stub,
            workspace.id,
            script='pwd; echo "$KEPT $NEW $# $1"; env | grep -c ^NEW=',
            session_id=session.id,
        )
        assert after.stdout == b"/\n1 3 1 it's\n1\n"
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))


async def test_a_session_is_busy_while_its_terminal_runs(stub, workspace):
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace.id))).session
    try:
        async with TerminalExecution(
            stub, tty_request(workspace.id, "echo up; sleep 30", session_id=session.id)
        ) as term:
            await term.wait_for("up")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await execute(stub, workspace.id, script="true", session_id=session.id)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            term.live.send(pb.ExecuteRequest(stop=pb.STOP_SIGNAL_KILL))
            await term.finish()
        again = await execute(stub, workspace.id, script="echo free", session_id=session.id)
        assert again.stdout == b"free\n"
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))


async def test_bad_winsize_is_invalid_argument(stub, workspace):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await execute(stub, workspace.id, script="true", tty=True, winsize=pb.Winsize(rows=5000, cols=80))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "winsize.rows" in info.value.details()


# ---- bwrap: the executor holds the terminal's master side ----------------------------------------


@pytest.fixture(scope="module")
async def bw(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed (scripts/test-env.sh installs it)")
    config_dir = tmp_path_factory.mktemp("bwrap-tty")
    async with running_executor_handle(config_dir, backend="bwrap") as running:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="bw-tty"))).workspace
            yield stub, ws
            await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


@pytest.mark.bwrap
async def test_bwrap_terminal_has_its_size_a_prompt_and_ctrl_c(bw):
    stub, ws = bw
    result = await execute(
        stub,
        ws.id,
        script="test -t 0 && echo on-a-tty; stty size",
        tty=True,
        winsize=pb.Winsize(rows=30, cols=90),
    )
    assert result.stdout == b"on-a-tty\r\n30 90\r\n"
    async with TerminalExecution(stub, tty_request(ws.id, "PS1='bw$ ' exec sh -i")) as term:
        await term.wait_for("bw$")
        term.type("sleep 300\r")
        await asyncio.sleep(0.5)
        term.type(b"\x03")
        term.type("stty size\r")
        await term.wait_for("24 80")
        term.resize(12, 40)
        term.type("stty size\r")
        await term.wait_for("12 40")
        term.type("exit 4\r")
        result = await term.finish()
    assert result.exit_code == 4, term.raw


@pytest.mark.bwrap
async def test_bwrap_terminal_in_a_session_keeps_what_it_changes(bw):
    stub, ws = bw
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
    try:
        await execute(stub, ws.id, script="cd /tmp; export A=1", session_id=session.id)
        on_tty = await execute(
            stub, ws.id, script='pwd; echo "$A"; cd /; B=2', session_id=session.id, tty=True
        )
        assert on_tty.stdout == b"/tmp\r\n1\r\n"
        after = await execute(stub, ws.id, script='pwd; echo "$A $B"', session_id=session.id)
        assert after.stdout == b"/\n1 2\n"
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))


async def test_every_byte_typed_reaches_the_program_even_the_engines_detach_keys(stub, workspace):
    script = "stty raw -echo; echo ready; head -c 6 | od -An -tx1"
    async with TerminalExecution(stub, tty_request(workspace.id, script)) as term:
        await term.wait_for("ready")
        term.type(b"\x10\x11\x00\x03ab")  # Ctrl-P Ctrl-Q (docker's default detach), NUL, Ctrl-C
        result = await term.finish()
    assert b"10 11 00 03 61 62" in result.stdout and result.exit_code == 0
