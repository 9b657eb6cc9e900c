"""The warm pool of ready workspaces, on a real Docker engine through real gRPC: takes are distinct
under concurrency, the pool refills, a taken member gets the requested name and labels, a restart
adopts waiting members and cleans the ones that no longer match, and size 0 disables it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import docker
import grpc
import pytest

from executor_service.backend import LABEL_POOL
from executor_service.backends.docker import LABEL_OWNER
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_server import remove_owned_workspaces, running_executor_handle

pytestmark = pytest.mark.docker


def owned(config_dir: Path) -> dict[str, dict[str, str]]:
    """Container name -> labels of every container this executor owns, straight from the engine."""
    owner = (config_dir / "instance-id").read_text().strip()
    client = docker.from_env()
    try:
        containers = client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"})
        return {c.name: c.labels for c in containers}
    finally:
        client.close()


async def wait_ready(executor, n: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while executor.workspaces.pool.ready < n:
        assert time.monotonic() < deadline, f"pool has {executor.workspaces.pool.ready} of {n} ready"
        await asyncio.sleep(0.05)


async def test_concurrent_creates_get_distinct_workspaces_and_pool_refills(tmp_path: Path) -> None:
    try:
        async with (
            running_executor_handle(tmp_path, warm_pool_size=3) as executor,
            grpc.aio.insecure_channel(executor.target) as channel,
        ):
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            await wait_ready(executor, 3)
            pool_ids = {m.id for m in executor.workspaces.pool._ready}
            replies = await asyncio.gather(
                *(stub.CreateWorkspace(pb.CreateWorkspaceRequest(name=f"w{i}")) for i in range(6))
            )
            ids = [r.workspace.id for r in replies]
            assert len(set(ids)) == 6, ids
            # Three came from the pool (the rest were created cold), none twice.
            assert len(pool_ids & set(ids)) == 3
            assert executor.workspaces.pool.taken == 3
            # Refilled in the background, with members none of the clients hold.
            await wait_ready(executor, 3)
            refilled = {m.id for m in executor.workspaces.pool._ready}
            assert not refilled & set(ids)
            listed = await stub.ListWorkspaces(pb.ListWorkspacesRequest())
            assert sorted(w.id for w in listed.workspaces) == sorted(ids)
            for ws_id in ids:
                run = stub.Execute()
                await run.write(pb.ExecuteRequest(workspace_id=ws_id, script="echo hi"))
                await run.done_writing()
                out = b"".join([m.stdout_data async for m in run])
                assert out == b"hi\n"
    finally:
        remove_owned_workspaces(tmp_path)


async def test_taken_member_gets_name_and_labels_and_restart_adopts(tmp_path: Path) -> None:
    try:
        async with (
            running_executor_handle(tmp_path, keep_workspaces=True, warm_pool_size=2) as executor,
            grpc.aio.insecure_channel(executor.target) as channel,
        ):
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            await wait_ready(executor, 2)
            member = executor.workspaces.pool._ready[0].id
            reply = await stub.CreateWorkspace(
                pb.CreateWorkspaceRequest(name="from-pool", labels={"team": "a"})
            )
            assert reply.workspace.id == member
            assert reply.workspace.name == "from-pool"
            assert dict(reply.workspace.labels) == {"team": "a"}
            got = await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=member))
            assert got.workspace.name == "from-pool" and dict(got.workspace.labels) == {"team": "a"}
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="from-pool"))
            assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
            await wait_ready(executor, 2)
            waiting = {m.id for m in executor.workspaces.pool._ready}
        # Restart with the same config dir: the taken one is a workspace with its name, the
        # waiting ones go back to the pool (not listed), nothing else appears.
        async with (
            running_executor_handle(tmp_path, keep_workspaces=True, warm_pool_size=2) as executor,
            grpc.aio.insecure_channel(executor.target) as channel,
        ):
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            listed = (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces
            assert [(w.id, w.name, dict(w.labels)) for w in listed] == [(member, "from-pool", {"team": "a"})]
            assert {m.id for m in executor.workspaces.pool._ready} == waiting
            assert len(owned(tmp_path)) == 3
        # Restart with the pool off: waiting members are removed, the client's workspace stays.
        async with running_executor_handle(tmp_path, keep_workspaces=True, warm_pool_size=0) as executor:
            assert executor.workspaces.pool.ready == 0
            containers = owned(tmp_path)
            assert list(containers) == [f"firebox-{member}"]
            assert [w.name for w in await executor.workspaces.list()] == ["from-pool"]
    finally:
        remove_owned_workspaces(tmp_path)


async def test_size_zero_and_non_matching_requests_do_not_use_the_pool(tmp_path: Path) -> None:
    try:
        async with (
            running_executor_handle(tmp_path, warm_pool_size=0) as executor,
            grpc.aio.insecure_channel(executor.target) as channel,
        ):
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="cold"))
            await asyncio.sleep(1.0)  # a refill, were there one, would have started by now
            assert not any(LABEL_POOL in labels for labels in owned(tmp_path).values())
            assert executor.workspaces.pool.taken == 0
        remove_owned_workspaces(tmp_path)
        async with (
            running_executor_handle(tmp_path, warm_pool_size=1, policy_ceiling="network=allow") as executor,
            grpc.aio.insecure_channel(executor.target) as channel,
        ):
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            await wait_ready(executor, 1)
            member = executor.workspaces.pool._ready[0].id
            # Env or a policy override needs a different container: created cold, pool untouched.
            a = await stub.CreateWorkspace(pb.CreateWorkspaceRequest(env={"A": "1"}))
            b = await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=pb.IsolationPolicy(network=True)))
            assert member not in (a.workspace.id, b.workspace.id)
            assert executor.workspaces.pool.taken == 0
            assert [m.id for m in executor.workspaces.pool._ready] == [member]
    finally:
        remove_owned_workspaces(tmp_path)
