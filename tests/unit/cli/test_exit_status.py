"""`firebox exec` exits as a shell would: the command's code, 128+N for signals, 124 for timeouts."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import wrappers_pb2

from firebox.cli import exit_codes
from firebox.cli.exec_cmd import exit_status
from firebox.executor.v1 import executor_pb2 as ex


def final(reason: int, code: int | None) -> ex.ExecuteResponse:
    response = ex.ExecuteResponse(end_reason=reason)
    if code is not None:
        response.exit_code.CopyFrom(wrappers_pb2.Int32Value(value=code))
    return response


@pytest.mark.parametrize(
    ("reason", "code", "expected"),
    [
        (ex.END_REASON_EXITED, 0, 0),
        (ex.END_REASON_EXITED, 3, 3),
        (ex.END_REASON_EXITED, 255, 255),
        (ex.END_REASON_EXITED, 256 + 7, 7),
        (ex.END_REASON_TIMED_OUT, 137, 124),
        (ex.END_REASON_TIMED_OUT, None, 124),
        (ex.END_REASON_OUT_OF_MEMORY, 137, 137),
        (ex.END_REASON_SIGNALED, -15, 143),
        (ex.END_REASON_SIGNALED, 143, 143),
        (ex.END_REASON_STOPPED, 130, 130),
        (ex.END_REASON_STOPPED, None, 130),
        (ex.END_REASON_CANCELLED, None, 130),
        (ex.END_REASON_SHUTDOWN, None, 143),
        (ex.END_REASON_SIGNALED, None, 137),
    ],
)
def test_exit_status_follows_shell_conventions(reason: int, code: int | None, expected: int) -> None:
    assert exit_status(final(reason, code)) == expected


def test_every_grpc_status_a_client_can_cause_has_its_documented_code() -> None:
    assert exit_codes.for_status(grpc.StatusCode.NOT_FOUND) == 3
    assert exit_codes.for_status(grpc.StatusCode.UNAVAILABLE) == 4
    assert exit_codes.for_status(grpc.StatusCode.DEADLINE_EXCEEDED) == 4
    assert exit_codes.for_status(grpc.StatusCode.UNAUTHENTICATED) == 5
    assert exit_codes.for_status(grpc.StatusCode.FAILED_PRECONDITION) == 6
    assert exit_codes.for_status(grpc.StatusCode.ABORTED) == 6
    assert exit_codes.for_status(grpc.StatusCode.INVALID_ARGUMENT) == 2
    assert exit_codes.for_status(grpc.StatusCode.RESOURCE_EXHAUSTED) == 7
    assert exit_codes.for_status(grpc.StatusCode.INTERNAL) == 1
