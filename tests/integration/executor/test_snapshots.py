"""Snapshots and forks over gRPC, on both backends: a snapshot captures /workspace (and, on docker,
the container's filesystem), a fork is independent of its parent and of other forks, snapshots
outlive their workspace, and the training log names a fork's parent snapshot."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator

import docker
import grpc
import pytest

from executor_service.backends.docker import SNAPSHOT_REPOSITORY, snapshot_volume_name
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle

BACKENDS = [
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param(
        "bwrap",
        marks=[
            pytest.mark.bwrap,
            pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
        ],
    ),
]


@pytest.fixture(scope="module", params=BACKENDS)
async def env(request, tmp_path_factory) -> AsyncIterator[tuple[object, str, object]]:
    config_dir = tmp_path_factory.mktemp(f"snapshots-{request.param}")
    async with running_executor_handle(config_dir, backend=request.param) as running:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            yield stub, request.param, running
            for left in (await stub.ListSnapshots(pb.ListSnapshotsRequest())).snapshots:
                await stub.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=left.id))
            for ws in (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces:
                await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def sh(stub, ws_id: str, script: str) -> str:
    result = await execute(stub, ws_id, script)
    assert result.exit_code == 0, (script, result.stderr)
    return result.stdout.decode()


async def test_fork_starts_from_the_snapshot_and_is_independent(env):
    stub, _backend, running = env
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(env={"TEAM": "blue"}))).workspace
    await sh(
        stub,
        ws.id,
        "mkdir -p src && echo v1 > src/app.txt && ln -s src/app.txt link && chmod 640 src/app.txt",
    )
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
    snap = (
        await stub.CreateSnapshot(pb.CreateSnapshotRequest(workspace_id=ws.id, name="before-change"))
    ).snapshot
    assert snap.id.startswith("sn_") and snap.name == "before-change" and snap.workspace_id == ws.id
    assert snap.files_bytes > 0 and snap.env["TEAM"] == "blue"
    # The workspace runs on with its session (a docker workspace was paused while it was taken).
    got = (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws.id))).workspace
    assert got.status == pb.WORKSPACE_STATUS_RUNNING and got.session_count == 1
    assert (await execute(stub, ws.id, "echo alive", session_id=session.id)).stdout == b"alive\n"

    # The model's change, after the snapshot.
    await sh(stub, ws.id, "echo v2 > src/app.txt; echo new > added.txt")

    one = (
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(snapshot_id=snap.id, name="fork-one"))
    ).workspace
    two = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(snapshot_id=snap.id))).workspace
    assert one.parent_snapshot_id == snap.id and one.env["TEAM"] == "blue"
    assert one.status == pb.WORKSPACE_STATUS_RUNNING
    out = await sh(
        stub, one.id, "cat link; stat -c %a src/app.txt; ls added.txt 2>/dev/null || echo no-added; id -u"
    )
    assert out == "v1\n640\nno-added\n1000\n"
    # Forks and parent never see each other's changes.
    await sh(stub, one.id, "echo fork-one > src/app.txt")
    assert await sh(stub, two.id, "cat src/app.txt") == "v1\n"
    assert await sh(stub, ws.id, "cat src/app.txt") == "v2\n"

    # The training log names the parent snapshot on a fork's executions.
    assert await asyncio.to_thread(running.training_log.flush)
    lines = [
        line
        for p in running.config.training_log_dir.glob("executions-*.jsonl")
        for line in p.read_text().splitlines()
    ]
    records = [json.loads(line) for line in lines if line]
    fork_records = [r for r in records if r["workspaceId"] == one.id]
    assert fork_records and all(r.get("parentSnapshotId") == snap.id for r in fork_records)
    parent_records = [r for r in records if r["workspaceId"] == ws.id]
    assert parent_records and not any(r.get("parentSnapshotId") for r in parent_records)


async def test_snapshots_are_listed_outlive_their_workspace_and_can_be_deleted(env):
    stub, backend, _ = env
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    await sh(stub, ws.id, "echo kept > note")
    snap = (await stub.CreateSnapshot(pb.CreateSnapshotRequest(workspace_id=ws.id))).snapshot
    listed = (await stub.ListSnapshots(pb.ListSnapshotsRequest(workspace_id=ws.id))).snapshots
    assert [s.id for s in listed] == [snap.id]
    assert not (await stub.ListSnapshots(pb.ListSnapshotsRequest(workspace_id="ws_other"))).snapshots
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateSnapshot(pb.CreateSnapshotRequest(workspace_id=ws.id, name="dup"))
        await stub.CreateSnapshot(pb.CreateSnapshotRequest(workspace_id=ws.id, name="dup"))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS

    await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))
    fork = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(snapshot_id=snap.id))).workspace
    assert await sh(stub, fork.id, "cat note") == "kept\n"
    await stub.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snap.id))
    # The fork does not depend on its snapshot any more.
    assert await sh(stub, fork.id, "cat note") == "kept\n"
    assert snap.id not in [s.id for s in (await stub.ListSnapshots(pb.ListSnapshotsRequest())).snapshots]
    if backend == "docker":
        engine = docker.from_env()
        with pytest.raises(docker.errors.NotFound):
            engine.volumes.get(snapshot_volume_name(snap.id))
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(f"{SNAPSHOT_REPOSITORY}:{snap.id}")
    for call, code in (
        (stub.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snap.id)), grpc.StatusCode.NOT_FOUND),
        (stub.CreateWorkspace(pb.CreateWorkspaceRequest(snapshot_id=snap.id)), grpc.StatusCode.NOT_FOUND),
        (stub.CreateSnapshot(pb.CreateSnapshotRequest(workspace_id="ws_nope")), grpc.StatusCode.NOT_FOUND),
        (
            stub.CreateWorkspace(
                pb.CreateWorkspaceRequest(snapshot_id="sn_x", image="firebox-busybox:latest")
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == code, info.value.details()
