"""One agent in front of two executors (`--executor A,B`): workspaces spread over both, every
call for a workspace goes to the executor that owns it, and a lost executor's workspaces are
UNAVAILABLE at once."""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc
import pytest

from firebox.agent.v1 import agent_pb2
from firebox.executor.v1 import executor_pb2
from tests.support.agent_server import agent_stub, executor_stub, running_agent
from tests.support.executor_server import running_executor_handle

pytestmark = pytest.mark.docker


async def _execute(stub, workspace_id: str, script: str) -> bytes:
    call = stub.Execute()
    await call.write(executor_pb2.ExecuteRequest(workspace_id=workspace_id, script=script))
    await call.done_writing()
    out = b""
    async for response in call:
        out += response.stdout_data
    return out


async def _ids(target: str) -> set[str]:
    listed = await executor_stub(target).ListWorkspaces(executor_pb2.ListWorkspacesRequest())
    return {w.id for w in listed.workspaces}


async def test_workspaces_are_spread_routed_to_their_owner_and_unavailable_when_it_is_gone(tmp_path):
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(running_executor_handle(tmp_path / "ex1"))
        second_stack = contextlib.AsyncExitStack()
        # Its workspaces outlive it: it comes back later and they must work again.
        second = await second_stack.enter_async_context(
            running_executor_handle(tmp_path / "ex2", keep_workspaces=True)
        )
        stack.push_async_callback(second_stack.aclose)
        agent = await stack.enter_async_context(
            running_agent(tmp_path / "agent", executor=f"{first.target},{second.target}")
        )
        stub = agent_stub(agent)

        created = [
            (await stub.CreateWorkspace(executor_pb2.CreateWorkspaceRequest(name=f"w{i}"))).workspace.id
            for i in range(4)
        ]
        on_first, on_second = await _ids(first.target), await _ids(second.target)
        assert len(on_first) == 2 and len(on_second) == 2
        assert set(created) == on_first | on_second

        # Each workspace exists on one executor only: the agent must send each call to its owner.
        for workspace_id in created:
            assert await _execute(stub, workspace_id, "echo routed") == b"routed\n"
            got = await stub.GetWorkspace(executor_pb2.GetWorkspaceRequest(workspace_id=workspace_id))
            assert got.workspace.id == workspace_id
        listed = await stub.ListWorkspaces(executor_pb2.ListWorkspacesRequest())
        assert {w.id for w in listed.workspaces} == set(created)

        # Made on an executor directly: the agent finds its owner by asking, and remembers it.
        direct = await executor_stub(second.target).CreateWorkspace(
            executor_pb2.CreateWorkspaceRequest(name="direct")
        )
        assert await _execute(stub, direct.workspace.id, "echo found") == b"found\n"
        second_id = (
            await executor_stub(second.target).GetServerInfo(executor_pb2.GetServerInfoRequest())
        ).instance_id
        assert second_id.startswith("ex_")
        assert (await agent.store.get_workspace_owner(direct.workspace.id))[0] == second_id

        # Unknown everywhere: NOT_FOUND, not UNAVAILABLE.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetWorkspace(executor_pb2.GetWorkspaceRequest(workspace_id="ws_doesnotexist"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        deleted = sorted(on_first)[0]
        await stub.DeleteWorkspace(executor_pb2.DeleteWorkspaceRequest(workspace_id=deleted))
        assert deleted not in await _ids(first.target)
        assert await agent.store.get_workspace_owner(deleted) is None

        # The second executor goes away: its workspaces fail fast, naming workspace and replica;
        # the first executor's still work.
        await second_stack.aclose()
        lost = sorted(on_second)[0]
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _execute(stub, lost, "echo never")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert lost in caught.value.details() and second_id in caught.value.details()
        assert time.monotonic() - started < 10
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(stub.GetWorkspace(executor_pb2.GetWorkspaceRequest(workspace_id=lost)), 10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        kept = sorted(on_first - {deleted})[0]
        assert await _execute(stub, kept, "echo still") == b"still\n"

        info = await stub.GetServerInfo(agent_pb2.GetServerInfoRequest())
        assert {(r.address, r.reachable) for r in info.executors} == {
            (first.target, True),
            (second.target, False),
        }
        # New workspaces go to the executor that is left.
        fresh = await stub.CreateWorkspace(executor_pb2.CreateWorkspaceRequest(name="after"))
        assert fresh.workspace.id in await _ids(first.target)

        # The replica comes back (same config dir, so the same instance id, at the same address):
        # its workspaces work again through the agent (bounded wait for the agent to notice).
        back = await stack.enter_async_context(
            running_executor_handle(tmp_path / "ex2", listen=second.target)
        )
        back_id = (
            await executor_stub(back.target).GetServerInfo(executor_pb2.GetServerInfoRequest())
        ).instance_id
        assert back_id == second_id and lost in await _ids(back.target)
        out, last_error = b"", None
        for _ in range(60):
            try:
                out = await _execute(stub, lost, "echo back")
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
                last_error = exc.details()
                await asyncio.sleep(0.5)
        assert out == b"back\n", last_error
        got = await stub.GetWorkspace(executor_pb2.GetWorkspaceRequest(workspace_id=lost))
        assert got.workspace.id == lost


@pytest.mark.bwrap
async def test_a_bubblewrap_executor_reports_the_instance_id_kept_in_its_config_dir(tmp_path):
    async with running_executor_handle(tmp_path / "ex", backend="bwrap") as executor:
        info = await executor_stub(executor.target).GetServerInfo(executor_pb2.GetServerInfoRequest())
    assert info.instance_id.startswith("ex_")
    assert info.instance_id == (tmp_path / "ex" / "instance-id").read_text().strip()
