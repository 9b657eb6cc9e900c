"""A size limit for /workspace (issue 15, item 5): writes past it fail with ENOSPC inside the
workspace; another workspace and the host's disk are unaffected; deleting the workspace removes
its filesystem."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle

pytestmark = pytest.mark.docker

MiB = 1024 * 1024


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


async def test_writes_past_the_workspace_disk_limit_fail_with_enospc_and_stay_there(tmp_path: Path) -> None:
    async with (
        running_executor_handle(
            tmp_path, disk_bytes=64 * MiB, policy_ceiling="disk_bytes=128000000"
        ) as executor,
        grpc.aio.insecure_channel(executor.target) as channel,
    ):
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        small = (
            await stub.CreateWorkspace(
                pb.CreateWorkspaceRequest(policy=pb.IsolationPolicy(disk_bytes=32 * MiB))
            )
        ).workspace
        other = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
        assert small.policy.disk_bytes == 32 * MiB and "/workspace 32MiB" in small.isolation
        assert other.policy.disk_bytes == 64 * MiB  # the server's default
        full = await execute(
            stub, small.id, script="dd if=/dev/zero of=/workspace/big bs=1M count=64; echo rc=$?"
        )
        assert b"No space left on device" in full.stderr, full
        assert b"rc=1" in full.stdout
        # What fit is there, and no more than the limit was taken from the host's disk.
        size = await execute(stub, small.id, script="wc -c < /workspace/big; ls -a /workspace")
        assert 16 * MiB < int(size.stdout.split()[0]) <= 32 * MiB
        image = tmp_path / "disks" / f"{small.id}.img"
        assert _allocated(image) <= 33 * MiB
        # The other workspace has room of its own.
        ok = await execute(
            stub, other.id, script="dd if=/dev/zero of=/workspace/f bs=1M count=40 2>/dev/null; echo rc=$?"
        )
        assert ok.stdout.strip() == b"rc=0"
        # The limit is within the ceiling; above it is refused.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateWorkspace(
                pb.CreateWorkspaceRequest(policy=pb.IsolationPolicy(disk_bytes=1 << 30))
            )
        assert (
            info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            and "policy.disk_bytes" in info.value.details()
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=pb.IsolationPolicy(disk_bytes=0)))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=small.id))
        assert not await asyncio.to_thread(image.exists)
        assert not await asyncio.to_thread(os.path.ismount, tmp_path / "disks" / small.id)
