"""ForkSession and RewindSession bring the files back with the conversation: the agent snapshots
a session's workspace as each user turn begins (a real executor, Docker backend), and restores
the snapshot of the turn the history is cut before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from agent_service.server import Agent
from firebox.agent.v1 import agent_pb2
from firebox.executor.v1 import executor_pb2
from tests.support.agent_server import agent_stub, collect, executor_stub, new_session, running_agent
from tests.support.cli import firebox
from tests.support.executor_client import execute
from tests.support.executor_server import delete_workspaces, running_executor
from tests.support.fake_provider import FakeProvider, shell_reply, text_reply

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with running_executor(tmp_path_factory.mktemp("executor"), backend="docker") as target:
        try:
            yield target
        finally:
            await asyncio.to_thread(delete_workspaces, target)


@pytest.fixture
async def agent(tmp_path: Path, fake: FakeProvider, executor: str) -> AsyncIterator[Agent]:
    async with running_agent(tmp_path / "agent", fake=fake, executor=executor, turn_snapshots=2) as agent:
        yield agent


async def _turn(stub, fake: FakeProvider, session_id: str, text: str, script: str) -> agent_pb2.Message:
    """One user turn whose model runs `script` in the shell; the user message."""
    fake.script(shell_reply(script, call_id=f"call-{text}"), text_reply("done"))
    events = await collect(
        stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session_id, content=text))
    )
    assert events[-1].HasField("run_completed"), events[-1]
    messages = (
        await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session_id, include_messages=True))
    ).messages
    return next(m for m in messages if m.role == agent_pb2.ROLE_USER and m.content == text)


async def _file(executor: str, workspace_id: str) -> bytes:
    out = await execute(executor_stub(executor), workspace_id, "cat /workspace/notes.txt 2>&1 || true")
    return out.stdout


async def _feedback(tmp_path: Path, kind: str) -> list[dict]:
    """The agent's feedback records of `kind`, once the training log's writer has written them
    (it writes in the background; bounded wait)."""
    for _ in range(100):
        records = [
            json.loads(line)["event"]
            for p in (tmp_path / "agent" / "logs").glob("feedback-*.jsonl")
            for line in p.read_text().splitlines()
        ]
        found = [r for r in records if r["kind"] == kind]
        if found:
            return found
        await asyncio.sleep(0.1)
    return []


async def _three_turns(stub, fake: FakeProvider, session_id: str) -> list[agent_pb2.Message]:
    return [
        await _turn(stub, fake, session_id, "one", "echo v1 > notes.txt"),
        await _turn(stub, fake, session_id, "two", "echo v2 > notes.txt"),
        await _turn(stub, fake, session_id, "three", "echo v3 > notes.txt"),
    ]


async def test_a_fork_before_a_turn_has_the_history_and_the_files_of_that_moment(
    agent, fake, executor, tmp_path
):
    stub = agent_stub(agent)
    session = await new_session(stub)
    one, two, three = await _three_turns(stub, fake, session.id)
    # The first turn began with no workspace (it made it): nothing to snapshot then.
    assert not one.workspace_snapshot_id and two.workspace_snapshot_id and three.workspace_snapshot_id
    forked = await stub.ForkSession(agent_pb2.ForkSessionRequest(session_id=session.id, message_id=three.id))
    fork = forked.session
    assert fork.id != session.id and fork.workspace_id and fork.workspace_id != session.workspace_id
    # The history up to the turn: two user turns, each with its tool call, result and answer.
    messages = (
        await stub.GetSession(agent_pb2.GetSessionRequest(session_id=fork.id, include_messages=True))
    ).messages
    assert [m.content for m in messages if m.role == agent_pb2.ROLE_USER] == ["one", "two"]
    assert forked.message_count == len(messages) == 8
    # The files as they were before turn three: v2; the original still has v3.
    assert await _file(executor, fork.workspace_id) == b"v2\n"
    original = (await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id))).session
    assert await _file(executor, original.workspace_id) == b"v3\n"
    # The fork goes on by itself: its next turn runs in its own workspace.
    await _turn(stub, fake, fork.id, "four", "echo forked >> notes.txt")
    assert await _file(executor, fork.workspace_id) == b"v2\nforked\n"
    assert await _file(executor, original.workspace_id) == b"v3\n"
    # A fork before the first turn starts with no workspace at all.
    empty = (
        await stub.ForkSession(agent_pb2.ForkSessionRequest(session_id=session.id, message_id=one.id))
    ).session
    assert not empty.workspace_id and empty.message_count == 0
    forks = await _feedback(tmp_path, "FEEDBACK_KIND_SESSION_FORKED")
    assert forks[0]["sessionId"] == fork.id and forks[0]["parentSessionId"] == session.id
    assert forks[0]["messageId"] == three.id


async def test_a_rewind_restores_the_files_and_cuts_the_history_in_place(agent, fake, executor, tmp_path):
    stub = agent_stub(agent)
    session = await new_session(stub)
    _one, two, _three = await _three_turns(stub, fake, session.id)
    before = (await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id))).session
    rewound = await stub.RewindSession(
        agent_pb2.RewindSessionRequest(session_id=session.id, message_id=two.id)
    )
    assert rewound.removed_message_count == 8
    after = rewound.session
    assert after.id == session.id and after.workspace_id != before.workspace_id
    assert await _file(executor, after.workspace_id) == b"v1\n"
    messages = (
        await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    ).messages
    assert [m.content for m in messages if m.role == agent_pb2.ROLE_USER] == ["one"]
    # The workspace it replaced is gone, and so are the removed turns' snapshots.
    ex = executor_stub(executor)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await ex.GetWorkspace(executor_pb2.GetWorkspaceRequest(workspace_id=before.workspace_id))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    snapshots = (await ex.ListSnapshots(executor_pb2.ListSnapshotsRequest())).snapshots
    assert not [s for s in snapshots if s.name in (f"turn-{two.id}", f"turn-{_three.id}")]
    # The conversation goes on from there, in the restored files.
    await _turn(stub, fake, session.id, "two again", "echo again >> notes.txt")
    assert await _file(executor, after.workspace_id) == b"v1\nagain\n"
    rewinds = await _feedback(tmp_path, "FEEDBACK_KIND_SESSION_REWOUND")
    assert [r["messageId"] for r in rewinds] == [two.id]


async def test_turn_snapshots_are_bounded_and_a_dropped_one_is_refused_precisely(agent, fake, executor):
    stub = agent_stub(agent)
    session = await new_session(stub)
    turns = [*await _three_turns(stub, fake, session.id)]
    turns.append(await _turn(stub, fake, session.id, "four", "echo v4 > notes.txt"))
    messages = (
        await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    ).messages
    kept = [m.id for m in messages if m.workspace_snapshot_id]
    # --turn-snapshots 2: the newest two turns' snapshots are kept, the older one was deleted.
    assert kept == [turns[2].id, turns[3].id]
    snapshots = (await executor_stub(executor).ListSnapshots(executor_pb2.ListSnapshotsRequest())).snapshots
    assert f"turn-{turns[1].id}" not in {s.name for s in snapshots}
    with pytest.raises(grpc.aio.AioRpcError) as dropped:
        await stub.RewindSession(
            agent_pb2.RewindSessionRequest(session_id=session.id, message_id=turns[1].id)
        )
    assert dropped.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not kept" in dropped.value.details() and "newest 2" in dropped.value.details()
    # Nothing changed by the refusal.
    after = (
        await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    ).messages
    assert len(after) == len(messages)


async def test_turn_snapshots_are_bounded_in_bytes_newest_first(tmp_path, fake, executor):
    """Each snapshot copies /workspace whole: with --turn-snapshot-max-bytes 500000, turns that
    grow the workspace by 100 kB each keep only the newest snapshots that fit together."""
    budget = 500_000
    async with running_agent(
        tmp_path / "agent", fake=fake, executor=executor, turn_snapshot_max_bytes=budget
    ) as bounded:
        stub = agent_stub(bounded)
        session = await new_session(stub)
        for n in range(5):
            await _turn(stub, fake, session.id, f"turn {n}", f"head -c 100000 /dev/urandom > f{n}")
        messages = (
            await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
        ).messages
    users = [m for m in messages if m.role == agent_pb2.ROLE_USER]
    kept = [m for m in users if m.workspace_snapshot_id]
    # Turn n's snapshot holds the n files of the turns before it (turn 0 had no workspace yet).
    sizes = [m.workspace_snapshot_bytes for m in kept]
    assert all(size >= 100_000 * users.index(m) for m, size in zip(kept, sizes, strict=True))
    # The newest ones, one after another, within the budget...
    assert kept == users[len(users) - len(kept) :] and 0 < sum(sizes) <= budget
    # ...and the one before them would not have fitted beside them.
    before = users[len(users) - len(kept) - 1]
    assert sum(sizes) + 100_000 * users.index(before) > budget


async def test_bad_fork_and_rewind_requests_get_precise_statuses(agent, fake, executor):
    stub = agent_stub(agent)
    session = await new_session(stub)
    await _turn(stub, fake, session.id, "one", "true")
    messages = (
        await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    ).messages
    answer = next(m for m in messages if m.role == agent_pb2.ROLE_ASSISTANT)
    cases = [
        (agent_pb2.ForkSessionRequest(session_id=session.id), grpc.StatusCode.INVALID_ARGUMENT, "message_id"),
        (
            agent_pb2.ForkSessionRequest(session_id="ses-nope", message_id="m"),
            grpc.StatusCode.NOT_FOUND,
            "ses-nope",
        ),
        (
            agent_pb2.ForkSessionRequest(session_id=session.id, message_id="msg-nope"),
            grpc.StatusCode.NOT_FOUND,
            "msg-nope",
        ),
        (
            agent_pb2.ForkSessionRequest(session_id=session.id, message_id=answer.id),
            grpc.StatusCode.INVALID_ARGUMENT,
            "user message",
        ),
    ]
    for request, code, needle in cases:
        for method, rewind_type in (
            (stub.ForkSession, None),
            (stub.RewindSession, agent_pb2.RewindSessionRequest),
        ):
            sent = (
                request
                if rewind_type is None
                else rewind_type(session_id=request.session_id, message_id=request.message_id)
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await method(sent)
            assert info.value.code() == code and needle in info.value.details(), info.value.details()


async def test_the_cli_forks_and_rewinds(agent, fake, executor):
    stub = agent_stub(agent)
    session = await new_session(stub)
    _one, two, _three = await _three_turns(stub, fake, session.id)
    forked = await firebox("sessions", "fork", session.id, two.id, agent=agent.target)
    assert forked.code == 0, forked.stderr
    fork_id = forked.text.strip().splitlines()[-1]
    fork = (await stub.GetSession(agent_pb2.GetSessionRequest(session_id=fork_id))).session
    assert await _file(executor, fork.workspace_id) == b"v1\n"
    rewound = await firebox("sessions", "rewind", session.id, two.id, "--json", agent=agent.target)
    assert rewound.code == 0, rewound.stderr
    assert json.loads(rewound.stdout)["removedMessageCount"] == "8"
    # The same message again: it is gone now, said in one line.
    again = await firebox("sessions", "rewind", session.id, two.id, agent=agent.target)
    assert again.code != 0 and two.id in again.error_line()
