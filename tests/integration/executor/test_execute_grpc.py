"""Execute behaviours over real gRPC: sessions, stop, cancel, half-close, busy sessions, the
training log record."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import LiveExecution, execute, first_request

pytestmark = pytest.mark.docker


async def running_sleeps(stub, workspace_id: str, seconds: str) -> int:
    """How many `sleep SECONDS` processes run in the workspace (each test sleeps a length of its own)."""
    result = await execute(stub, workspace_id, script=f"ps -o args | grep -c '^sleep {seconds}$' || true")
    return int(result.stdout)


async def until_sleeps(stub, workspace_id: str, seconds: str, count: int, within: float = 15.0) -> None:
    """Wait (bounded) until exactly `count` such sleeps run; fail naming what was seen."""
    seen = -1
    for _ in range(int(within / 0.1)):
        seen = await running_sleeps(stub, workspace_id, seconds)
        if seen == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{seen} `sleep {seconds}` processes running, expected {count}")


async def test_first_response_has_execution_id_and_pid_and_last_has_exit_code(stub, workspace):
    result = await execute(stub, workspace.id, script="echo out; echo err >&2; exit 3")
    assert result.first.execution_id.startswith("ex_") and result.first.pid > 0
    assert result.stdout == b"out\n" and result.stderr == b"err\n"
    assert result.exit_code == 3 and result.end_reason == pb.END_REASON_EXITED
    assert result.final.duration.ToTimedelta().total_seconds() > 0


async def test_a_quick_command_is_one_message_and_a_slow_one_announces_itself_first(stub, workspace):
    # `true` ends within the 5 ms hold nearly always; a loaded machine may miss it now and then, so
    # this runs it until one run is a single message (bounded: 200 runs), not against a clock.
    runs = []
    while len(runs) < 200 and not any(len(run.responses) == 1 for run in runs):
        runs.append(await execute(stub, workspace.id, script="true"))
    assert all(sum(1 for r in run.responses if r.execution_id) == 1 for run in runs)
    quick = next(run for run in runs if len(run.responses) == 1)
    assert quick.first.execution_id.startswith("ex_") and quick.first.pid > 0
    assert quick.first.HasField("exit_code") and quick.first.end_reason == pb.END_REASON_EXITED
    # Nothing follows within the hold: execution_id and pid come first, alone, long before the end.
    slow = await execute(stub, workspace.id, script="sleep 1; echo done")
    assert slow.first.execution_id.startswith("ex_") and slow.first.pid > 0
    assert not slow.first.HasField("exit_code") and not slow.first.stdout_data
    assert slow.stdout == b"done\n" and slow.exit_code == 0
    assert sum(1 for r in slow.responses if r.execution_id) == 1


async def test_argv_runs_without_shell_interpretation(stub, workspace):
    result = await execute(stub, workspace.id, argv=["echo", "$HOME", "a b"])
    assert result.stdout == b"$HOME a b\n"


async def test_cd_and_variables_persist_across_executes_in_a_session(stub, workspace):
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace.id))).session
    try:
        await execute(
            stub, workspace.id, script="cd /tmp; export KEPT=yes; f() { echo fn; }", session_id=session.id
        )
        result = await execute(stub, workspace.id, script='pwd; echo "$KEPT"; f', session_id=session.id)
        assert result.stdout == b"/tmp\nyes\nfn\n"
        listed = (await stub.ListSessions(pb.ListSessionsRequest(workspace_id=workspace.id))).sessions
        assert session.id in [s.id for s in listed]
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await execute(stub, workspace.id, script="pwd", session_id=session.id)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_without_session_nothing_is_kept(stub, workspace):
    await execute(stub, workspace.id, script="cd /tmp; export GONE=1")
    result = await execute(stub, workspace.id, script='pwd; echo "[$GONE]"')
    assert result.stdout == b"/workspace\n[]\n"


async def test_half_close_is_end_of_input_not_a_stop(stub, workspace):
    # The request stream closes right after the first message, as grpcurl does; the command must
    # still run to its end, and its stdin sees EOF.
    result = await execute(stub, workspace.id, script="sleep 1; cat; echo done")
    assert result.stdout == b"done\n"
    assert result.end_reason == pb.END_REASON_EXITED and result.exit_code == 0


async def test_input_data_reaches_the_program(stub, workspace):
    later = [pb.ExecuteRequest(input_data=b"hello\n"), pb.ExecuteRequest(close_input=True)]
    result = await execute(stub, workspace.id, script="cat", later=later)
    assert result.stdout == b"hello\n"


async def test_stop_over_the_stream_kills_the_command(stub, workspace):
    script = "echo ready; sleep 60.1; touch /workspace/stop-marker"
    live = LiveExecution(stub, first_request(workspace.id, script=script))
    await live.read_until_output(b"ready")
    await until_sleeps(stub, workspace.id, "60.1", 1)
    live.send(pb.ExecuteRequest(stop=pb.STOP_SIGNAL_KILL))
    result = await live.finish(within=10)
    assert result.end_reason == pb.END_REASON_STOPPED
    # The sleep was killed, and the rest of the script never ran.
    await until_sleeps(stub, workspace.id, "60.1", 0)
    check = await execute(stub, workspace.id, script="ls /workspace/stop-marker 2>&1")
    assert b"No such file" in check.stdout


async def test_timeout_kills_the_whole_script(stub, workspace):
    result = await execute(
        stub, workspace.id, script="echo before; sleep 30.2; touch /workspace/timeout-marker", timeout=1
    )
    assert result.stdout == b"before\n"
    assert result.end_reason == pb.END_REASON_TIMED_OUT
    await until_sleeps(stub, workspace.id, "30.2", 0)
    check = await execute(stub, workspace.id, script="ls /workspace/timeout-marker 2>&1")
    assert b"No such file" in check.stdout


async def test_client_cancel_kills_the_command(stub, workspace, executor):
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace.id))).session
    try:
        script = "echo ready; sleep 60.3; touch /workspace/cancel-marker-session"
        live = LiveExecution(stub, first_request(workspace.id, script=script, session_id=session.id))
        await live.read_until_output(b"ready")
        await until_sleeps(stub, workspace.id, "60.3", 1)
        live.cancel()
        await until_sleeps(stub, workspace.id, "60.3", 0)
        # The session becomes idle again (its command was killed) and takes the next command.
        for _ in range(300):
            listed = (await stub.ListSessions(pb.ListSessionsRequest(workspace_id=workspace.id))).sessions
            if [s.status for s in listed if s.id == session.id] == [pb.SESSION_STATUS_IDLE]:
                break
            await asyncio.sleep(0.05)
        result = await execute(
            stub,
            workspace.id,
            script="sleep 1; ls /workspace/cancel-marker-session 2>&1",
            session_id=session.id,
        )
        # The whole command was killed, not only its sleep: the rest of the script never ran.
        assert b"No such file" in result.stdout
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    record = await wait_for_record(
        executor.config.training_log_dir,
        lambda r: r["request"]["sessionId"] == session.id and "cancel-marker" in r["request"]["script"],
    )
    assert record["endReason"] == "END_REASON_CANCELLED"
    assert record["stdoutHead"] == "ready\n"


async def test_client_cancel_kills_a_sessionless_command(stub, workspace):
    script = "echo ready; sleep 60.4; touch /workspace/cancel-marker-fresh"
    live = LiveExecution(stub, first_request(workspace.id, script=script))
    await live.read_until_output(b"ready")
    await until_sleeps(stub, workspace.id, "60.4", 1)
    live.cancel()
    await until_sleeps(stub, workspace.id, "60.4", 0)
    result = await execute(stub, workspace.id, script="ls /workspace/cancel-marker-fresh 2>&1")
    assert b"No such file" in result.stdout


async def test_busy_session_is_refused_naming_the_running_execution(stub, workspace):
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace.id))).session
    try:
        live = LiveExecution(
            stub, first_request(workspace.id, script="echo ready; sleep 30", session_id=session.id)
        )
        await live.read_until_output(b"ready")
        running_id = live.responses[0].execution_id
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await execute(stub, workspace.id, script="true", session_id=session.id)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert running_id in info.value.details()
        live.send(pb.ExecuteRequest(stop=pb.STOP_SIGNAL_KILL))
        await live.finish()
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))


async def wait_for_record(log_dir, predicate, within: float = 10.0) -> dict:
    """The first training-log record matching `predicate`, waiting for the writer to flush it."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        for path in sorted(log_dir.glob("executions-*.jsonl")):
            for line in path.read_text().splitlines():
                if line:
                    record = json.loads(line)
                    if predicate(record):
                        return record
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("no matching execution record in the training log")
        await asyncio.sleep(0.1)


