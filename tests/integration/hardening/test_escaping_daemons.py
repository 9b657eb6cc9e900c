"""Daemons do not outlive their session or execution (issue 15, item 4). Processes that leave the
shell's process group and clear their environment are still found — by the cgroup every exec'd
shell gets (executor_service/containment.py) — and killed when the session closes or, without a
session, when the command ends."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor

# Each starts `sleep N` (N unique) so that what is left can be told apart, then returns at once.
PATTERNS = {
    "env -i setsid": "env -i setsid sleep {n} </dev/null >/dev/null 2>&1 &",
    "double fork": "( sh -c 'sleep {n} </dev/null >/dev/null 2>&1 &' & )",
    # The busybox image has no nohup: the same thing by hand where it is missing (ignore HUP, exec).
    "nohup": "if command -v nohup >/dev/null; then nohup sleep {n} </dev/null >/dev/null 2>&1 & "
    "else sh -c 'trap \"\" HUP; exec sleep {n}' </dev/null >/dev/null 2>&1 & fi",
    # ash has no `disown` builtin: the job is started all the same and the error ignored.
    "disown": "sleep {n} </dev/null >/dev/null 2>&1 & disown 2>/dev/null; true",
    "setsid double fork, env -i": "env -i setsid sh -c '(sleep {n} &) ; exit 0' </dev/null >/dev/null 2>&1",
}


def _sleeps(numbers: set[str]) -> set[str]:
    """Which of `sleep N` (N in `numbers`) run anywhere on this host: container and sandbox
    processes are host processes too."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 2 and argv[0].endswith(b"sleep") and argv[1].decode() in numbers:
            found.add(argv[1].decode())
    return found


async def _wait_gone(numbers: set[str], within: float = 10.0) -> set[str]:
    deadline = time.monotonic() + within
    while True:
        left = await asyncio.to_thread(_sleeps, numbers)
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.2)


@pytest.fixture(
    params=[pytest.param("docker", marks=pytest.mark.docker), pytest.param("bwrap", marks=pytest.mark.bwrap)]
)
async def stub(request: pytest.FixtureRequest, tmp_path: Path):
    async with (
        running_executor(tmp_path, backend=request.param) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        yield executor_pb2_grpc.ExecutorServiceStub(channel)


async def test_daemons_started_in_a_session_are_gone_once_it_is_closed(stub) -> None:
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    session = (await stub.CreateSession(pb.CreateSessionRequest(workspace_id=ws.id))).session
    expected = set()
    for index, script in enumerate(PATTERNS.values()):
        n = str(48201 + index)
        expected.add(n)
        result = await execute(stub, ws.id, script=script.format(n=n), session_id=session.id)
        assert result.exit_code == 0, result
    await asyncio.sleep(0.5)
    # They really escaped the session's process group and ran on after their commands.
    assert await asyncio.to_thread(_sleeps, expected) == expected
    await stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    assert await _wait_gone(expected) == set()
    # The workspace itself is fine.
    assert (await execute(stub, ws.id, script="echo alive")).stdout == b"alive\n"


async def test_daemons_started_without_a_session_are_gone_once_the_command_ends(stub) -> None:
    ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest())).workspace
    for index, (name, script) in enumerate(PATTERNS.items()):
        n = str(48301 + index)
        result = await execute(stub, ws.id, script=script.format(n=n) + "\nsleep 0.3")
        assert result.exit_code == 0, (name, result)
        assert await _wait_gone({n}) == set(), name
