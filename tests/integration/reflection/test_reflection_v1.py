"""Reflection v1 (what grpcurl 1.9+, Postman and current gRPC tools ask for) and v1alpha, on both
real services with a bearer token required: reflection stays open, the rest does not.

The client here speaks only v1: it calls `/grpc.reflection.v1.ServerReflection/ServerReflectionInfo`
by its path. Its messages are encoded with the v1alpha classes because the two protocols share
every message and field number (v1 is v1alpha promoted unchanged), which is the wire a v1 tool sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2 as wire

from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.executor.v1 import executor_pb2, executor_pb2_grpc
from tests.support.agent_server import running_agent
from tests.support.executor_server import running_executor

TOKEN = "reflection-test-token"
V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.fixture(scope="module")
async def targets(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    base = tmp_path_factory.mktemp("reflection")
    async with running_executor(Path(base / "executor"), backend="bwrap", auth_token=TOKEN) as executor:
        async with running_agent(Path(base / "agent"), executor=executor, auth_token=TOKEN) as agent:
            yield {"executor": executor, "agent": agent.target}


async def _ask(
    target: str, method: str, *requests: wire.ServerReflectionRequest
) -> list[wire.ServerReflectionResponse]:
    """Send reflection requests on one stream (no token) and return the answers."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.stream_stream(
            method,
            request_serializer=wire.ServerReflectionRequest.SerializeToString,
            response_deserializer=wire.ServerReflectionResponse.FromString,
        )(iter(requests), timeout=30)
        return [response async for response in call]


async def _services(target: str, method: str) -> set[str]:
    (answer,) = await _ask(target, method, wire.ServerReflectionRequest(list_services=""))
    assert answer.WhichOneof("message_response") == "list_services_response", answer
    return {service.name for service in answer.list_services_response.service}


@pytest.mark.parametrize(
    ("service", "main"),
    [("executor", "firebox.executor.v1.ExecutorService"), ("agent", "firebox.agent.v1.AgentService")],
)
async def test_a_v1_only_client_lists_services_without_a_token(
    targets: dict[str, str], service: str, main: str
) -> None:
    listed = await _services(targets[service], V1)
    assert listed == {
        main,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    # v1alpha, for older tools, answers the same.
    assert await _services(targets[service], V1ALPHA) == listed


async def test_the_rest_of_each_service_still_needs_the_token(targets: dict[str, str]) -> None:
    async with (
        grpc.aio.insecure_channel(targets["executor"]) as executor,
        grpc.aio.insecure_channel(targets["agent"]) as agent,
    ):
        calls = [
            executor_pb2_grpc.ExecutorServiceStub(executor).ListWorkspaces(
                executor_pb2.ListWorkspacesRequest(), timeout=30
            ),
            agent_pb2_grpc.AgentServiceStub(agent).ListSessions(agent_pb2.ListSessionsRequest(), timeout=30),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_v1_client_can_build_the_executor_schema_and_describe_reflection_v1(
    targets: dict[str, str],
) -> None:
    answers = await _ask(
        targets["executor"],
        V1,
        wire.ServerReflectionRequest(file_containing_symbol="firebox.executor.v1.ExecutorService"),
        wire.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
        wire.ServerReflectionRequest(file_containing_symbol="no.such.Service"),
    )
    pool = descriptor_pool.DescriptorPool()
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(blob)
        for answer in answers[:2]
        for blob in answer.file_descriptor_response.file_descriptor_proto
    ]
    # Dependencies first, as a client resolving imports would add them.
    added: set[str] = set()
    while len(added) < len({f.name for f in files}):
        for file in files:
            if file.name not in added and all(dep in added for dep in file.dependency):
                pool.Add(file)
                added.add(file.name)
    execute = pool.FindMethodByName("firebox.executor.v1.ExecutorService.Execute")
    assert execute.input_type.full_name == "firebox.executor.v1.ExecuteRequest"
    assert execute.input_type.fields_by_name["input_data"].number == 20
    v1 = pool.FindServiceByName("grpc.reflection.v1.ServerReflection")
    method = v1.methods_by_name["ServerReflectionInfo"]
    assert method.input_type.full_name == "grpc.reflection.v1.ServerReflectionRequest"
    assert method.output_type.full_name == "grpc.reflection.v1.ServerReflectionResponse"
    assert method.client_streaming and method.server_streaming
    assert answers[2].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