async def test_each_execute_writes_one_training_record_with_the_request_as_sent(stub, workspace, executor):
    result = await execute(
        stub,
        workspace.id,
        script="echo traced; echo oops >&2; exit 4",
        env={"COLOR": "blue"},
        known_id="cell-42",
        known_name="build",
        tool_call_id="call_1",
        run_id="run_1",
        agent_session_id="as_1",
    )
    execution_id = result.first.execution_id
    record = await wait_for_record(
        executor.config.training_log_dir, lambda r: r["executionId"] == execution_id
    )
    assert record["request"]["script"] == "echo traced; echo oops >&2; exit 4"
    assert record["request"]["env"] == {"COLOR": "blue"}
    assert record["request"]["knownId"] == "cell-42" and record["request"]["knownName"] == "build"
    assert record["request"]["toolCallId"] == "call_1" and record["request"]["runId"] == "run_1"
    assert record["request"]["agentSessionId"] == "as_1"
    assert record["workspaceId"] == workspace.id
    assert record["backend"] == "BACKEND_DOCKER" and "docker container" in record["isolation"]
    assert record["exitCode"] == 4 and record["endReason"] == "END_REASON_EXITED"
    assert record["stdoutBytes"] == "7" and record["stderrBytes"] == "5"
    assert record["stdoutHead"] == "traced\n" and record["stderrHead"] == "oops\n"
    assert record["startTime"] <= record["endTime"]


