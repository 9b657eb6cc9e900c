"""Every bad input of the Execute contract gets its exact status, with the field named, and the
server keeps serving."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from tests.support.executor_client import execute

pytestmark = pytest.mark.docker


async def _status_of(stub, *requests: pb.ExecuteRequest) -> grpc.aio.AioRpcError:
    async def stream():
        for request in requests:
            yield request

    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.Execute(stream(), timeout=30):
            pass
    return info.value


def _timeout(seconds: float):
    duration = pb.ExecuteRequest().timeout
    duration.FromTimedelta(dt.timedelta(seconds=seconds))
    return duration


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({}, "script"),  # missing program
        ({"script": "echo", "argv": ["echo"]}, "script"),
        ({"script": "true", "env": {"1X": "y"}}, "1X"),
        ({"script": "true", "env": {"BAD-NAME": "y"}}, "BAD-NAME"),
        ({"script": "true", "env": {"AWS_SECRET_ACCESS_KEY": "y"}}, "AWS_SECRET_ACCESS_KEY"),
        ({"script": "true", "input_data": b"hi"}, "input_data"),
        ({"script": "true", "close_input": True}, "close_input"),
        ({"script": "true", "stop": pb.STOP_SIGNAL_KILL}, "stop"),
        ({"argv": [""]}, "argv"),
        ({"script": "echo a\x00b"}, "script"),
        ({"argv": ["echo", "a\x00b"]}, "argv"),
        ({"script": "pwd", "directory": "/tmp\x00x"}, "directory"),
    ],
)
async def test_bad_first_message_is_invalid_argument_naming_the_field(stub, workspace, fields, named):
    error = await _status_of(stub, pb.ExecuteRequest(workspace_id=workspace.id, **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert named in error.details()


async def test_negative_timeout_is_invalid_argument(stub, workspace):
    request = pb.ExecuteRequest(workspace_id=workspace.id, script="true")
    request.timeout.FromTimedelta(dt.timedelta(seconds=-1))
    error = await _status_of(stub, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "timeout" in error.details()


async def test_missing_workspace_id_is_invalid_argument(stub):
    error = await _status_of(stub, pb.ExecuteRequest(script="true"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "workspace_id" in error.details()


async def test_empty_stream_is_invalid_argument(stub):
    error = await _status_of(stub)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unknown_workspace_is_not_found(stub):
    error = await _status_of(stub, pb.ExecuteRequest(workspace_id="ws_unknown", script="true"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "ws_unknown" in error.details()


async def test_unknown_session_is_not_found(stub, workspace):
    error = await _status_of(
        stub, pb.ExecuteRequest(workspace_id=workspace.id, session_id="nosuch", script="true")
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "nosuch" in error.details()


async def test_unknown_session_close_is_not_found(stub):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CloseSession(pb.CloseSessionRequest(session_id="nosuch"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_oversized_message_is_resource_exhausted_and_server_keeps_serving(stub, workspace):
    huge = "x" * (17 * 1024 * 1024)
    error = await _status_of(
        stub, pb.ExecuteRequest(workspace_id=workspace.id, script="true", known_name=huge)
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(labels={"big": huge}))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    result = await execute(stub, workspace.id, script="echo still-serving")
    assert result.stdout == b"still-serving\n"
