"""The shared server wiring: auth, the error mapping, and requests that do not parse."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firebox.common import server
from firebox.common.errors import NotFound
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc as pb_grpc

TOKEN = "unit-test-token"
EXECUTE = "/firebox.executor.v1.ExecutorService/Execute"
GET = "/firebox.executor.v1.ExecutorService/GetWorkspace"


class _Servicer(pb_grpc.ExecutorServiceServicer):
    async def GetWorkspace(self, request, context):
        raise NotFound(f"no workspace {request.workspace_id!r}")

    async def ListWorkspaces(self, request, context):
        raise RuntimeError("a bug")

    async def Execute(self, request_iterator, context) -> AsyncIterator[pb.ExecuteResponse]:
        async for request in request_iterator:
            yield pb.ExecuteResponse(stdout_data=request.script.encode())


@pytest.fixture
async def target() -> AsyncIterator[str]:
    spec = server.ServerSpec(
        name="unit",
        listen="127.0.0.1:0",
        register=lambda s: pb_grpc.add_ExecutorServiceServicer_to_server(_Servicer(), s),
        service_names=["firebox.executor.v1.ExecutorService"],
        auth_token=TOKEN,
    )
    running = await server.start(spec)
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


AUTH = (("authorization", f"Bearer {TOKEN}"),)


async def test_calls_without_the_token_are_unauthenticated_but_health_is_open(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ExecutorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id="x"))
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await stub.GetWorkspace(
                pb.GetWorkspaceRequest(workspace_id="x"), metadata=(("authorization", "Bearer nope"),)
            )
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_domain_errors_keep_their_code_and_bugs_become_internal_with_an_incident(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ExecutorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as not_found:
            await stub.GetWorkspace(pb.GetWorkspaceRequest(workspace_id="x"), metadata=AUTH)
        assert not_found.value.code() == grpc.StatusCode.NOT_FOUND
        assert "no workspace 'x'" in not_found.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as bug:
            await stub.ListWorkspaces(pb.ListWorkspacesRequest(), metadata=AUTH)
        assert bug.value.code() == grpc.StatusCode.INTERNAL
        assert "incident" in bug.value.details()


async def test_a_request_that_does_not_parse_is_invalid_argument_in_unary_and_streaming_calls(
    target: str,
) -> None:
    bad_utf8 = b"\x0a\x02\xff\xfe"  # field 1 (a string) holding invalid UTF-8
    async with grpc.aio.insecure_channel(target) as channel:
        raw_unary = channel.unary_unary(GET, request_serializer=bytes, response_deserializer=bytes)
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await raw_unary(bad_utf8, metadata=AUTH)
        assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        raw_stream = channel.stream_stream(EXECUTE, request_serializer=bytes, response_deserializer=bytes)
        call = raw_stream(metadata=AUTH)
        await call.write(pb.ExecuteRequest(script="ok").SerializeToString())
        await call.write(bad_utf8)
        await call.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as streaming:
            async for _ in call:
                pass
        assert streaming.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "does not parse" in streaming.value.details()