async def test_client_deadline_kills_the_command(stub, workspace, executor):
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace.id))).session
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await execute(
                stub,
                workspace.id,
                script="sleep 60.5; echo deadline-ignored",
                session_id=session.id,
                deadline=1.0,
            )
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        record = await wait_for_record(
            executor.config.training_log_dir, lambda r: "deadline-ignored" in r["request"]["script"]
        )
        assert record["endReason"] == "END_REASON_CANCELLED"
        await until_sleeps(stub, workspace.id, "60.5", 0)
        # The command is gone: the session runs the next command at once.
        result = await execute(stub, workspace.id, script="echo free", session_id=session.id, deadline=20)
        assert result.stdout == b"free\n"
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))


async def test_output_past_the_configured_cap_is_dropped_and_flagged(tmp_path):
    from tests.support.executor_server import remove_owned_workspaces, running_executor_handle

    try:
        async with running_executor_handle(tmp_path, output_cap_bytes=1000) as capped:
            async with grpc.aio.insecure_channel(capped.target) as channel:
                stub = executor_pb2_grpc.ExecutorServiceStub(channel)
                ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
                result = await execute(stub, ws.id, script="yes | head -c 100000; echo done >&2")
                assert len(result.stdout) + len(result.stderr) == 1000
                assert result.final.output_truncated is True
                assert result.exit_code == 0
    finally:
        remove_owned_workspaces(tmp_path)


async def test_allowed_secret_reaches_the_command_but_is_redacted_in_the_training_log(tmp_path):
    from tests.support.executor_server import running_executor_handle

    secret = "npm_0123456789abcdef"
    async with running_executor_handle(tmp_path, env_allow=("NPM_TOKEN",)) as allowing:
        async with grpc.aio.insecure_channel(allowing.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
            result = await execute(stub, ws.id, script='echo "token=$NPM_TOKEN"', env={"NPM_TOKEN": secret})
            assert result.stdout == f"token={secret}\n".encode()
            # Set on the workspace: commands get it, API responses show it redacted.
            ws2 = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(env={"NPM_TOKEN": secret}))).workspace
            assert ws2.env["NPM_TOKEN"] == "[REDACTED]"
            got = await execute(stub, ws2.id, script='echo "$NPM_TOKEN"')
            assert got.stdout == f"{secret}\n".encode()
            # Other secret names are still refused.
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await execute(stub, ws.id, script="true", env={"OTHER_TOKEN": "x"})
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            record = await wait_for_record(
                allowing.config.training_log_dir, lambda r: r["executionId"] == result.first.execution_id
            )
    assert record["request"]["env"]["NPM_TOKEN"] == "[REDACTED]"
    assert secret not in json.dumps(record)
    assert record["stdoutHead"] == "token=[REDACTED]\n"


async def test_positional_parameters_persist_in_a_session(stub, workspace):
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace.id))).session
    try:
        await execute(stub, workspace.id, script="set -- a 'b c' \"it's\"", session_id=session.id)
        result = await execute(stub, workspace.id, script='echo "$# $1|$2|$3"; shift', session_id=session.id)
        assert result.stdout == b"3 a|b c|it's\n"
        after_shift = await execute(stub, workspace.id, script='echo "$# $1"', session_id=session.id)
        assert after_shift.stdout == b"2 b c\n"
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
