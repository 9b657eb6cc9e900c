"""Workspace lifecycle over gRPC against a real Docker engine."""

from __future__ import annotations

import docker
import grpc
import pytest

from executor_service.backend import LABEL_ID, LABEL_MANAGED, LABEL_NAME
from executor_service.backends.docker import container_name, volume_name
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import remove_owned_workspaces, running_executor_handle

pytestmark = pytest.mark.docker


async def test_create_returns_running_workspace_with_default_isolation(stub, workspace):
    assert workspace.id.startswith("ws_")
    assert workspace.status == pb.WORKSPACE_STATUS_RUNNING
    assert workspace.backend == pb.BACKEND_DOCKER
    assert workspace.image == "firebox-busybox:latest"
    policy = workspace.policy
    assert policy.network is False and policy.read_only is False
    assert policy.user == "1000:1000"
    assert policy.memory_bytes == 512 * 1024 * 1024 and policy.pids_limit == 256 and policy.cpu_millis == 1000
    assert list(policy.capabilities) == []
    assert policy.no_new_privileges and policy.read_only_root
    assert "no network" in workspace.isolation and "docker container" in workspace.isolation


async def test_container_is_labelled_and_has_the_policy_applied(workspace, engine):
    container = engine.containers.get(container_name(workspace.id))
    assert container.labels[LABEL_MANAGED] == "true"
    assert container.labels[LABEL_ID] == workspace.id
    assert container.labels[LABEL_NAME] == "shared"
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    assert host["PidsLimit"] == 256
    assert host["Memory"] == host["MemorySwap"] == 512 * 1024 * 1024
    assert host["NanoCpus"] == 1_000_000_000
    assert "/tmp" in host["Tmpfs"] and "mode=1777" in host["Tmpfs"]["/tmp"]
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    # A size-limited filesystem of its own (the server's default disk_bytes), bind-mounted.
    assert mounts["/workspace"]["Type"] == "bind"
    assert mounts["/workspace"]["Source"].endswith(f"/disks/{workspace.id}")
    assert workspace.policy.disk_bytes == 2 * 1024 * 1024 * 1024
    assert not any("docker.sock" in (m.get("Source") or "") for m in container.attrs["Mounts"])


async def test_get_and_list_read_status_from_the_engine(stub, workspace, engine):
    got = (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=workspace.id))).workspace
    assert got.status == pb.WORKSPACE_STATUS_RUNNING
    listed = (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces
    assert workspace.id in [w.id for w in listed]
    # Paused behind the executor's back: the status says so, because it is read from the engine.
    container = engine.containers.get(container_name(workspace.id))
    container.pause()
    try:
        got = (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=workspace.id))).workspace
        assert got.status == pb.WORKSPACE_STATUS_PAUSED
    finally:
        container.unpause()


async def test_files_survive_stop_and_start_and_stopped_workspace_refuses_commands(stub):
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="stopstart"))).workspace
    try:
        result = await execute(stub, ws.id, script="echo kept > /workspace/note.txt")
        assert result.exit_code == 0
        session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
        got = (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws.id))).workspace
        assert got.session_count == 1
        stopped = (await stub.StopWorkspace(pb.StopWorkspaceRequest(workspace_id=ws.id))).workspace
        assert stopped.status == pb.WORKSPACE_STATUS_EXITED
        # Stopping ended the workspace's sessions.
        assert stopped.session_count == 0
        assert (await stub.ListSessions(pb.ListSessionsRequest(workspace_id=ws.id))).sessions == []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await execute(stub, ws.id, script="true", session_id=session.id)
        assert info.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await execute(stub, ws.id, script="true")
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not running" in info.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        started = (await stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=ws.id))).workspace
        assert started.status == pb.WORKSPACE_STATUS_RUNNING
        result = await execute(stub, ws.id, script="cat /workspace/note.txt")
        assert result.stdout == b"kept\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_delete_removes_container_and_volume(stub, engine):
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    await execute(stub, ws.id, script="echo x > /workspace/f")
    await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(container_name(ws.id))
    with pytest.raises(docker.errors.NotFound):
        engine.volumes.get(volume_name(ws.id))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws.id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unknown_workspace_is_not_found_for_every_rpc(stub):
    calls = [
        stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id="ws_nope")),
        stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id="ws_nope")),
        stub.StopWorkspace(pb.StopWorkspaceRequest(workspace_id="ws_nope")),
        stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id="ws_nope")),
        stub.CreateSession(pb.CreateSessionRequest(workspace_id="ws_nope")),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()
        assert "ws_nope" in info.value.details()


