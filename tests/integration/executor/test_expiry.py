"""Idle expiry and time to live on a real Docker engine: an idle workspace stops (and says why),
an old one is deleted, nothing expires while a command runs, server defaults apply, and expiry
survives an executor restart."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest
from google.protobuf import duration_pb2

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle

pytestmark = pytest.mark.docker


def seconds(n: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(n), nanos=int(n % 1 * 1e9))


async def get(stub, ws_id: str) -> pb.Workspace:
    return (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws_id))).workspace


async def wait_for(stub, ws_id: str, status: int, within: float = 20.0) -> pb.Workspace:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        ws = await get(stub, ws_id)
        if ws.status == status:
            return ws
        assert asyncio.get_running_loop().time() < deadline, f"still {ws.status}"
        await asyncio.sleep(0.2)


async def test_idle_workspace_stops_says_why_and_starts_again(stub):
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(idle_timeout=seconds(2)))).workspace
    try:
        assert ws.idle_timeout.ToTimedelta() == dt.timedelta(seconds=2)
        assert ws.HasField("stop_time") and not ws.HasField("delete_time")
        stop_at = ws.stop_time.ToDatetime(dt.UTC)
        assert dt.timedelta(0) < stop_at - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=3)
        await execute(stub, ws.id, "echo kept > f")
        stopped = await wait_for(stub, ws.id, pb.WORKSPACE_STATUS_EXITED)
        assert "idle for" in stopped.stopped_reason and "idle_timeout 2s" in stopped.stopped_reason
        assert not stopped.HasField("stop_time")
        started = (await stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=ws.id))).workspace
        assert started.stopped_reason == "" and started.HasField("stop_time")
        assert (await execute(stub, ws.id, "cat f")).stdout == b"kept\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_nothing_expires_while_a_command_runs(stub):
    request = pb.CreateWorkspaceRequest(idle_timeout=seconds(1), ttl=seconds(2))
    ws = (await stub.CreateWorkspace(request)).workspace
    try:
        result = await execute(stub, ws.id, "sleep 4; echo done")
        assert result.exit_code == 0 and result.stdout == b"done\n"
    finally:
        # Past its ttl now, it goes once idle.
        deadline = asyncio.get_running_loop().time() + 20
        while any(w.id == ws.id for w in (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)


async def test_workspace_past_its_ttl_is_deleted(stub):
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(ttl=seconds(2)))).workspace
    assert ws.delete_time.ToDatetime(dt.UTC) - ws.create_time.ToDatetime(dt.UTC) == dt.timedelta(seconds=2)
    assert ws.idle_timeout.ToTimedelta() == dt.timedelta(0) and not ws.HasField("stop_time")
    await asyncio.sleep(3.5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await get(stub, ws.id)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("field", "value"), [("idle_timeout", seconds(-1)), ("ttl", seconds(0.5)), ("ttl", seconds(10**9))]
)
async def test_bad_durations_are_invalid_argument(stub, field, value):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(**{field: value}))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in info.value.details()


async def test_server_default_applies_and_expiry_survives_a_restart(tmp_path):
    async with running_executor_handle(tmp_path, idle_timeout=3.0, keep_workspaces=True) as first:
        async with grpc.aio.insecure_channel(first.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            by_default = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
            never = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(idle_timeout=seconds(0)))).workspace
            assert by_default.idle_timeout.ToTimedelta() == dt.timedelta(seconds=3)
            assert never.idle_timeout.ToTimedelta() == dt.timedelta(0) and not never.HasField("stop_time")
            stop_at = by_default.stop_time
    # Down for longer than the idle timeout: the next executor stops it at once, from the state
    # the first one kept, and says why.
    await asyncio.sleep(3.5)
    async with running_executor_handle(tmp_path, idle_timeout=3.0) as second:
        async with grpc.aio.insecure_channel(second.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            adopted = await get(stub, by_default.id)
            assert adopted.stop_time == stop_at or adopted.status == pb.WORKSPACE_STATUS_EXITED
            stopped = await wait_for(stub, by_default.id, pb.WORKSPACE_STATUS_EXITED, within=10)
            assert "idle_timeout 3s" in stopped.stopped_reason
            assert (await get(stub, never.id)).status == pb.WORKSPACE_STATUS_RUNNING
