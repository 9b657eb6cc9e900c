"""300 KB and 10 MiB in every text and bytes field of every RPC of both services (issue 15, item 3):
a field over its limit is INVALID_ARGUMENT naming it; any answer is a precise code with a short
message that never carries the input."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory

from firebox.agent.v1 import agent_pb2
from firebox.common.limits import MAX_STATUS_CHARS, field_limit
from firebox.executor.v1 import executor_pb2
from tests.integration.hardening.oversize import Oversized, oversized_requests
from tests.support.agent_server import running_agent
from tests.support.executor_server import running_executor

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

TOKEN = "limits-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
SIZES = (300 * 1024, 10 * 1024 * 1024)
SERVICES = (
    executor_pb2.DESCRIPTOR.services_by_name["ExecutorService"],
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"],
)


async def _call(channel: grpc.aio.Channel, case: Oversized) -> tuple[grpc.StatusCode, str]:
    method = case.method
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_type = message_factory.GetMessageClass(method.output_type)
    kwargs = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": response_type.FromString,
    }
    try:
        if method.client_streaming:
            factory = channel.stream_stream if method.server_streaming else channel.stream_unary
            call = factory(path, **kwargs)(iter([case.request]), metadata=AUTH, timeout=30)
        else:
            factory = channel.unary_stream if method.server_streaming else channel.unary_unary
            call = factory(path, **kwargs)(case.request, metadata=AUTH, timeout=30)
        if method.server_streaming:
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_every_rpc_has_a_text_or_bytes_field_to_try() -> None:
    # The enumeration must reach every RPC that takes any text: a new one cannot slip past.
    for service in SERVICES:
        covered = {case.method.name for case in oversized_requests(service, 1)}
        takes_text = {m.name for m in service.methods if m.input_type.fields}
        assert covered >= takes_text - {"ListWorkspaces", "GetServerInfo", "ListTools"}, service.name


async def test_oversized_fields_get_a_precise_code_and_a_short_message(tmp_path: Path) -> None:
    async with (
        running_executor(tmp_path / "executor", auth_token=TOKEN) as executor_target,
        running_agent(tmp_path / "agent", executor=executor_target, auth_token=TOKEN) as agent,
        grpc.aio.insecure_channel(executor_target) as executor_channel,
        grpc.aio.insecure_channel(agent.target) as agent_channel,
    ):
        channels = {SERVICES[0].full_name: executor_channel, SERVICES[1].full_name: agent_channel}
        tried = 0
        for service in SERVICES:
            for size in SIZES:
                for case in oversized_requests(service, size):
                    code, details = await _call(channels[service.full_name], case)
                    where = f"{service.name}.{case.method.name} {case.path} ({size} bytes)"
                    tried += 1
                    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
                        where,
                        details[:200],
                    )
                    assert len(details) <= MAX_STATUS_CHARS, (where, len(details))
                    assert "x" * 100 not in details, (where, details[:200])
                    if size > field_limit(case.field):
                        assert code == grpc.StatusCode.INVALID_ARGUMENT, (where, code, details[:200])
                        assert case.path.split(".")[0] in details, (where, details[:200])
        assert tried > 100