async def test_image_not_on_the_engine_is_not_found_naming_it_and_never_pulled(stub):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(image="firebox-no-such-image:v9"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "firebox-no-such-image:v9" in info.value.details()
    assert "make images" in info.value.details() or "docker load" in info.value.details()


async def test_duplicate_name_is_already_exists(stub, workspace):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="shared"))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert workspace.id in info.value.details()


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"env": {"OPENAI_API_KEY": "x"}}, "OPENAI_API_KEY"),
        ({"env": {"GITHUB_TOKEN": "x"}}, "GITHUB_TOKEN"),
        ({"env": {"1BAD": "x"}}, "1BAD"),
        ({"policy": pb.IsolationPolicy(memory_bytes=-1)}, "policy.memory_bytes"),
        ({"policy": pb.IsolationPolicy(pids_limit=-5)}, "policy.pids_limit"),
        ({"policy": pb.IsolationPolicy(cpu_millis=10_000_000)}, "policy.cpu_millis"),
        ({"policy": pb.IsolationPolicy(tmp_bytes=1)}, "policy.tmp_bytes"),
        ({"policy": pb.IsolationPolicy(user="root; rm -rf /")}, "policy.user"),
        ({"policy": pb.IsolationPolicy(capabilities=["not a cap"])}, "policy.capabilities"),
        ({"policy": pb.IsolationPolicy(capabilities=["CAP_FOOBAR"])}, "policy.capabilities"),
        ({"name": "bad name!"}, "name"),
        ({"image": "bad image ref"}, "image"),
    ],
)
async def test_bad_create_requests_are_invalid_argument_naming_the_field(stub, request_fields, field):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(**request_fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in info.value.details()


async def test_explicit_policy_overrides_are_applied_and_reported(stub, engine):
    policy = pb.IsolationPolicy(
        network=True, memory_bytes=64 * 1024 * 1024, pids_limit=50, cpu_millis=500, capabilities=["CHOWN"]
    )
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=policy))).workspace
    try:
        assert ws.policy.network is True and ws.policy.memory_bytes == 64 * 1024 * 1024
        assert ws.policy.pids_limit == 50 and ws.policy.cpu_millis == 500
        assert list(ws.policy.capabilities) == ["CAP_CHOWN"]
        # Fields left unset keep their defaults.
        assert ws.policy.read_only_root and ws.policy.no_new_privileges and ws.policy.user == "1000:1000"
        host = engine.containers.get(container_name(ws.id)).attrs["HostConfig"]
        assert host["NetworkMode"] == "bridge" and host["PidsLimit"] == 50
        assert host["CapAdd"] == ["CAP_CHOWN"]
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_restarted_executor_adopts_workspaces_with_their_files(tmp_path):
    try:
        await _adoption_round_trip(tmp_path)
    finally:
        remove_owned_workspaces(tmp_path)


async def _adoption_round_trip(tmp_path):
    async with running_executor_handle(tmp_path, backend="docker", keep_workspaces=True) as first:
        async with grpc.aio.insecure_channel(first.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (
                await stub.CreateWorkspace(
                    pb.CreateWorkspaceRequest(name="adoptme", env={"GREETING": "hello"}, labels={"team": "a"})
                )
            ).workspace
            await execute(stub, ws.id, script="echo survived > /workspace/data")
    async with running_executor_handle(tmp_path, backend="docker") as second:
        async with grpc.aio.insecure_channel(second.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            try:
                listed = (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces
                adopted = [w for w in listed if w.id == ws.id]
                assert len(adopted) == 1
                assert adopted[0].name == "adoptme" and dict(adopted[0].env) == {"GREETING": "hello"}
                assert dict(adopted[0].labels) == {"team": "a"}
                assert adopted[0].policy == ws.policy
                result = await execute(stub, ws.id, script='cat /workspace/data; echo "$GREETING"')
                assert result.stdout == b"survived\nhello\n"
            finally:
                await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_server_info_reports_backend_and_defaults(stub, workspace):
    info = await stub.GetServerInfo(pb.GetServerInfoRequest())
    assert info.backend == pb.BACKEND_DOCKER
    assert info.default_image == "firebox-busybox:latest"
    assert info.default_policy.pids_limit == 256 and info.default_policy.user == "1000:1000"
    assert info.workspace_count >= 1
    assert info.version
