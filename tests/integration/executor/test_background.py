"""Background executions over real gRPC: they outlive their client, ListExecutions shows them,
AttachExecution replays by byte offset and goes live (input, stop, several clients, one writer),
the buffer is bounded and says what it dropped, and a restarted executor reports what ended."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.attach import Attached
from tests.support.executor_client import LiveExecution, execute, first_request
from tests.support.executor_server import running_executor_handle

pytestmark = pytest.mark.docker


async def listed(stub, workspace_id: str, execution_id: str) -> pb.ExecutionInfo:
    response = await stub.ListExecutions(pb.ListExecutionsRequest(workspace_id=workspace_id))
    return next(e for e in response.executions if e.execution_id == execution_id)


async def start_background(
    stub, workspace_id: str, script: str, **fields: object
) -> tuple[LiveExecution, str]:
    live = LiveExecution(stub, first_request(workspace_id, script, background=True, **fields))
    first = await live.next()
    assert first.execution_id.startswith("ex_") and first.pid > 0
    return live, first.execution_id


async def test_a_background_execution_outlives_its_client_and_reattaches_without_gap_or_repeat(
    stub, workspace
):
    script = "i=0; while [ $i -lt 30 ]; do echo line$i; i=$((i+1)); sleep 0.05; done; read x; echo got-$x"
    live, execution_id = await start_background(stub, workspace.id, script)
    seen = await live.read_until_output(b"line3\n")
    offset = max(r.output_offset for r in live.responses)
    assert offset == len(seen)
    live.call.cancel()  # the client goes away (an editor reloading)
    await asyncio.sleep(0.3)
    info = await listed(stub, workspace.id, execution_id)
    assert info.state == pb.EXECUTION_STATE_RUNNING and info.command == script and info.pid > 0
    assert info.started.seconds > 0 and info.output_bytes >= offset

    attached = Attached(stub, execution_id, after_offset=offset)
    rest = await attached.read_until(b"line29\n")
    assert attached.responses[0].execution_id == execution_id and attached.responses[0].output_skipped == 0
    whole = seen + rest
    assert whole == b"".join(b"line%d\n" % i for i in range(30))
    attached.send(input_data=b"typed\n")
    final = await attached.finish()
    assert attached.stdout.endswith(b"got-typed\n")
    assert final.exit_code.value == 0 and final.end_reason == pb.END_REASON_EXITED
    assert final.output_offset == len(whole) + len(b"got-typed\n")
    info = await listed(stub, workspace.id, execution_id)
    assert info.state == pb.EXECUTION_STATE_FINISHED and info.exit_code.value == 0
    assert info.finished.seconds > 0 and info.attached == 0
    # A finished one still replays, from any retained offset.
    again = Attached(stub, execution_id, after_offset=len(whole))
    await again.finish()
    assert again.stdout == b"got-typed\n"


async def test_several_clients_follow_and_only_the_writer_may_write(stub, workspace):
    live, execution_id = await start_background(stub, workspace.id, "echo ready; cat")
    await live.read_until_output(b"ready")
    reader = Attached(stub, execution_id, read_only=True)
    writer = Attached(stub, execution_id)  # takes writing over from the Execute stream
    await reader.read_until(b"ready")
    await writer.read_until(b"ready")
    writer.send(input_data=b"from-writer\n")
    await reader.read_until(b"from-writer")
    await live.read_until_output(b"from-writer")
    assert (await listed(stub, workspace.id, execution_id)).attached == 3
    # The one that lost writing, and the read-only one, are refused.
    reader.send(input_data=b"nope\n")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await reader.finish()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "read_only" in info.value.details()
    live.send(pb.ExecuteRequest(input_data=b"nope\n"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await live.finish()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "took over" in info.value.details()
    writer.send(close_input=True)
    final = await writer.finish()
    assert final.exit_code.value == 0 and b"nope" not in writer.stdout


async def test_stop_execution_ends_a_background_execution(stub, workspace):
    live, execution_id = await start_background(stub, workspace.id, "echo up; sleep 300")
    await live.read_until_output(b"up")
    live.call.cancel()
    stopped = await stub.StopExecution(
        pb.StopExecutionRequest(execution_id=execution_id, signal=pb.STOP_SIGNAL_KILL)
    )
    assert stopped.execution.execution_id == execution_id
    final = await Attached(stub, execution_id).finish()
    assert final.end_reason == pb.END_REASON_STOPPED
    assert (await listed(stub, workspace.id, execution_id)).state == pb.EXECUTION_STATE_FINISHED


async def test_unknown_execution_and_bad_offsets_are_refused(stub, workspace):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.StopExecution(pb.StopExecutionRequest(execution_id="ex_nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await Attached(stub, "ex_nope").finish()
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    _live, execution_id = await start_background(stub, workspace.id, "echo hi")
    final = await Attached(stub, execution_id).finish()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await Attached(stub, execution_id, after_offset=final.output_offset + 1).finish()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "after_offset" in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListExecutions(pb.ListExecutionsRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_buffer_keeps_the_newest_output_and_counts_what_it_dropped(tmp_path):
    async with running_executor_handle(tmp_path / "small", execution_buffer_bytes=1000) as executor:
        async with grpc.aio.insecure_channel(executor.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="buffer"))).workspace
            live, execution_id = await start_background(
                stub, ws.id, "sleep 0.5; i=0; while [ $i -lt 1000 ]; do echo 123456789; i=$((i+1)); done"
            )
            live.call.cancel()
            attached = Attached(stub, execution_id)
            final = await attached.finish()
            assert final.exit_code.value == 0 and final.output_offset == 10_000
            info = await listed(stub, ws.id, execution_id)
            assert info.output_bytes == 10_000 and info.dropped_bytes >= 9_000
            # Replay from 0: what overflowed is skipped and said so; the rest is whole lines.
            replay = Attached(stub, execution_id)
            await replay.finish()
            assert replay.responses[0].output_skipped == info.dropped_bytes
            assert len(replay.stdout) == 10_000 - info.dropped_bytes <= 1000
            assert replay.stdout.endswith(b"123456789\n")


async def test_a_restarted_executor_reports_background_executions_as_ended(tmp_path):
    config_dir = tmp_path / "restart"
    async with running_executor_handle(config_dir, keep_workspaces=True) as executor:
        async with grpc.aio.insecure_channel(executor.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="restart"))).workspace
            live, execution_id = await start_background(stub, ws.id, "echo serving; sleep 300")
            await live.read_until_output(b"serving")
            live.call.cancel()
    async with running_executor_handle(config_dir) as executor:
        async with grpc.aio.insecure_channel(executor.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            info = await listed(stub, ws.id, execution_id)
            assert info.state == pb.EXECUTION_STATE_FINISHED
            assert info.end_reason == pb.END_REASON_SHUTDOWN and info.message
            final = await Attached(stub, execution_id).finish()
            assert final.end_reason == pb.END_REASON_SHUTDOWN


async def test_a_background_terminal_is_resized_and_typed_at_through_attach(stub, workspace):
    script = "echo ready; read line; stty size; echo got-$line"
    live, execution_id = await start_background(stub, workspace.id, script, tty=True)
    await live.read_until_output(b"ready")
    live.call.cancel()
    attached = Attached(stub, execution_id)
    await attached.read_until(b"ready")
    attached.send(winsize=pb.Winsize(rows=17, cols=61))
    attached.send(input_data=b"typed\r")
    final = await attached.finish()
    assert b"17 61\r\ngot-typed" in attached.stdout and final.exit_code.value == 0


async def test_a_half_closed_background_execute_returns_its_id_at_once_and_the_program_runs_on(
    stub, workspace
):
    # grpcurl -d '{..., "background": true}' sends its message and half-closes at once.
    result = await execute(stub, workspace.id, script="sleep 1; echo late", background=True)
    assert len(result.responses) == 1 and result.first.execution_id.startswith("ex_") and result.first.pid > 0
    final = await Attached(stub, result.first.execution_id).finish()
    assert final.exit_code.value == 0
