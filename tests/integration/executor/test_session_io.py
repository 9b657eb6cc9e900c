"""How docker session shells move their bytes: FIFOs in <config-dir>/io shared with the workspace
through a read-only bind mount (--session-io fifo, the default where dockerd shares the executor's
mount namespace), the docker exec socket otherwise, and the fall-back from one to the other."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle

pytestmark = pytest.mark.docker

# What the session shell's stdout is: a FIFO under the shared mount, or an anonymous pipe.
STDOUT_TARGET = "readlink /proc/$$/fd/1"


async def _session(stub, workspace_id: str) -> str:
    reply = await stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace_id))
    return reply.session.id


async def test_session_output_goes_through_the_shared_fifos_whose_mount_is_read_only(stub, workspace):
    sid = await _session(stub, workspace.id)
    try:
        result = await execute(stub, workspace.id, script=STDOUT_TARGET, session_id=sid)
        assert result.stdout.startswith(b"/run/firebox/s") and result.stdout.endswith(b"/out\n")
        refused = await execute(stub, workspace.id, script="touch /run/firebox/x", session_id=sid)
        assert refused.exit_code != 0 and b"Read-only" in refused.stderr
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


async def test_binary_output_stays_intact_and_the_streams_separate(stub, workspace):
    sid = await _session(stub, workspace.id)
    try:
        every_byte = "".join(f"\\{i:03o}" for i in range(256))
        result = await execute(
            stub, workspace.id, script=f"printf '{every_byte}'; printf 'to-err' >&2", session_id=sid
        )
        assert result.stdout == bytes(range(256))
        assert result.stderr == b"to-err"
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


async def test_large_output_arrives_whole(stub, workspace):
    sid = await _session(stub, workspace.id)
    try:
        result = await execute(
            stub, workspace.id, script="dd if=/dev/zero bs=1M count=24 2>/dev/null", session_id=sid
        )
        assert len(result.stdout) == 24 * 1024 * 1024 and result.exit_code == 0
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


async def test_input_reaches_the_program_through_the_fifos(stub, workspace):
    sid = await _session(stub, workspace.id)
    try:
        data = os.urandom(200_000)
        chunks = [pb.ExecuteRequest(input_data=data[i : i + 65536]) for i in range(0, len(data), 65536)]
        result = await execute(stub, workspace.id, script="cat", session_id=sid, later=chunks)
        assert result.stdout == data
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


async def test_closing_a_session_removes_its_fifos_and_deleting_the_workspace_its_directory(tmp_path):
    async with running_executor_handle(tmp_path, backend="docker") as executor:
        async with grpc.aio.insecure_channel(executor.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
            io_dir = tmp_path.resolve() / "io" / ws.id
            sid = await _session(stub, ws.id)
            (session_dir,) = io_dir.iterdir()
            assert session_dir.name.startswith("s")
            assert sorted(p.name for p in session_dir.iterdir()) == ["data", "err", "in", "out"]
            await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
            assert list(io_dir.iterdir()) == []
            await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))
            assert not io_dir.exists()


async def test_a_restart_removes_fifos_left_by_the_previous_process(tmp_path):
    async with running_executor_handle(tmp_path, backend="docker", keep_workspaces=True) as executor:
        async with grpc.aio.insecure_channel(executor.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    io_root = tmp_path.resolve() / "io"
    # What a killed executor leaves: a session's FIFO directory, and the directory of a workspace
    # that was removed behind its back.
    (io_root / ws.id / "s0123456789abcdef").mkdir()
    os.mkfifo(io_root / ws.id / "s0123456789abcdef" / "out")
    (io_root / "ws_gone").mkdir()
    async with running_executor_handle(tmp_path, backend="docker") as executor:
        async with grpc.aio.insecure_channel(executor.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            assert sorted(p.name for p in io_root.iterdir()) == [ws.id]
            assert list((io_root / ws.id).iterdir()) == []
            # The adopted workspace's sessions still get the FIFOs.
            result = await execute(stub, ws.id, script=STDOUT_TARGET, session_id=await _session(stub, ws.id))
            assert result.stdout.startswith(b"/run/firebox/")


async def test_fifos_the_container_cannot_see_fall_back_to_the_exec_socket(tmp_path):
    async with running_executor_handle(tmp_path, backend="docker") as executor:
        async with grpc.aio.insecure_channel(executor.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
            # The container keeps the directory it was given; a new one in its place is not shared
            # with it (as when the executor runs in a container of its own).
            io_dir = tmp_path.resolve() / "io" / ws.id
            io_dir.rename(Path(str(io_dir) + ".old"))
            io_dir.mkdir(mode=0o755)
            sid = await _session(stub, ws.id)
            result = await execute(stub, ws.id, script=f"{STDOUT_TARGET}; echo works", session_id=sid)
            assert result.stdout.startswith(b"pipe:") and result.stdout.endswith(b"works\n")
            assert list(io_dir.iterdir()) == []  # the failed attempt's FIFOs are gone


async def test_attach_mode_uses_the_exec_socket_and_mounts_nothing(tmp_path):
    async with running_executor_handle(tmp_path, backend="docker", session_io="attach") as executor:
        async with grpc.aio.insecure_channel(executor.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
            sid = await _session(stub, ws.id)
            result = await execute(
                stub, ws.id, script=f"{STDOUT_TARGET}; ls /run/firebox 2>&1 || echo none", session_id=sid
            )
            assert result.stdout.startswith(b"pipe:") and result.stdout.endswith(b"none\n")
            assert not (tmp_path / "io").exists()


async def test_input_through_the_data_fifo_arrives_whole_and_a_stopped_commands_rest_never_leaks(
    stub, workspace
):
    import hashlib

    from tests.support.executor_client import LiveExecution, first_request

    sid = await _session(stub, workspace.id)
    try:
        payload = os.urandom(24 * 1024 * 1024 + 17)
        later = [
            pb.ExecuteRequest(input_data=payload[i : i + 3_000_000])
            for i in range(0, len(payload), 3_000_000)
        ]
        later.append(pb.ExecuteRequest(close_input=True))
        result = await execute(stub, workspace.id, script="md5sum", session_id=sid, later=later)
        assert result.stdout.split()[0].decode() == hashlib.md5(payload).hexdigest()
        # A command that reads a little, then is killed with input still on its way.
        live = LiveExecution(
            stub, first_request(workspace.id, "head -c 10 >/dev/null; echo read; sleep 300", session_id=sid)
        )
        for _ in range(4):
            live.send(pb.ExecuteRequest(input_data=b"x" * 2_000_000))
        await live.read_until_output(b"read")
        live.send(pb.ExecuteRequest(stop=pb.STOP_SIGNAL_KILL))
        await live.finish()
        after = await execute(
            stub,
            workspace.id,
            script="od -c | head -2",
            session_id=sid,
            later=[pb.ExecuteRequest(input_data=b"own"), pb.ExecuteRequest(close_input=True)],
        )
        assert after.stdout.startswith(b"0000000   o   w   n\n")
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
