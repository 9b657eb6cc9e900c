"""Lists and gets racing deletes (issue 15, item 1): the Docker SDK lists, then inspects each
container; one removed in between must leave the answer consistent (or NOT_FOUND for a get), never
INTERNAL. On the executor directly and through the agent, with auth on."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import grpc
import pytest

from firebox.agent.v1 import agent_pb2_grpc
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.agent_server import running_agent
from tests.support.executor_server import running_executor

pytestmark = pytest.mark.docker

TOKEN = "churn-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
LIST_CALLS = 1000  # on each of the executor and the agent


async def test_list_and_get_during_create_delete_churn_never_answer_internal(tmp_path: Path) -> None:
    async with (
        running_executor(tmp_path / "executor", auth_token=TOKEN) as target,
        running_agent(tmp_path / "agent", executor=target, auth_token=TOKEN) as agent,
        grpc.aio.insecure_channel(target) as executor_channel,
        grpc.aio.insecure_channel(agent.target) as agent_channel,
    ):
        executor = executor_pb2_grpc.ExecutorServiceStub(executor_channel)
        via_agent = agent_pb2_grpc.AgentServiceStub(agent_channel)
        codes: collections.Counter[str] = collections.Counter()
        recent: collections.deque[str] = collections.deque(maxlen=8)
        lists = {"executor": 0, "agent": 0}
        done = asyncio.Event()

        async def churn() -> None:
            while not done.is_set():
                created = await executor.CreateWorkspace(pb.CreateWorkspaceRequest(), metadata=AUTH)
                recent.append(created.workspace.id)
                try:
                    await executor.DeleteWorkspace(
                        pb.DeleteWorkspaceRequest(workspace_id=created.workspace.id), metadata=AUTH
                    )
                except grpc.aio.AioRpcError as exc:
                    codes[f"delete {exc.code().name}"] += 1

        async def lister(name: str, stub: object) -> None:
            while lists[name] < LIST_CALLS:
                lists[name] += 1
                try:
                    await stub.ListWorkspaces(pb.ListWorkspacesRequest(), metadata=AUTH)  # type: ignore[attr-defined]
                    codes["list OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    codes[f"list {exc.code().name}"] += 1
                for workspace_id in list(recent)[-2:]:
                    try:
                        await stub.GetWorkspace(  # type: ignore[attr-defined]
                            pb.GetWorkspaceRequest(workspace_id=workspace_id), metadata=AUTH
                        )
                        codes["get OK"] += 1
                    except grpc.aio.AioRpcError as exc:
                        codes[f"get {exc.code().name}"] += 1

        churners = [asyncio.create_task(churn()) for _ in range(2)]
        try:
            await asyncio.gather(
                *(lister("executor", executor) for _ in range(3)),
                *(lister("agent", via_agent) for _ in range(3)),
            )
        finally:
            done.set()
            await asyncio.gather(*churners, return_exceptions=True)
        assert min(lists.values()) >= LIST_CALLS
        assert codes["list OK"] == sum(lists.values()), codes
        allowed = {"list OK", "get OK", "get NOT_FOUND", "delete NOT_FOUND"}
        assert set(codes) <= allowed, codes
