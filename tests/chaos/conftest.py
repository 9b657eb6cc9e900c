"""Fixtures of the chaos tests: a real executor in a process of its own (so that it can be killed
and measured), a sync stub on one channel, and helpers to run a command and read its output."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.chaos.helpers import HOST_PROBE_NAME, HOST_PROBE_VALUE
from tests.support.executor_server import ExecutorProcess, remove_owned_workspaces


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExecutorProcess]:
    config_dir = tmp_path_factory.mktemp("chaos-executor")
    process = ExecutorProcess(
        config_dir,
        backend="docker",
        env={HOST_PROBE_NAME: HOST_PROBE_VALUE},
        args=["--output-cap-bytes", str(16 * 1024 * 1024)],
    )
    try:
        process.start()
        yield process
    finally:
        process.kill()
        remove_owned_workspaces(config_dir)


@pytest.fixture(scope="module")
def stub(executor: ExecutorProcess) -> Iterator[executor_pb2_grpc.ExecutorServiceStub]:
    with grpc.insecure_channel(executor.target) as channel:
        yield executor_pb2_grpc.ExecutorServiceStub(channel)


@pytest.fixture(scope="module")
def workspace(stub: executor_pb2_grpc.ExecutorServiceStub) -> pb.Workspace:
    return stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="chaos"), timeout=60).workspace
