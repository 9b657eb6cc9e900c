"""What a command inside a default docker workspace can and cannot do."""

from __future__ import annotations

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from tests.support.executor_client import execute

pytestmark = pytest.mark.docker


async def test_no_network_only_loopback(stub, workspace):
    result = await execute(
        stub, workspace.id, script="ls /sys/class/net; wget -T 2 -q -O- http://1.1.1.1/ 2>&1"
    )
    interfaces = result.stdout.decode().split()
    assert interfaces[0] == "lo"
    assert "eth0" not in interfaces
    assert result.exit_code != 0


async def test_runs_as_uid_1000(stub, workspace):
    result = await execute(stub, workspace.id, script="id -u; id -g")
    assert result.stdout == b"1000\n1000\n"


async def test_all_capabilities_dropped_and_no_new_privileges(stub, workspace):
    result = await execute(
        stub,
        workspace.id,
        script="grep -E '^(CapEff|CapPrm|CapInh|CapAmb|CapBnd|NoNewPrivs)' /proc/self/status; "
        "touch mine; chown 0 mine 2>/dev/null && echo chowned || echo refused",
    )
    lines = result.stdout.decode().splitlines()
    fields = dict(line.split(":\t") for line in lines[:-1])
    assert fields["CapEff"] == fields["CapPrm"] == fields["CapInh"] == fields["CapAmb"] == "0000000000000000"
    # Only CAP_CHOWN (bit 0) stays in the bounding set, for the root init that gives /workspace to
    # the user; with no-new-privileges the user's processes can never gain it.
    assert fields["CapBnd"] == "0000000000000001"
    assert fields["NoNewPrivs"] == "1"
    assert lines[-1] == "refused"


async def test_root_filesystem_is_read_only_but_workspace_and_tmp_are_writable(stub, workspace):
    result = await execute(
        stub,
        workspace.id,
        script="touch /x; echo root=$?; touch /workspace/w; echo ws=$?; touch /tmp/t; echo tmp=$?",
    )
    assert b"root=1" in result.stdout
    assert b"ws=0" in result.stdout and b"tmp=0" in result.stdout
    assert b"Read-only file system" in result.stderr


async def test_dev_shm_is_a_64_mib_tmpfs_as_the_policy_docs_say(stub, workspace):
    # docs/executor.md: Docker's default /dev/shm, writable, its pages charged to memory_bytes.
    result = await execute(
        stub, workspace.id, script="df -k /dev/shm | tail -1; touch /dev/shm/s; echo shm=$?; rm -f /dev/shm/s"
    )
    assert result.stdout.split()[1] == b"65536", result.stdout
    assert b"shm=0" in result.stdout


async def test_read_only_mode_refuses_writes_to_workspace(stub):
    ws = (
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=pb.IsolationPolicy(read_only=True)))
    ).workspace
    try:
        assert ws.policy.read_only and "/workspace read-only" in ws.isolation
        result = await execute(
            stub, ws.id, script="touch /workspace/nope; echo ws=$?; touch /tmp/ok; echo tmp=$?"
        )
        assert b"ws=1" in result.stdout and b"tmp=0" in result.stdout
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_no_docker_socket_inside(stub, workspace):
    result = await execute(
        stub,
        workspace.id,
        script="ls /var/run/docker.sock /run/docker.sock 2>&1; find / -name 'docker.sock' 2>/dev/null",
    )
    assert b"No such file" in result.stdout
    assert b"docker.sock\n" not in result.stdout.replace(b"No such file or directory", b"")


async def test_host_environment_does_not_leak(stub, workspace):
    # conftest set FIREBOX_TEST_LEAK in the executor's own environment.
    result = await execute(stub, workspace.id, script="env")
    assert b"FIREBOX_TEST_LEAK" not in result.stdout
    assert b"leaked-host-value" not in result.stdout


