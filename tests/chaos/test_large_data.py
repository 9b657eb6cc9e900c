"""Requests near the 16 MiB message limit: a 16 MiB stdin message (valid: every byte must arrive)
and a 16 MiB argument (refused at the edge: no exec could take it), each within a generous bound,
with the executor answering meanwhile.
The figures (MB/s) are printed for docs/reliability.md."""

from __future__ import annotations

import time

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from tests.chaos.helpers import HealthProbe, Result

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

NEAR_LIMIT = 16 * 1024 * 1024 - 64 * 1024
BOUND_SECONDS = 60.0  # generous: copying 16 MiB over loopback into a container is well under a second


def test_16_mib_of_stdin_in_one_message(executor, stub, workspace) -> None:
    data = bytes(range(256)) * (NEAR_LIMIT // 256)
    requests = [
        pb.ExecuteRequest(workspace_id=workspace.id, argv=["wc", "-c"]),
        pb.ExecuteRequest(input_data=data),
    ]
    with HealthProbe(executor.target) as probe:
        started = time.monotonic()
        result = Result(list(stub.Execute(iter(requests), timeout=120)))
        took = time.monotonic() - started
    print(f"16 MiB stdin: {took:.1f}s ({len(data) / took / 1e6:.2f} MB/s); health {probe.summary()}")
    assert result.text.strip() == str(len(data)), result
    assert not probe.failures, probe.failures
    assert took < BOUND_SECONDS, f"{len(data)} bytes of stdin took {took:.1f}s"


def test_a_16_mib_argument_is_refused_at_the_edge_and_the_executor_keeps_answering(
    executor, stub, workspace
) -> None:
    """A single argument this long is past Linux's 128 KiB per-argument limit (MAX_ARG_STRLEN), so
    it could never run: the message arrives whole and is refused at the edge (docs/reliability.md,
    field limits) with INVALID_ARGUMENT naming the argument, before anything starts — promptly, with
    the health probe answering throughout."""
    argument = "a" * NEAR_LIMIT
    first = pb.ExecuteRequest(
        workspace_id=workspace.id, argv=["sh", "-c", 'printf %s "$1" | wc -c', "sh", argument]
    )
    with HealthProbe(executor.target) as probe:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.Execute(iter([first]), timeout=120))
        took = time.monotonic() - started
    print(f"16 MiB argument: {refused.value.code().name} in {took:.1f}s; health {probe.summary()}")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    assert refused.value.details().startswith("argv[4]: "), refused.value.details()
    assert not probe.failures, probe.failures
    assert took < BOUND_SECONDS, f"a 16 MiB argument took {took:.1f}s"
