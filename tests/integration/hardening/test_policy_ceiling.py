"""The operator's policy ceiling on a real executor and through the agent (issue 15, item 6):
by default a request may not ask for root, capabilities, the network or looser limits; the
operator allows named loosenings. Above the ceiling is PERMISSION_DENIED naming the field."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from firebox.agent.v1 import agent_pb2
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.agent_server import agent_stub, collect, new_session, running_agent
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor
from tests.support.fake_provider import FakeProvider, shell_reply, text_reply

pytestmark = pytest.mark.docker

ABOVE = [
    (pb.IsolationPolicy(user="0"), "policy.user"),
    (pb.IsolationPolicy(capabilities=["SYS_ADMIN"]), "policy.capabilities"),
    (pb.IsolationPolicy(capabilities=["MKNOD", "DAC_READ_SEARCH"]), "policy.capabilities"),
    (pb.IsolationPolicy(network=True), "policy.network"),
    (pb.IsolationPolicy(memory_bytes=0), "policy.memory_bytes"),
    (pb.IsolationPolicy(pids_limit=0), "policy.pids_limit"),
    (pb.IsolationPolicy(cpu_millis=0), "policy.cpu_millis"),
    (pb.IsolationPolicy(no_new_privileges=False), "policy.no_new_privileges"),
    (pb.IsolationPolicy(read_only_root=False), "policy.read_only_root"),
]


async def test_requests_above_the_default_ceiling_are_permission_denied(tmp_path: Path) -> None:
    fake = await FakeProvider.start()
    try:
        async with (
            running_executor(tmp_path / "executor") as target,
            running_agent(tmp_path / "agent", fake.base_url, target) as agent,
            grpc.aio.insecure_channel(target) as channel,
        ):
            executor = executor_pb2_grpc.ExecutorServiceStub(channel)
            via_agent = agent_stub(agent)
            for stub in (executor, via_agent):
                for policy, field in ABOVE:
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=policy))
                    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, (policy, info.value)
                    assert field in info.value.details()
            assert not (await executor.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces
            # Tighter than the default is always fine.
            tight = pb.IsolationPolicy(memory_bytes=64 << 20, pids_limit=32, cpu_millis=250, read_only=True)
            ws = (await executor.CreateWorkspace(pb.CreateWorkspaceRequest(policy=tight))).workspace
            await executor.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))

            # The agent's per-session workspace policy goes the same way: the run says why.
            session = await new_session(via_agent, workspace_policy=pb.IsolationPolicy(user="0"))
            fake.script(shell_reply("id -u", call_id="call_1"), text_reply("done"))
            events = await collect(
                via_agent.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="go"))
            )
            said = " ".join(str(event) for event in events)
            assert "policy.user" in said and "ceiling" in said, said[-2000:]
    finally:
        await fake.stop()


async def test_the_operator_can_allow_root_and_a_capability(tmp_path: Path) -> None:
    ceiling = "root=allow,capabilities=CHOWN"
    async with (
        running_executor(tmp_path, policy_ceiling=ceiling) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        policy = pb.IsolationPolicy(user="0:0", capabilities=["CHOWN"])
        ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(policy=policy))).workspace
        result = await execute(stub, ws.id, script="id -u; touch /tmp/f && chown 1000 /tmp/f && echo chowned")
        assert result.stdout.split() == [b"0", b"chowned"], result
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateWorkspace(
                pb.CreateWorkspaceRequest(policy=pb.IsolationPolicy(capabilities=["SYS_ADMIN"]))
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "CAP_SYS_ADMIN (allowed: CAP_CHOWN)" in info.value.details()
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))
