"""Workspaces from images nobody prepared for Firebox (scripts/build-stock-images.sh): a debootstrap
Debian root, busybox with no /workspace and /tmp 0755, USER 1000 + WORKDIR /app, an ENTRYPOINT that
exits, a VOLUME /workspace, and an image with no /bin/sh. Each must work at once for the default
user (uid 1000, in none of their passwd files but one), on a real Docker engine."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from tests.support.executor_client import execute
from tests.support.stock_images import stock_image

pytestmark = pytest.mark.docker

WORKING = ["debian", "busybox", "user", "entrypoint", "volume"]


async def sh(stub, ws_id: str, script: str, **kwargs: object) -> str:
    result = await execute(stub, ws_id, script, **kwargs)
    assert result.exit_code == 0, (script, result.stdout, result.stderr)
    return result.stdout.decode()


async def create(stub, kind: str, **policy: object) -> pb.Workspace:
    request = pb.CreateWorkspaceRequest(image=stock_image(kind), policy=pb.IsolationPolicy(**policy))
    return (await stub.CreateWorkspace(request, timeout=60)).workspace


@pytest.mark.parametrize("kind", WORKING)
async def test_unprepared_image_gives_a_workspace_the_user_can_write_in(stub, kind):
    ws = await create(stub, kind)
    try:
        assert ws.status == pb.WORKSPACE_STATUS_RUNNING
        out = await sh(
            stub,
            ws.id,
            "id -u; pwd; echo home=$HOME; touch /workspace/w /tmp/t && echo wrote; "
            "cd ~ && touch ./h && echo home-ok; stat -c %a /tmp; echo PATH=$PATH",
        )
        lines = out.splitlines()
        assert lines[:4] == ["1000", "/workspace", "home=/workspace", "wrote"], out
        assert "home-ok" in lines and "1777" in lines
        # The image's ENV is honoured (the script sets PATH with /usr/local first).
        assert "PATH=/usr/local/sbin:/usr/local/bin:" in out

        # A session keeps its state between commands.
        session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
        await sh(stub, ws.id, "cd /tmp && KEPT=yes && mkdir -p sub", session_id=session.id)
        assert await sh(stub, ws.id, 'pwd; echo "$KEPT"', session_id=session.id) == "/tmp\nyes\n"

        # Files go in and out, in a new directory the user creates.
        data = os.urandom(200_000)
        upload = [pb.UploadFileRequest(workspace_id=ws.id, path="in/blob.bin", create_parents=True)]
        upload.append(pb.UploadFileRequest(data=data))
        response = await stub.UploadFile(iter(upload), timeout=60)
        assert response.sha256 == hashlib.sha256(data).hexdigest()
        assert (await sh(stub, ws.id, "wc -c < in/blob.bin")).strip() == str(len(data))
        await sh(stub, ws.id, "printf made-inside > out.txt")
        chunks = [
            r.data
            async for r in stub.DownloadFile(pb.DownloadFileRequest(workspace_id=ws.id, path="out.txt"))
        ]
        assert b"".join(chunks) == b"made-inside"

        # Stop and start: the files stay, and the fresh /tmp is 1777 again.
        await stub.StopWorkspace(pb.StopWorkspaceRequest(workspace_id=ws.id))
        started = (await stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=ws.id))).workspace
        assert started.status == pb.WORKSPACE_STATUS_RUNNING
        assert await sh(stub, ws.id, "cat out.txt; touch /tmp/again && echo ok") == "made-insideok\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_files_an_image_ships_in_its_workspace_volume_become_the_users(stub):
    ws = await create(stub, "volume")
    try:
        out = await sh(stub, ws.id, "cat README; stat -c %u README; echo more >> README && echo appended")
        assert out == "shipped in the image\n1000\nappended\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


@pytest.mark.parametrize("kind", ["debian", "busybox"])
async def test_read_only_workspace_from_an_unprepared_image_reads_and_writes_only_tmp(stub, kind):
    ws = await create(stub, kind, read_only=True)
    try:
        out = await sh(
            stub,
            ws.id,
            "ls -d /workspace; touch /tmp/t && echo tmp-ok; touch /workspace/x 2>/dev/null || echo ro",
        )
        assert out == "/workspace\ntmp-ok\nro\n"
        session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
        await sh(stub, ws.id, "V=1", session_id=session.id)
        assert await sh(stub, ws.id, "echo $V", session_id=session.id) == "1\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_user_with_no_passwd_entry_still_has_a_shell_and_home(stub):
    ws = await create(stub, "debian", user="4242:4242")
    try:
        out = await sh(stub, ws.id, "id; cd ~ && pwd && touch mine && stat -c %u mine")
        assert out.startswith("uid=4242 gid=4242")
        assert out.splitlines()[1:] == ["/workspace", "4242"]
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_image_without_bin_sh_is_failed_precondition_naming_image_and_shell(stub, engine):
    image = stock_image("noshell")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(image=image), timeout=60)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert image in info.value.details() and "/bin/sh" in info.value.details()
    # Nothing is left behind: no container of that image (sparse: no inspect per container, so
    # another suite's container going away meanwhile does not matter), and no workspace listed.
    assert not engine.containers.list(all=True, sparse=True, filters={"ancestor": image})
    assert not (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces


async def test_user_name_the_image_does_not_know_is_failed_precondition(stub):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, "busybox", user="nosuchuser")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "nosuchuser" in info.value.details()


async def test_snapshot_of_a_stock_workspace_keeps_its_container_filesystem_and_files(stub):
    # A writable root: the user installs something outside /workspace (its own /tmp-free place).
    ws = await create(stub, "volume", read_only_root=False, user="0:0")
    try:
        await sh(stub, ws.id, "mkdir -p /opt/tool && echo installed > /opt/tool/version; echo ws > mine")
        snap = (await stub.CreateSnapshot(pb.CreateSnapshotRequest(workspace_id=ws.id))).snapshot
        fork = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(snapshot_id=snap.id))).workspace
        try:
            assert fork.parent_snapshot_id == snap.id and fork.policy.read_only_root is False
            assert await sh(stub, fork.id, "cat /opt/tool/version README mine") == (
                "installed\nshipped in the image\nws\n"
            )
        finally:
            await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=fork.id))
            await stub.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snap.id))
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))
