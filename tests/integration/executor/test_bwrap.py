"""The bubblewrap backend over gRPC: lifecycle, files, isolation probes, honest reporting."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from executor_service.backend import Policy, WorkspaceSpec
from executor_service.backends.bwrap import BwrapBackend
from executor_service.backends.cgroups import CgroupLimits
from firebox.client import devcontainer as devcontainer_folder
from firebox.common import errors
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle

pytestmark = [
    pytest.mark.bwrap,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]


@pytest.fixture(scope="module")
async def bw(tmp_path_factory):
    config_dir = tmp_path_factory.mktemp("bwrap")
    # Some tests run as another user than the default: this executor's ceiling allows it.
    ceiling = "user=allow"
    async with running_executor_handle(config_dir, backend="bwrap", policy_ceiling=ceiling) as running:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="bw"))).workspace
            yield stub, ws, config_dir
            # Deleting removes the workspace's cgroups too.
            for left in (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces:
                await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=left.id))


CGROUPS = CgroupLimits.detect()
needs_cgroups = pytest.mark.skipif(CGROUPS is None, reason="cgroup v1 is not writable here")


@needs_cgroups
async def test_workspace_reports_bwrap_with_cgroup_limits_in_force(bw):
    _stub, ws, _ = bw
    assert ws.backend == pb.BACKEND_BWRAP and ws.status == pb.WORKSPACE_STATUS_RUNNING
    assert ws.policy.pids_limit == 256 and ws.policy.cpu_millis == 1000
    assert ws.policy.memory_bytes == 512 * 1024 * 1024
    assert "bubblewrap" in ws.isolation and "cgroup limits" in ws.isolation
    pids = CGROUPS.root / "pids" / "firebox" / ws.id
    assert (pids / "pids.max").read_text().strip() == "256"


async def test_without_cgroups_unenforced_limits_read_zero(tmp_path):
    backend = BwrapBackend(tmp_path, cgroups=None)
    info = await backend.create(WorkspaceSpec(id="ws_plain", name="", image="", policy=Policy()))
    assert info.policy.pids_limit == 0 and info.policy.cpu_millis == 0
    assert info.policy.memory_bytes == Policy().memory_bytes
    assert "NO pids or cpu limit" in info.isolation and "RLIMIT_AS" in info.isolation
    assert (await backend.get("ws_plain")).policy == info.policy
    await backend.delete("ws_plain")


@needs_cgroups
async def test_fork_bomb_is_contained_and_memory_hog_is_out_of_memory(bw):
    stub, _ws, _ = bw
    policy = pb.IsolationPolicy(pids_limit=40, memory_bytes=32 * 1024 * 1024)
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=policy))).workspace
    try:
        bomb = await execute(stub, ws.id, script="b() { b | b & }; b; sleep 2", timeout=5)
        assert bomb.end_reason in (pb.END_REASON_EXITED, pb.END_REASON_TIMED_OUT, pb.END_REASON_SIGNALED)
        # The kernel refused forks past the limit (pids.events counts each refusal).
        events = (CGROUPS.root / "pids" / "firebox" / ws.id / "pids.events").read_text()
        assert int(events.split()[1]) > 0
        hog = await execute(stub, ws.id, script="x=xxxxxxxxxxxxxxxx; while :; do x=$x$x; done", timeout=60)
        assert hog.end_reason == pb.END_REASON_OUT_OF_MEMORY, hog.final
        assert (await execute(stub, ws.id, script="echo alive", deadline=30)).stdout == b"alive\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))
    assert not (CGROUPS.root / "pids" / "firebox" / ws.id).exists()


async def test_isolation_probes(bw):
    stub, ws, _ = bw
    script = (
        "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ls /sys/class/net 2>&1 | head -1;"
        " touch /x 2>/dev/null; echo root=$?; touch /workspace/w; echo ws=$?; env"
    )
    result = await execute(stub, ws.id, script=script)
    out = result.stdout.decode()
    assert out.startswith("1000\n")
    assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out
    assert "eth0" not in out
    assert "root=1" in out and "ws=0" in out
    assert "FIREBOX_TEST_LEAK" not in out


async def test_dev_shm_is_bounded_like_dockers(bw):
    stub, ws, _ = bw
    result = await execute(stub, ws.id, script="df -k /dev/shm | tail -1; touch /dev/shm/s; echo shm=$?")
    assert result.stdout.split()[1] == b"65536", result.stdout
    assert b"shm=0" in result.stdout


async def test_no_network(bw):
    stub, ws, _ = bw
    result = await execute(stub, ws.id, script="cat /proc/net/dev | tail -n +3 | cut -d: -f1")
    assert result.stdout.split() == [b"lo"]


async def test_files_survive_stop_start_and_restart_then_delete_removes_them(bw, tmp_path):
    stub, ws, config_dir = bw
    await execute(stub, ws.id, script="echo kept > /workspace/f")
    assert (await stub.StopWorkspace(pb.StopWorkspaceRequest(workspace_id=ws.id))).workspace.status == (
        pb.WORKSPACE_STATUS_EXITED
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await execute(stub, ws.id, script="true")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=ws.id))
    assert (await execute(stub, ws.id, script="cat /workspace/f")).stdout == b"kept\n"
    # A second executor over the same config dir adopts the workspace.
    async with running_executor_handle(config_dir, backend="bwrap") as again:
        async with grpc.aio.insecure_channel(again.target) as channel:
            stub2 = executor_pb2_grpc.ExecutorServiceStub(channel)
            listed = (await stub2.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces
            assert [w.name for w in listed if w.id == ws.id] == ["bw"]
            ws2 = (await stub2.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
            await stub2.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws2.id))
            assert not (config_dir / "workspaces" / ws2.id).exists()


async def test_read_only_mode(bw):
    stub, _ws, _ = bw
    ro = (
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=pb.IsolationPolicy(read_only=True)))
    ).workspace
    try:
        result = await execute(stub, ro.id, script="touch /workspace/x; echo ws=$?")
        assert b"ws=1" in result.stdout
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ro.id))


async def test_session_keeps_directory(bw):
    stub, ws, _ = bw
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
    try:
        await execute(stub, ws.id, script="cd /tmp", session_id=session.id)
        assert (await execute(stub, ws.id, script="pwd", session_id=session.id)).stdout == b"/tmp\n"
    finally:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))


@pytest.mark.parametrize("read_only", [False, True])
async def test_any_uid_gets_a_writable_home_tmp_and_workspace_as_in_a_container(bw, read_only):
    stub, _ws, _ = bw
    policy = pb.IsolationPolicy(user="4242:4242", read_only=read_only)
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=policy))).workspace
    try:
        result = await execute(
            stub,
            ws.id,
            script="id -u; stat -c %a /tmp; touch /tmp/t && echo tmp-ok; cd ~ && pwd; "
            "touch /workspace/w 2>/dev/null && echo ws-ok || echo ws-ro",
        )
        assert result.exit_code == 0, result.stderr
        expected = ["4242", "1777", "tmp-ok", "/workspace", "ws-ro" if read_only else "ws-ok"]
        assert result.stdout.decode().splitlines() == expected
        session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
        await execute(stub, ws.id, script="KEPT=1; cd /tmp", session_id=session.id)
        kept = await execute(stub, ws.id, script="echo $KEPT; pwd", session_id=session.id)
        assert kept.stdout == b"1\n/tmp\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


@needs_cgroups
async def test_pause_freezes_the_sandbox_cgroup_and_resume_thaws_it(bw):
    stub, _ws, _ = bw
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    try:
        session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
        await execute(stub, ws.id, script="K=kept", session_id=session.id)
        paused = (await stub.PauseWorkspace(pb.PauseWorkspaceRequest(workspace_id=ws.id))).workspace
        assert paused.status == pb.WORKSPACE_STATUS_PAUSED
        state = CGROUPS.root / "freezer" / "firebox" / ws.id / "freezer.state"
        assert state.read_text().strip() == "FROZEN"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await execute(stub, ws.id, script="echo $K", session_id=session.id)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        resumed = await execute(stub, ws.id, script="echo $K", session_id=session.id, resume_workspace=True)
        assert resumed.stdout == b"kept\n"
        assert state.read_text().strip() == "THAWED"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_without_a_freezer_pause_is_failed_precondition_saying_why(tmp_path):
    backend = BwrapBackend(tmp_path, cgroups=None)
    info = await backend.create(WorkspaceSpec(id="ws_plain", name="", image="", policy=Policy()))
    with pytest.raises(errors.FailedPrecondition, match="freezer"):
        await backend.pause(info)
    assert (await backend.get("ws_plain")).state == "running"
    await backend.delete("ws_plain")


def host_has(*paths: str) -> bool:
    return all(os.path.exists(p) for p in paths)


async def test_only_usr_is_bound_from_the_host(bw, tmp_path):
    """docs/executor.md: the bwrap backend binds only /usr (and the merged-/usr symlinks) from the
    host: no /etc, no /home, no host /tmp. Host files in each are looked for inside."""
    stub, ws, _ = bw
    host_tmp = Path("/tmp") / f"firebox-host-only-{ws.id}"
    host_tmp.write_text("host")
    try:
        probes = {
            "/usr/bin/env": True,  # bound
            str(host_tmp): False,
            "/etc/os-release": False,
            "/etc/hostname": False,
            "/var/lib/dpkg/status": False,
            "/root": False,
            "/home": False,
        }
        assert host_has("/etc/os-release", "/var/lib/dpkg/status")
        script = "; ".join(f"[ -e {p} ] && echo yes || echo no" for p in probes)
        result = await execute(stub, ws.id, script=script)
        seen = dict(zip(probes, result.stdout.decode().split(), strict=True))
        # /home or /root may exist as the sandbox's own empty directories, never the host's.
        listing = await execute(
            stub, ws.id, script="ls -A /home /root 2>/dev/null | grep -v ':$' | grep -c . || true"
        )
    finally:
        host_tmp.unlink()
    assert seen["/usr/bin/env"] == "yes"
    assert all(seen[p] == "no" for p in list(probes)[1:5]), seen
    assert listing.stdout.decode().strip() == "0", listing.stdout


async def test_idle_bwrap_workspace_stops_and_says_why(bw):
    stub, _ws, _ = bw
    idle = pb.CreateWorkspaceRequest(idle_timeout=duration_pb2.Duration(seconds=1))
    ws = (await stub.CreateWorkspace(idle)).workspace
    try:
        for _ in range(100):
            got = (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws.id))).workspace
            if got.status == pb.WORKSPACE_STATUS_EXITED:
                break
            await asyncio.sleep(0.1)
        assert got.status == pb.WORKSPACE_STATUS_EXITED
        assert "idle_timeout 1s" in got.stopped_reason
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_a_devcontainer_build_is_refused_naming_the_backend(bw, tmp_path):
    """Nothing on bubblewrap can run a Dockerfile: FAILED_PRECONDITION saying so, nothing made."""
    stub, _ws, _ = bw
    (tmp_path / "Dockerfile").write_text("FROM firebox-busybox:latest\n")
    (tmp_path / "devcontainer.json").write_text('{"build": {"dockerfile": "Dockerfile"}}')
    before = len((await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(devcontainer=devcontainer_folder.load(tmp_path)))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "docker backend" in info.value.details()
    assert len((await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces) == before
