"""Fixtures: one real in-process executor per module on the docker backend, a gRPC stub over a
real loopback socket, and one shared workspace for tests that only read or use fresh names."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import docker
import grpc
import pytest

from executor_service.ceiling import PolicyCeiling
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_server import remove_owned_workspaces, running_executor_handle

# Set before any executor starts: it must never be visible inside a workspace.
os.environ["FIREBOX_TEST_LEAK"] = "leaked-host-value"


@pytest.fixture(scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[object]:
    config_dir = tmp_path_factory.mktemp("executor")
    try:
        # Some tests here loosen the policy (network, CAP_CHOWN, another user or root, a writable
        # root filesystem): this executor's ceiling allows it.
        async with running_executor_handle(
            config_dir,
            backend="docker",
            policy_ceiling=PolicyCeiling.parse(
                "network=allow,user=allow,root=allow,writable_root=allow,capabilities=CHOWN"
            ),
        ) as running:
            yield running
    finally:
        remove_owned_workspaces(config_dir)


@pytest.fixture(scope="module")
async def stub(executor) -> AsyncIterator[executor_pb2_grpc.ExecutorServiceStub]:
    async with grpc.aio.insecure_channel(executor.target) as channel:
        yield executor_pb2_grpc.ExecutorServiceStub(channel)


@pytest.fixture(scope="module")
async def workspace(stub) -> pb.Workspace:
    response = await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="shared"))
    return response.workspace


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    return docker.from_env()
