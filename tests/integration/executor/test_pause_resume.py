"""PauseWorkspace / ResumeWorkspace on a real Docker engine: a paused workspace keeps its processes
and shell sessions, refuses commands and file calls unless an Execute asks to resume it."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from executor_service.backends.docker import container_name
from firebox.executor.v1 import executor_pb2 as pb
from tests.support.executor_client import execute

pytestmark = pytest.mark.docker


async def test_paused_workspace_keeps_processes_and_sessions_and_refuses_commands(stub, engine):
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    try:
        session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
        # A background counter that must be frozen while paused, and a session variable.
        started = await execute(
            stub,
            ws.id,
            "KEPT=before; (i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done) &",
            session_id=session.id,
        )
        assert started.exit_code == 0, started.stderr
        await asyncio.sleep(0.3)

        paused = (await stub.PauseWorkspace(pb.PauseWorkspaceRequest(workspace_id=ws.id))).workspace
        assert paused.status == pb.WORKSPACE_STATUS_PAUSED
        assert engine.containers.get(container_name(ws.id)).status == "paused"
        got = (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws.id))).workspace
        assert got.status == pb.WORKSPACE_STATUS_PAUSED and got.session_count == 1
        # Pausing again is harmless.
        again = (await stub.PauseWorkspace(pb.PauseWorkspaceRequest(workspace_id=ws.id))).workspace
        assert again.status == pb.WORKSPACE_STATUS_PAUSED

        for call in (
            execute(stub, ws.id, "echo no"),
            execute(stub, ws.id, "echo no", session_id=session.id),
            stub.StatFile(pb.StatFileRequest(workspace_id=ws.id, path=".")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "paused" in info.value.details() and "resume" in info.value.details().lower()

        resumed = (await stub.ResumeWorkspace(pb.ResumeWorkspaceRequest(workspace_id=ws.id))).workspace
        assert resumed.status == pb.WORKSPACE_STATUS_RUNNING
        first = int((await execute(stub, ws.id, "cat /tmp/n", session_id=session.id)).stdout)
        await asyncio.sleep(0.3)
        out = await execute(stub, ws.id, 'cat /tmp/n; echo "$KEPT"', session_id=session.id)
        counter, kept = out.stdout.decode().split()
        # The same session (its variable) and the same background process, counting on.
        assert kept == "before" and int(counter) > first
        again = (await stub.ResumeWorkspace(pb.ResumeWorkspaceRequest(workspace_id=ws.id))).workspace
        assert again.status == pb.WORKSPACE_STATUS_RUNNING
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_execute_may_resume_a_paused_workspace(stub):
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    try:
        session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
        await execute(stub, ws.id, "X=1", session_id=session.id)
        await stub.PauseWorkspace(pb.PauseWorkspaceRequest(workspace_id=ws.id))
        result = await execute(stub, ws.id, "echo $X", session_id=session.id, resume_workspace=True)
        assert result.stdout == b"1\n"
        got = (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws.id))).workspace
        assert got.status == pb.WORKSPACE_STATUS_RUNNING
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_paused_workspace_can_be_stopped_started_and_deleted(stub, engine):
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))
    await stub.PauseWorkspace(pb.PauseWorkspaceRequest(workspace_id=ws.id))
    stopped = (await stub.StopWorkspace(pb.StopWorkspaceRequest(workspace_id=ws.id), timeout=30)).workspace
    assert stopped.status == pb.WORKSPACE_STATUS_EXITED and stopped.session_count == 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.PauseWorkspace(pb.PauseWorkspaceRequest(workspace_id=ws.id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ResumeWorkspace(pb.ResumeWorkspaceRequest(workspace_id=ws.id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "StartWorkspace" in info.value.details()
    await stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=ws.id))
    await stub.PauseWorkspace(pb.PauseWorkspaceRequest(workspace_id=ws.id))
    await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id), timeout=30)
    assert not engine.containers.list(all=True, filters={"name": container_name(ws.id)})


async def test_pause_of_unknown_workspace_is_not_found(stub):
    for call in (
        stub.PauseWorkspace(pb.PauseWorkspaceRequest(workspace_id="ws_nope")),
        stub.ResumeWorkspace(pb.ResumeWorkspaceRequest(workspace_id="ws_nope")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
