"""Faults: kill -9 the executor while 20 executions run through the agent; kill -9 the agent in
the middle of a streaming run. Both services run as processes of their own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import grpc
import pytest

from executor_service.backends.docker import LABEL_OWNER
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.agent_server import UNREACHABLE_EXECUTOR
from tests.support.executor_server import REPO, ExecutorProcess, remove_owned_workspaces
from tests.support.service_process import AgentProcess

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

EXECUTIONS = 20
# Spread so that every execution runs at once: a workspace runs at most 8 sessionless commands
# (--max-running-per-workspace), the rest wait in its queue.
WORKSPACES = 4
UNAVAILABLE_BOUND = 3.0  # the issue says "within a second"; generous for a shared machine


def labelled_containers(config_dir: Path) -> set[str]:
    """Names of the containers labelled as this executor's (whatever the executor thinks)."""
    owner = (config_dir / "instance-id").read_text().strip()
    client = docker.from_env()
    try:
        return {c.name for c in client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"})}
    finally:
        client.close()


def left_running(workspace_ids: list[str], needle: str) -> int:
    """How many processes in these workspaces' containers have `needle` in their command line."""
    client = docker.from_env()
    try:
        tops = [client.containers.get(f"firebox-{w}").top(ps_args="-eo pid,args") for w in workspace_ids]
    finally:
        client.close()
    return sum(needle in " ".join(row) for top in tops for row in top.get("Processes") or [])


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[ExecutorProcess, AgentProcess]]:
    executor = ExecutorProcess(tmp_path / "executor", backend="docker")
    agent = AgentProcess(tmp_path / "agent", executor=executor.target)
    try:
        executor.start()
        agent.start()
        yield executor, agent
    finally:
        agent.kill()
        executor.kill()
        remove_owned_workspaces(tmp_path / "executor")


async def running_then_cut(
    stub: agent_pb2_grpc.AgentServiceStub, workspace_id: str, started: asyncio.Event, n: int
) -> tuple[str, float]:
    """One long execution through the agent: (status code it ended with, when it ended)."""
    first = pb.ExecuteRequest(workspace_id=workspace_id, script=f"echo started-{n}; sleep 120")
    call = stub.Execute(iter([first]), timeout=60)
    try:
        async for response in call:
            if b"started" in response.stdout_data:
                started.set()
        return "OK", time.monotonic()
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, time.monotonic()


async def test_executor_killed_mid_executions(services, record_property) -> None:
    """kill -9 under 20 running executions: every client sees UNAVAILABLE quickly; after a restart
    every workspace is adopted with its files, and no container is left that the executor does not list."""
    executor, agent = services
    with grpc.insecure_channel(executor.target) as channel:
        ex = executor_pb2_grpc.ExecutorServiceStub(channel)
        workspaces = [
            ex.CreateWorkspace(pb.CreateWorkspaceRequest(name=f"kill-{n}"), timeout=60).workspace.id
            for n in range(WORKSPACES)
        ]
        for workspace_id in workspaces:
            first = pb.ExecuteRequest(workspace_id=workspace_id, script=f"echo {workspace_id} > keep; sync")
            list(ex.Execute(iter([first]), timeout=30))

    async with grpc.aio.insecure_channel(agent.target) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        events = [asyncio.Event() for _ in range(EXECUTIONS)]
        tasks = [
            asyncio.create_task(running_then_cut(stub, workspaces[n % WORKSPACES], events[n], n))
            for n in range(EXECUTIONS)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 60)
        killed_at = time.monotonic()
        executor.kill()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    delays = [ended - killed_at for _, ended in outcomes]
    summary = f"{EXECUTIONS} executions cut: codes {sorted({c for c, _ in outcomes})}, max {max(delays) * 1000:.0f} ms"
    print(summary)
    record_property("executor_kill", summary)
    assert all(code == "UNAVAILABLE" for code, _ in outcomes), outcomes
    assert max(delays) < UNAVAILABLE_BOUND, summary

    executor.start()
    with grpc.insecure_channel(executor.target) as channel:
        ex = executor_pb2_grpc.ExecutorServiceStub(channel)
        listed = {w.id: w for w in ex.ListWorkspaces(pb.ListWorkspacesRequest(), timeout=30).workspaces}
        assert set(workspaces) <= set(listed), listed
        for workspace_id in workspaces:
            if listed[workspace_id].status != pb.WORKSPACE_STATUS_RUNNING:
                ex.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=workspace_id), timeout=60)
            first = pb.ExecuteRequest(workspace_id=workspace_id, argv=["cat", "keep"])
            out = b"".join(r.stdout_data for r in ex.Execute(iter([first]), timeout=30))
            assert out == f"{workspace_id}\n".encode()
        names = {f"firebox-{w}" for w in listed}
        assert labelled_containers(executor.config_dir) == names
        # The commands the dead executor was running do not outlive it (for long).
        for _ in range(50):
            if not left_running(workspaces, "sleep 120"):
                break
            await asyncio.sleep(0.2)
        assert left_running(workspaces, "sleep 120") == 0
    # And the agent, which outlived the executor, forwards again.
    with grpc.insecure_channel(agent.target) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        first = pb.ExecuteRequest(workspace_id=workspaces[0], script="echo back")
        responses = list(stub.Execute(iter([first]), timeout=30))
        assert b"".join(r.stdout_data for r in responses) == b"back\n"


