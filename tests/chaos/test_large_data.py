"""Requests near the 16 MiB message limit that are valid: a 16 MiB stdin message and a 16 MiB
argument. They must arrive whole, within a generous bound, with the executor answering meanwhile.
The figures (MB/s) are printed for docs/reliability.md."""

from __future__ import annotations

import time

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


def test_a_16_mib_argument_is_refused_by_exec_and_the_executor_keeps_answering(
    executor, stub, workspace
) -> None:
    """A single argument this long is past Linux's 128 KiB per-argument limit (MAX_ARG_STRLEN): the
    message arrives whole, the shell's exec fails with E2BIG, and the command ends as a shell reports
    that (126, "Argument list too long") — promptly, with the health probe answering throughout."""
    argument = "a" * NEAR_LIMIT
    first = pb.ExecuteRequest(
        workspace_id=workspace.id, argv=["sh", "-c", 'printf %s "$1" | wc -c', "sh", argument]
    )
    with HealthProbe(executor.target) as probe:
        started = time.monotonic()
        result = Result(list(stub.Execute(iter([first]), timeout=120)))
        took = time.monotonic() - started
    print(f"16 MiB argument: {result!r} in {took:.1f}s; health {probe.summary()}")
    assert result.final.end_reason == pb.END_REASON_EXITED and result.final.exit_code.value == 126, result
    assert b"Argument list too long" in result.stderr, result
    assert not probe.failures, probe.failures
    assert took < BOUND_SECONDS, f"a 16 MiB argument took {took:.1f}s"
