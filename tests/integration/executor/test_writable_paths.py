"""Writable paths: /workspace read-only but for chosen directories, for every process and for
uploads; changed on a live workspace without losing a shell session's state (docker), or
refused while sessions are open (bwrap)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import grpc
import pytest

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
async def backend(
    request, tmp_path_factory
) -> AsyncIterator[tuple[str, executor_pb2_grpc.ExecutorServiceStub]]:
    config_dir = tmp_path_factory.mktemp(f"writable-{request.param}")
    async with running_executor_handle(config_dir, backend=request.param) as running:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            yield request.param, stub
            for left in (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces:
                await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=left.id))


async def _create(stub, *paths: str) -> pb.Workspace:
    policy = pb.IsolationPolicy(writable_paths=list(paths))
    return (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=policy))).workspace


async def _run(stub, workspace_id: str, script: str, session_id: str = "") -> tuple[int | None, str]:
    result = await execute(stub, workspace_id, script, session_id=session_id)
    return result.exit_code, (result.stdout + result.stderr).decode()


async def _upload(stub, workspace_id: str, path: str, data: bytes = b"x") -> pb.UploadFileResponse:
    return await stub.UploadFile(
        iter([pb.UploadFileRequest(workspace_id=workspace_id, path=path, data=data, create_parents=True)])
    )


async def test_commands_write_inside_the_writable_paths_only(backend):
    _name, stub = backend
    ws = await _create(stub, "src", "/workspace/docs/api", "src/nested")
    # Normalized: relative, sorted, without paths inside another.
    assert list(ws.policy.writable_paths) == ["docs/api", "src"]
    assert "/workspace read-only but docs/api, src" in ws.isolation
    code, out = await _run(stub, ws.id, "touch /workspace/src/a /workspace/docs/api/b && echo inside-ok")
    assert (code, out) == (0, "inside-ok\n")
    code, out = await _run(stub, ws.id, "touch /workspace/outside")
    assert code != 0 and "Read-only file system" in out
    code, out = await _run(stub, ws.id, "mkdir /workspace/docs/other")
    assert code != 0 and "Read-only file system" in out
    # A symlink inside a writable path does not lead out of it.
    code, out = await _run(
        stub, ws.id, "ln -s /workspace/top /workspace/src/link && echo hi > /workspace/src/link"
    )
    assert code != 0 and "Read-only file system" in out
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
    code, out = await _run(
        stub, ws.id, "cd /workspace/src && echo s > in-session && cat in-session", session.id
    )
    assert (code, out) == (0, "s\n")
    code, out = await _run(stub, ws.id, "echo no > ../outside", session.id)
    assert code != 0 and "Read-only file system" in out
    # The session re-enters its directory before each command without disturbing `cd -`.
    await _run(stub, ws.id, "cd /tmp && cd /workspace/src", session.id)
    assert await _run(stub, ws.id, "cd - && pwd", session.id) == (0, "/tmp\n/tmp\n")


async def test_an_upload_outside_the_writable_paths_is_permission_denied_naming_the_path(backend):
    _name, stub = backend
    ws = await _create(stub, "src")
    uploaded = await _upload(stub, ws.id, "src/deep/file.txt", b"hello")
    assert uploaded.file.path == "/workspace/src/deep/file.txt"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await _upload(stub, ws.id, "docs/readme.md")
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "/workspace/docs/readme.md" in error.value.details()
    code, _ = await _run(stub, ws.id, "test -e /workspace/docs/readme.md")
    assert code == 1


@pytest.mark.parametrize(
    ("paths", "policy", "code"),
    [
        (["../etc"], {}, grpc.StatusCode.INVALID_ARGUMENT),
        (["/etc"], {}, grpc.StatusCode.INVALID_ARGUMENT),
        (["/workspace"], {}, grpc.StatusCode.INVALID_ARGUMENT),
        ([f"p{n}" for n in range(33)], {}, grpc.StatusCode.INVALID_ARGUMENT),
        (["src"], {"read_only": True}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_bad_writable_paths_are_refused_naming_the_field(backend, paths, policy, code):
    _name, stub = backend
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.CreateWorkspace(
            pb.CreateWorkspaceRequest(policy=pb.IsolationPolicy(writable_paths=paths, **policy))
        )
    assert error.value.code() == code
    assert "writable_paths" in error.value.details()


async def test_a_writable_path_through_a_symlink_is_refused(backend):
    _name, stub = backend
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    code, _ = await _run(stub, ws.id, "ln -s / /workspace/evil")
    assert code == 0
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.SetWritablePaths(
            pb.SetWritablePathsRequest(workspace_id=ws.id, writable_paths=["evil/etc"])
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "evil" in error.value.details()


async def test_changing_writable_paths_on_a_live_workspace(backend):
    name, stub = backend
    ws = await _create(stub, "src")
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
    code, _ = await _run(stub, ws.id, "export KEPT=yes; cd /workspace/src && touch before", session.id)
    assert code == 0
    request = pb.SetWritablePathsRequest(workspace_id=ws.id, writable_paths=["docs"])
    if name == "bwrap":
        # A running sandbox's mounts cannot change: refused while a session is open...
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.SetWritablePaths(request)
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "open shell sessions" in error.value.details()
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
        # ...and applied to every process started after it otherwise.
        changed = (await stub.SetWritablePaths(request)).workspace
        assert list(changed.policy.writable_paths) == ["docs"]
        code, out = await _run(stub, ws.id, "touch /workspace/src/after")
        assert code != 0 and "Read-only file system" in out
        assert (await _run(stub, ws.id, "touch /workspace/docs/ok && echo ok"))[1] == "ok\n"
        return
    changed = (await stub.SetWritablePaths(request)).workspace
    assert list(changed.policy.writable_paths) == ["docs"]
    # The session keeps its variables and its directory, and its next command sees the change.
    code, out = await _run(stub, ws.id, 'echo "$KEPT $PWD"; touch after', session.id)
    assert code != 0 and out.startswith("yes /workspace/src\n") and "Read-only file system" in out
    code, out = await _run(stub, ws.id, "touch /workspace/docs/now && echo ok", session.id)
    assert (code, out) == (0, "ok\n")
    assert list(
        (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws.id))).workspace.policy.writable_paths
    ) == ["docs"]
    # Survives a restart of the container (its mount namespace is new then).
    await stub.StopWorkspace(pb.StopWorkspaceRequest(workspace_id=ws.id))
    await stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=ws.id))
    code, out = await _run(stub, ws.id, "touch /workspace/src/restarted")
    assert code != 0 and "Read-only file system" in out
    # Empty: all of /workspace writable again.
    await stub.SetWritablePaths(pb.SetWritablePathsRequest(workspace_id=ws.id))
    assert (await _run(stub, ws.id, "touch /workspace/anywhere && echo ok"))[1] == "ok\n"
