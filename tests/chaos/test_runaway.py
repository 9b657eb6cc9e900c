"""Runaway commands: each is contained, reported with the right reason, the executor answers
throughout, and nothing it started is left running once its session or workspace is closed.

The executor is a separate process (module fixture), its output cap lowered to 16 MiB so that
the endless-output case is quick.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import docker
import grpc
import pytest

from executor_service.backends.docker import container_name
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.chaos.helpers import HealthProbe, Result, execute
from tests.support.executor_server import ExecutorProcess
from tests.support.service_process import rss_kib

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

CAP = 16 * 1024 * 1024


def container_processes(workspace_id: str) -> list[str]:
    """Command lines of every process in the workspace's container, as `docker top` shows them."""
    client = docker.from_env()
    try:
        top = client.containers.get(container_name(workspace_id)).top(ps_args="-eo pid,args")
    finally:
        client.close()
    return [" ".join(row[1:]) for row in top.get("Processes") or []]


def wait_until_gone(workspace_id: str, needle: str, within: float = 10.0) -> list[str]:
    """Processes whose command line contains `needle`, after waiting up to `within` for none."""
    deadline = time.monotonic() + within
    while True:
        left = [p for p in container_processes(workspace_id) if needle in p]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def wait_until_running(workspace_id: str, needle: str, count: int, within: float = 10.0) -> list[str]:
    """The `count` processes whose command line contains `needle`, waiting up to `within` for them."""
    deadline = time.monotonic() + within
    while True:
        found = [p for p in container_processes(workspace_id) if needle in p]
        if len(found) == count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {count} {needle!r}: {found}"
        time.sleep(0.2)


class Interactive:
    """An Execute stream whose later requests the test sends when it wants."""

    def __init__(
        self, stub: executor_pb2_grpc.ExecutorServiceStub, first: pb.ExecuteRequest, timeout: float
    ) -> None:
        self._requests: queue.Queue[pb.ExecuteRequest | None] = queue.Queue()
        self._requests.put(first)
        self.call = stub.Execute(self._iterate(), timeout=timeout)

    def _iterate(self) -> Iterator[pb.ExecuteRequest]:
        while (request := self._requests.get()) is not None:
            yield request

    def send(self, request: pb.ExecuteRequest) -> None:
        self._requests.put(request)

    def close(self) -> None:
        self._requests.put(None)


@pytest.fixture(scope="module")
def small(stub) -> Iterator[pb.Workspace]:
    """A workspace with a 64 MiB memory limit and 64 processes, for the hogs."""
    policy = pb.IsolationPolicy(memory_bytes=64 * 1024 * 1024, pids_limit=64)
    ws = stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="runaway", policy=policy), timeout=60).workspace
    yield ws
    stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id), timeout=60)


def test_fork_bomb_is_contained_and_the_executor_answers(
    executor: ExecutorProcess, stub, small, record_property
) -> None:
    """The pids limit holds the bomb; the executor's health answers quickly while it rages; closing
    the session ends every process of it."""
    baseline = len(container_processes(small.id))
    session = stub.CreateSession(pb.CreateSessionRequest(workspace_id=small.id), timeout=30).session
    with HealthProbe(executor.target) as probe:
        result = execute(stub, small.id, "b(){ b | b & }; b", session_id=session.id, command_timeout=5)
        assert result.final.end_reason != pb.END_REASON_UNSPECIFIED, result
        samples = []
        for _ in range(10):
            samples.append(len(container_processes(small.id)))
            time.sleep(0.25)
        raging = max(samples)
    print(f"fork bomb: {raging} processes (pids limit 64); health during it: {probe.summary()}; {result!r}")
    record_property("fork_bomb_health", probe.summary())
    # The pids limit counts every process of the container: 64.
    assert baseline + 10 <= raging <= 64, f"{samples}: the bomb did not run, or the pids limit did not hold"
    assert not probe.failures, probe.failures
    assert probe.latencies and max(probe.latencies) < 2.0, probe.summary()
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id), timeout=30)
    deadline = time.monotonic() + 15
    while len(container_processes(small.id)) > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(container_processes(small.id)) <= baseline, container_processes(small.id)
    assert execute(stub, small.id, "echo alive").text == "alive\n"


def test_memory_hog_is_reported_out_of_memory(stub, small) -> None:
    result = execute(stub, small.id, "dd if=/dev/zero of=/dev/null bs=256M count=1", command_timeout=30)
    assert result.final.end_reason == pb.END_REASON_OUT_OF_MEMORY, result
    assert "memory" in result.final.message.lower(), result
    assert execute(stub, small.id, "echo alive").text == "alive\n"


