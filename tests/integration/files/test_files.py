"""Workspace files over gRPC, on both backends: upload/download round trips, limits, failed and
concurrent uploads, path confinement (.., absolute paths, escaping symlinks), listings."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle

MAX_FILE = 4 * 1024 * 1024
CHUNK = 64 * 1024

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


class Env:
    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceStub, ws: pb.Workspace, spool: object) -> None:
        self.stub = stub
        self.ws = ws
        self.spool = spool


@pytest.fixture(scope="module", params=BACKENDS)
async def env(request, tmp_path_factory) -> AsyncIterator[Env]:
    config_dir = tmp_path_factory.mktemp(f"files-{request.param}")
    async with running_executor_handle(config_dir, backend=request.param, max_file_bytes=MAX_FILE) as running:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="files"))).workspace
            yield Env(stub, ws, config_dir / "uploads")
            for left in (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces:
                await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=left.id))


def upload_requests(ws_id: str, path: str, data: bytes, **first: object) -> list[pb.UploadFileRequest]:
    requests = [pb.UploadFileRequest(workspace_id=ws_id, path=path, **first)]
    requests += [pb.UploadFileRequest(data=data[i : i + CHUNK]) for i in range(0, len(data), CHUNK)]
    return requests


async def upload(env: Env, path: str, data: bytes, **first: object) -> pb.UploadFileResponse:
    return await env.stub.UploadFile(iter(upload_requests(env.ws.id, path, data, **first)), timeout=60)


async def download(env: Env, path: str) -> tuple[pb.FileInfo, bytes]:
    info, chunks = None, []
    async for response in env.stub.DownloadFile(
        pb.DownloadFileRequest(workspace_id=env.ws.id, path=path), timeout=60
    ):
        if response.HasField("file"):
            info = response.file
        chunks.append(response.data)
    assert info is not None
    return info, b"".join(chunks)


async def status_of(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def sh(env: Env, script: str) -> bytes:
    result = await execute(env.stub, env.ws.id, script)
    assert result.exit_code == 0, result.stderr
    return result.stdout


async def test_binary_multichunk_upload_round_trips_exactly(env):
    data = os.urandom(3 * 1024 * 1024 + 17)
    response = await upload(env, "data/blob.bin", data, create_parents=True, mode=0o600)
    assert response.sha256 == hashlib.sha256(data).hexdigest()
    assert response.file.path == "/workspace/data/blob.bin"
    assert response.file.size == len(data) and response.file.mode == 0o600
    info, got = await download(env, "/workspace/data/blob.bin")
    assert info.size == len(data) and info.type == pb.FILE_TYPE_REGULAR
    assert got == data
    # The workspace's own commands see the same bytes.
    assert (await sh(env, "wc -c < data/blob.bin")).strip() == str(len(data)).encode()
    empty = await upload(env, "data/empty", b"")
    assert empty.file.size == 0 and (await download(env, "data/empty"))[1] == b""


async def test_oversize_upload_is_refused_and_leaves_no_file(env):
    error = await status_of(upload(env, "big.bin", b"x" * (MAX_FILE + 1)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-file-bytes" in error.details()
    missing = await status_of(env.stub.StatFile(pb.StatFileRequest(workspace_id=env.ws.id, path="big.bin")))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert list(env.spool.iterdir()) == []


async def test_cancelled_upload_leaves_no_partial_file(env):
    await upload(env, "keep.txt", b"old contents")
    sent = asyncio.Event()

    async def requests() -> AsyncIterator[pb.UploadFileRequest]:
        yield pb.UploadFileRequest(
            workspace_id=env.ws.id, path="keep.txt", overwrite=True, data=b"new" * 1000
        )
        yield pb.UploadFileRequest(data=b"more" * 1000)
        sent.set()
        await asyncio.sleep(3600)

    call = env.stub.UploadFile(requests())
    await sent.wait()
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # The old file is untouched, and nothing half-written lies beside it.
    _, got = await download(env, "keep.txt")
    assert got == b"old contents"
    names = await sh(env, "ls -A /workspace")
    assert b".firebox-upload" not in names
    for _ in range(50):
        if not list(env.spool.iterdir()):
            break
        await asyncio.sleep(0.1)
    assert list(env.spool.iterdir()) == []


async def test_concurrent_uploads_to_one_path_leave_one_complete_version(env):
    versions = [bytes([65 + i]) * (512 * 1024) for i in range(4)]
    results = await asyncio.gather(*(upload(env, "race.bin", v, overwrite=True) for v in versions))
    assert all(r.file.size == 512 * 1024 for r in results)
    _, got = await download(env, "race.bin")
    assert got in versions
    assert b".firebox-upload" not in await sh(env, "ls -A /workspace")


async def test_upload_without_overwrite_refuses_an_existing_file(env):
    await upload(env, "once.txt", b"first")
    error = await status_of(upload(env, "once.txt", b"second"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (await download(env, "once.txt"))[1] == b"first"


@pytest.mark.parametrize("path", ["../etc/passwd", "a/../../etc/passwd", "/etc/passwd", "/workspace/../etc"])
async def test_paths_outside_the_workspace_are_invalid(env, path):
    for call in (
        env.stub.DownloadFile(pb.DownloadFileRequest(workspace_id=env.ws.id, path=path)).read(),
        upload(env, path, b"x", overwrite=True),
        env.stub.ListFiles(pb.ListFilesRequest(workspace_id=env.ws.id, path=path)),
        env.stub.StatFile(pb.StatFileRequest(workspace_id=env.ws.id, path=path)),
    ):
        error = await status_of(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "path" in error.details()


async def test_symlinks_escaping_the_workspace_are_invalid(env):
    await sh(env, "ln -sfn /etc etclink && ln -sf /etc/passwd pwlink && ln -sfn ../.. uplink")
    for path in ("etclink/passwd", "pwlink", "uplink/etc/passwd"):
        error = await status_of(
            env.stub.DownloadFile(pb.DownloadFileRequest(workspace_id=env.ws.id, path=path)).read()
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, error.details())
        assert "outside /workspace" in error.details()
    for path in ("etclink/evil", "pwlink", "etclink/new/dir/file"):
        error = await status_of(upload(env, path, b"x", overwrite=True, create_parents=True))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, error.details())
    error = await status_of(env.stub.ListFiles(pb.ListFilesRequest(workspace_id=env.ws.id, path="etclink")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Nothing was created outside.
    assert (await execute(env.stub, env.ws.id, "test -e /etc/evil || test -e /etc/new")).exit_code != 0


async def test_symlinks_inside_the_workspace_are_followed(env):
    await upload(env, "real/target.txt", b"inside", create_parents=True)
    await sh(env, "ln -sfn real reallink && ln -sf real/target.txt filelink")
    assert (await download(env, "reallink/target.txt"))[1] == b"inside"
    assert (await download(env, "filelink"))[1] == b"inside"
    stat = await env.stub.StatFile(pb.StatFileRequest(workspace_id=env.ws.id, path="filelink"))
    assert stat.file.type == pb.FILE_TYPE_SYMLINK and stat.file.link_target == "real/target.txt"


async def test_list_shows_names_sizes_and_types(env):
    await upload(env, "tree/a.txt", b"12345", create_parents=True)
    await upload(env, "tree/sub/b.txt", b"1234567", create_parents=True)
    await sh(env, "ln -sfn a.txt tree/link && mkdir -p tree/empty")
    flat = await env.stub.ListFiles(pb.ListFilesRequest(workspace_id=env.ws.id, path="tree"))
    got = {(e.name, e.type, e.size) for e in flat.entries}
    assert got == {
        ("a.txt", pb.FILE_TYPE_REGULAR, 5),
        ("sub", pb.FILE_TYPE_DIRECTORY, 0),
        ("link", pb.FILE_TYPE_SYMLINK, 0),
        ("empty", pb.FILE_TYPE_DIRECTORY, 0),
    }
    assert [e.path for e in flat.entries] == sorted(e.path for e in flat.entries)
    assert not flat.truncated
    deep = await env.stub.ListFiles(pb.ListFilesRequest(workspace_id=env.ws.id, path="tree", recursive=True))
    assert "/workspace/tree/sub/b.txt" in {e.path for e in deep.entries}
    one = await env.stub.ListFiles(pb.ListFilesRequest(workspace_id=env.ws.id, path="tree/a.txt"))
    assert [(e.path, e.size) for e in one.entries] == [("/workspace/tree/a.txt", 5)]
    capped = await env.stub.ListFiles(
        pb.ListFilesRequest(workspace_id=env.ws.id, path="tree", recursive=True, max_entries=2)
    )
    assert len(capped.entries) == 2 and capped.truncated


async def test_missing_file_is_not_found_and_directory_download_is_invalid(env):
    missing = await status_of(
        env.stub.DownloadFile(pb.DownloadFileRequest(workspace_id=env.ws.id, path="nope.txt")).read()
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    await sh(env, "mkdir -p adir")
    error = await status_of(
        env.stub.DownloadFile(pb.DownloadFileRequest(workspace_id=env.ws.id, path="adir")).read()
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    no_parent = await status_of(upload(env, "no/such/dir/f.txt", b"x"))
    assert no_parent.code() == grpc.StatusCode.NOT_FOUND and "create_parents" in no_parent.details()


async def test_read_only_workspace_refuses_uploads(env):
    ws = (
        await env.stub.CreateWorkspace(
            pb.CreateWorkspaceRequest(name="readonly", policy=pb.IsolationPolicy(read_only=True))
        )
    ).workspace
    try:
        ro = Env(env.stub, ws, env.spool)
        error = await status_of(upload(ro, "f.txt", b"x"))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "read-only" in error.details()
    finally:
        await env.stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


@pytest.mark.parametrize("mode", [0o1000, 0o4755, 2**32 - 1])
async def test_mode_over_0777_is_invalid_and_leaves_no_file(env, mode):
    error = await status_of(upload(env, "moded", b"x", mode=mode))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "mode" in error.details()
    missing = await status_of(env.stub.StatFile(pb.StatFileRequest(workspace_id=env.ws.id, path="moded")))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_more_than_32_uploads_in_flight_are_resource_exhausted(env):
    """32 uploads hold their slots (first message sent, the rest withheld); the 33rd is refused,
    and once they finish uploads are taken again."""
    release = asyncio.Event()
    await sh(env, "mkdir -p held")

    async def held(index: int) -> AsyncIterator[pb.UploadFileRequest]:
        yield pb.UploadFileRequest(workspace_id=env.ws.id, path=f"held/{index}", data=b"a")
        await release.wait()
        yield pb.UploadFileRequest(data=b"b")

    async def hold(index: int) -> pb.UploadFileResponse:
        # A probe taken while the holders are still arriving can leave the last holder refused:
        # it tries again until the slots are all held (bounded by the probes' 30 s).
        for _ in range(600):
            try:
                return await env.stub.UploadFile(held(index), timeout=120)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or release.is_set():
                    raise
            await asyncio.sleep(0.05)
        raise AssertionError(f"holder {index} never got a slot")

    holders = [asyncio.ensure_future(hold(i)) for i in range(32)]
    try:
        # Bounded wait for the 32 to reach their slots; until then a probe may still be taken.
        refused = None
        for attempt in range(300):
            try:
                await upload(env, f"probe-{attempt}", b"p")
            except grpc.aio.AioRpcError as exc:
                refused = exc
                break
            await asyncio.sleep(0.1)
        assert refused is not None, "33 uploads in flight were all taken"
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.details()
        assert "32 uploads" in refused.details()
        assert not any(h.done() for h in holders)
    finally:
        release.set()
        done = await asyncio.gather(*holders)
    assert sorted(r.file.path for r in done) == sorted(f"/workspace/held/{i}" for i in range(32))
    assert all(r.file.size == 2 for r in done)
    assert (await upload(env, "after-the-32", b"ok")).file.size == 2
    await sh(env, "rm -rf held probe-* after-the-32")


@pytest.mark.bwrap
async def test_upload_to_a_full_disk_is_aborted_and_leaves_nothing(tmp_path):
    """docs/executor.md: an upload cut short in the workspace (its disk full) is ABORTED and
    leaves nothing behind. A 1 MiB tmpfs is mounted (as root, how CI runs) at a directory of a
    bwrap workspace's files; 2 MiB go to it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    async with running_executor_handle(tmp_path / "executor", backend="bwrap") as running:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="full"))).workspace
            env = Env(stub, ws, tmp_path / "executor" / "uploads")
            # Mounted before anything runs in the workspace: a sandbox's mounts are copied when
            # it starts (a warm shell started earlier would go on seeing the directory beneath).
            small = tmp_path / "executor" / "workspaces" / ws.id / "files" / "small"
            small.mkdir()
            await asyncio.to_thread(mount_small_tmpfs, small)
            try:
                assert (await upload(env, "small/first.bin", b"x" * 1000)).file.size == 1000
                await sh(env, "rm small/first.bin")
                error = await status_of(upload(env, "small/big.bin", os.urandom(2 * 1024 * 1024)))
                assert error.code() == grpc.StatusCode.ABORTED, error.details()
                assert "full" in error.details()
                assert (await sh(env, "ls -A small")) == b""
                # Once there is room again, the same upload works.
                assert (await upload(env, "small/fits.bin", b"x" * 1000)).file.size == 1000
            finally:
                await asyncio.to_thread(subprocess.run, ["umount", str(small)], check=True)
            await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


def mount_small_tmpfs(directory) -> None:  # type: ignore[no-untyped-def]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(directory)], check=True)


async def test_concurrent_uploads_creating_the_same_parents_all_succeed(env):
    """create_parents racing on one new directory: each upload enters what another just made
    (once PERMISSION_DENIED 'cannot create directory' on bubblewrap)."""
    paths = [f"racing/deep/{i}" for i in range(24)]
    done = await asyncio.gather(*(upload(env, path, b"r", create_parents=True) for path in paths))
    assert sorted(r.file.path for r in done) == sorted(f"/workspace/{p}" for p in paths)
    await sh(env, "rm -rf racing")
