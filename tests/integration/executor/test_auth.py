"""Bearer-token auth on a real executor: calls need the token, health checks do not."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle

pytestmark = pytest.mark.docker

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
async def secured(tmp_path_factory):
    async with running_executor_handle(tmp_path_factory.mktemp("auth"), auth_token=TOKEN) as running:
        async with grpc.aio.insecure_channel(running.target) as channel:
            yield channel


async def test_call_without_token_is_unauthenticated(secured):
    stub = executor_pb2_grpc.ExecutorServiceStub(secured)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetServerInfo(pb.GetServerInfoRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await execute(stub, "ws_x", script="true")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_token_is_unauthenticated(secured):
    stub = executor_pb2_grpc.ExecutorServiceStub(secured)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListWorkspaces(pb.ListWorkspacesRequest(), metadata=(("authorization", "Bearer wrong"),))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_right_token_is_served(secured):
    stub = executor_pb2_grpc.ExecutorServiceStub(secured)
    info = await stub.GetServerInfo(
        pb.GetServerInfoRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),)
    )
    assert info.backend == pb.BACKEND_DOCKER


async def test_health_needs_no_token(secured):
    response = await health_pb2_grpc.HealthStub(secured).Check(health_pb2.HealthCheckRequest())
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
async def test_the_bearer_scheme_is_case_insensitive(secured, scheme):
    stub = executor_pb2_grpc.ExecutorServiceStub(secured)
    info = await stub.GetServerInfo(
        pb.GetServerInfoRequest(), metadata=(("authorization", f"{scheme} {TOKEN}"),)
    )
    assert info.backend == pb.BACKEND_DOCKER


@pytest.mark.parametrize("value", [TOKEN, f"Basic {TOKEN}", f"Bearer{TOKEN}", f"bearer {TOKEN.upper()}"])
async def test_the_token_itself_must_match_after_a_bearer_scheme(secured, value):
    stub = executor_pb2_grpc.ExecutorServiceStub(secured)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetServerInfo(pb.GetServerInfoRequest(), metadata=(("authorization", value),))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