def test_endless_output_is_truncated_at_the_cap_with_bounded_memory(
    executor: ExecutorProcess, stub, workspace
) -> None:
    """`yes` for 10 s: the client gets at most the cap and the flag, the executor's memory stays bounded."""
    before = rss_kib(executor.proc.pid)
    peak = before
    received = 0
    final = pb.ExecuteResponse()
    first = pb.ExecuteRequest(workspace_id=workspace.id, script="yes firebox-output-flood")
    first.timeout.FromSeconds(10)
    for response in stub.Execute(iter([first]), timeout=60):
        received += len(response.stdout_data) + len(response.stderr_data)
        peak = max(peak, rss_kib(executor.proc.pid))
        final = response
    peak = max(peak, rss_kib(executor.proc.pid))
    print(
        f"endless output: received {received} bytes, RSS {before} KiB -> peak {peak} KiB; {final.message!r}"
    )
    assert final.output_truncated, final
    assert CAP - 1024 * 1024 <= received <= CAP, received
    assert final.end_reason == pb.END_REASON_TIMED_OUT, final
    assert peak - before < 96 * 1024, f"executor RSS grew by {peak - before} KiB"


def test_interrupt_escalates_to_kill_for_a_process_ignoring_sigint(stub, workspace) -> None:
    first = pb.ExecuteRequest(
        workspace_id=workspace.id, script="trap '' INT; echo ready; while :; do sleep 1; done"
    )
    first.timeout.FromSeconds(60)
    call = Interactive(stub, first, timeout=60)
    responses: list[pb.ExecuteResponse] = []
    stopped_at = 0.0
    for response in call.call:
        responses.append(response)
        if b"ready" in response.stdout_data and not stopped_at:
            call.send(pb.ExecuteRequest(stop=pb.STOP_SIGNAL_INTERRUPT))
            stopped_at = time.monotonic()
    took = time.monotonic() - stopped_at
    call.close()
    result = Result(responses)
    assert stopped_at, result
    assert result.final.end_reason == pb.END_REASON_STOPPED, result
    assert took < 10, f"the stop took {took:.1f}s"
    assert not wait_until_gone(workspace.id, "sleep 1"), container_processes(workspace.id)


def test_background_daemons_die_with_their_session(stub, workspace) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace.id), timeout=30).session
    script = "setsid sleep 1001 & (sleep 1002 &) ; sh -c 'sleep 1003 &' ; echo started"
    result = execute(stub, workspace.id, script, session_id=session.id)
    assert result.text.strip() == "started", result
    wait_until_running(workspace.id, "sleep 100", 3)
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id), timeout=30)
    assert not wait_until_gone(workspace.id, "sleep 100"), container_processes(workspace.id)


def test_background_daemons_die_when_the_workspace_stops(stub) -> None:
    ws = stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="daemons"), timeout=60).workspace
    try:
        session = stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id), timeout=30).session
        result = execute(
            stub, ws.id, "setsid sleep 1004 & (setsid sleep 1005 &); echo started", session_id=session.id
        )
        assert result.text.strip() == "started", result
        # Daemons a session started run on while the session and the workspace do ...
        survivors = wait_until_running(ws.id, "sleep 100", 2)
        stub.StopWorkspace(pb.StopWorkspaceRequest(workspace_id=ws.id), timeout=60)
        stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=ws.id), timeout=60)
        # ... but not past a stop.
        assert not [p for p in container_processes(ws.id) if "sleep 100" in p], survivors
    finally:
        stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id), timeout=60)
    client = docker.from_env()
    try:
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(container_name(ws.id))
    finally:
        client.close()


def test_closed_stdout_still_ends_with_the_exit_status(stub, workspace) -> None:
    """Closing stdout and stderr is not the end: the exit status comes when the process exits."""
    started = time.monotonic()
    result = execute(stub, workspace.id, "echo before; exec >&- 2>&-; sleep 2; exit 7", command_timeout=20)
    took = time.monotonic() - started
    assert result.text == "before\n", result
    assert result.final.end_reason == pb.END_REASON_EXITED and result.final.exit_code.value == 7, result
    assert 1.5 < took < 15, took


def test_closed_stdout_past_the_timeout_is_killed(stub, workspace) -> None:
    """A process that closed its output and runs on does not hang the call past its timeout."""
    started = time.monotonic()
    result = execute(stub, workspace.id, "exec >&- 2>&-; sleep 1000", command_timeout=3)
    took = time.monotonic() - started
    assert result.final.end_reason == pb.END_REASON_TIMED_OUT, result
    assert took < 13, took
    assert not wait_until_gone(workspace.id, "sleep 1000"), container_processes(workspace.id)


def test_closed_stdout_in_a_session_shell_does_not_hang(stub, workspace) -> None:
    """In a session, the command closing the shell's own output must not wedge the call."""
    session = stub.CreateSession(pb.CreateSessionRequest(workspace_id=workspace.id), timeout=30).session
    try:
        started = time.monotonic()
        try:
            result = execute(
                stub, workspace.id, "exec >&- 2>&-; sleep 1", session_id=session.id, command_timeout=5
            )
            ending = pb.EndReason.Name(result.final.end_reason)
        except grpc.RpcError as exc:
            assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), exc.details()
            ending = exc.code().name
        took = time.monotonic() - started
        # With the shell's own output closed it cannot report the command's end: the command's
        # timeout ends the call, as it bounds any command.
        assert ending == "END_REASON_TIMED_OUT", ending
        assert took < 15, f"took {took:.1f}s ({ending})"
    finally:
        try:
            stub.CloseSession(pb.CloseSessionRequest(session_id=session.id), timeout=30)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
    assert execute(stub, workspace.id, "echo alive").text == "alive\n"