@pytest.fixture
def slow_provider() -> Iterator[str]:
    """A fake provider streaming 400 deltas 20 ms apart (8 s), in a process of its own."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_provider", "--deltas", "400", "--pause", "0.02"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(10)


def test_agent_killed_mid_run(tmp_path: Path, slow_provider: str) -> None:
    """kill -9 while a reply streams: after a restart the earlier history is intact, the run is
    INTERRUPTED and the assistant message keeps the partial text that had been persisted."""
    agent = AgentProcess(tmp_path / "agent", executor=UNREACHABLE_EXECUTOR, provider=slow_provider)
    try:
        agent.start()
        with grpc.insecure_channel(agent.target) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            # An earlier, finished conversation that must come back byte for byte.
            done = stub.CreateSession(agent_pb2.CreateSessionRequest(title="earlier"), timeout=10).session
            list(
                stub.SendMessage(
                    agent_pb2.SendMessageRequest(session_id=done.id, content="first"), timeout=60
                )
            )
            earlier = stub.GetSession(
                agent_pb2.GetSessionRequest(session_id=done.id, include_messages=True), timeout=10
            )

            session = stub.CreateSession(agent_pb2.CreateSessionRequest(title="cut"), timeout=10).session
            call = stub.SendMessage(
                agent_pb2.SendMessageRequest(session_id=session.id, content="tell me"), timeout=60
            )
            received = ""
            run_id = ""
            first_delta_at = 0.0
            for response in call:
                run_id = run_id or response.event.run_id
                if response.event.HasField("text_delta"):
                    received += response.event.text_delta.text
                    first_delta_at = first_delta_at or time.monotonic()
                # Well past the throttled persistence interval (about 0.5 s).
                if first_delta_at and time.monotonic() - first_delta_at > 2.0:
                    break
            agent.kill()
            call.cancel()
        agent.start()
        with grpc.insecure_channel(agent.target) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            run = stub.GetRun(agent_pb2.GetRunRequest(run_id=run_id), timeout=10).run
            assert run.status == agent_pb2.RUN_STATUS_INTERRUPTED, run
            got = stub.GetSession(
                agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True), timeout=10
            )
            roles = [(m.role, m.status) for m in got.messages]
            assert roles == [
                (agent_pb2.ROLE_USER, agent_pb2.MESSAGE_STATUS_COMPLETE),
                (agent_pb2.ROLE_ASSISTANT, agent_pb2.MESSAGE_STATUS_INTERRUPTED),
            ], got.messages
            assert got.messages[0].content == "tell me"
            partial = got.messages[1].content
            print(f"agent kill: client had {len(received)} chars, {len(partial)} persisted")
            assert partial and received.startswith(partial), (partial[:200], received[:200])
            assert not got.session.active_run_id
            again = stub.GetSession(
                agent_pb2.GetSessionRequest(session_id=done.id, include_messages=True), timeout=10
            )
            assert list(again.messages) == list(earlier.messages)
            assert again.session.message_count == earlier.session.message_count
            # The session takes a new message after the restart.
            events = [
                r.event
                for r in stub.SendMessage(
                    agent_pb2.SendMessageRequest(session_id=session.id, content="again"), timeout=60
                )
            ]
            assert events[-1].HasField("run_completed"), events[-1]
    finally:
        agent.kill()