async def test_workspace_and_execute_env_reach_the_command(stub):
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(env={"WS_VAR": "from-ws"}))).workspace
    try:
        result = await execute(stub, ws.id, script='echo "$WS_VAR $CMD_VAR"', env={"CMD_VAR": "from-cmd"})
        assert result.stdout == b"from-ws from-cmd\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_memory_hog_is_out_of_memory_and_executor_keeps_serving(stub):
    policy = pb.IsolationPolicy(memory_bytes=32 * 1024 * 1024)
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=policy))).workspace
    try:
        # A shell variable doubled until it cannot fit in 32 MiB.
        hog = "x=xxxxxxxxxxxxxxxx; while :; do x=$x$x; done"
        result = await execute(stub, ws.id, script=hog, timeout=60)
        assert result.end_reason == pb.END_REASON_OUT_OF_MEMORY, result.final
        after = await execute(stub, ws.id, script="echo alive")
        assert after.stdout == b"alive\n"
        info = await stub.GetServerInfo(pb.GetServerInfoRequest())
        assert info.version
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_out_of_memory_takes_a_command_before_the_workspace_itself(stub):
    """Every session process carries a higher OOM score adjustment than the container's init and
    idle main process, so a workspace out of memory loses a command, not its container."""
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    try:
        result = await execute(
            stub,
            ws.id,
            script="cat /proc/self/oom_score_adj; for p in 1 $(pgrep -x sleep); do cat /proc/$p/oom_score_adj; done",
        )
        ours, *workspace = result.stdout.decode().split()
        assert int(ours) == 500, result.stdout
        assert workspace and all(int(v) < int(ours) for v in workspace), result.stdout
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_fork_bomb_is_contained_by_pids_limit(stub):
    ws = (
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=pb.IsolationPolicy(pids_limit=64)))
    ).workspace
    try:
        # The workspace's pids cgroup: its limit, and how many forks it had refused before.
        pids = "/sys/fs/cgroup/pids"
        bomb = f"cat {pids}/pids.max {pids}/pids.events; b() {{ b | b & }}; b; sleep 2"
        result = await execute(stub, ws.id, script=bomb, timeout=8)
        assert result.end_reason in (pb.END_REASON_EXITED, pb.END_REASON_TIMED_OUT, pb.END_REASON_SIGNALED)
        assert result.stdout == b"64\nmax 0\n", result.stdout
        assert b"can't fork" in result.stderr, result.stderr
        # The kernel refused forks at the limit ("can't fork" above), and the workspace is usable
        # once the bomb is killed.
        after = await execute(stub, ws.id, script="echo alive", deadline=30)
        assert after.stdout == b"alive\n"
        got = (await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id=ws.id))).workspace
        assert got.status == pb.WORKSPACE_STATUS_RUNNING
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))
    info = await stub.GetServerInfo(pb.GetServerInfoRequest())
    assert info.backend == pb.BACKEND_DOCKER


async def test_secret_env_in_execute_is_refused(stub, workspace):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await execute(stub, workspace.id, script="true", env={"MY_SECRET": "s"})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "MY_SECRET" in info.value.details()


async def test_orphans_are_reaped_by_the_containers_init(stub, workspace):
    """docs/executor.md: docker-init is PID 1 so orphans are reaped. An orphan (its parent exited)
    is adopted by PID 1, and once it ends no zombie of it is left (bounded wait inside)."""
    script = (
        "cat /proc/1/comm; sh -c 'sleep 1 & echo $! > /tmp/orphan'; pid=$(cat /tmp/orphan);"
        " grep PPid /proc/$pid/status; i=0;"
        " while [ -e /proc/$pid ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done;"
        " if [ -e /proc/$pid ]; then grep State /proc/$pid/status; else echo reaped; fi"
    )
    result = await execute(stub, workspace.id, script=script)
    lines = result.stdout.decode().split("\n")
    assert lines[0] in ("docker-init", "tini"), lines
    assert lines[1].split() == ["PPid:", "1"], lines
    assert lines[2] == "reaped", lines
