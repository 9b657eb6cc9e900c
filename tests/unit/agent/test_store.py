"""The SQLite store: WAL, schema version, paging, and what a restart finds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent_service.store import SCHEMA_VERSION, SqliteStore
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import Aborted, InvalidArgument


def _session(n: int) -> agent_pb2.Session:
    session = agent_pb2.Session(id=f"ses-{n:03d}", title=f"s{n}")
    session.create_time.FromNanoseconds(1_000_000_000 + n)
    return session


async def test_database_is_in_wal_mode_with_the_schema_version(tmp_path: Path):
    store = await SqliteStore.open(tmp_path / "a.db")
    await store.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_newer_schema_is_refused_rather_than_damaged(tmp_path: Path):
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        await SqliteStore.open(tmp_path / "a.db")


async def test_sessions_page_newest_first_without_gaps_or_repeats(tmp_path: Path):
    store = await SqliteStore.open(tmp_path / "a.db")
    for n in range(7):
        await store.create_session(_session(n))
    seen, token = [], ""
    while True:
        page, token = await store.list_sessions(3, token)
        seen += [s.id for s in page]
        if not token:
            break
    assert seen == [f"ses-{n:03d}" for n in reversed(range(7))]
    with pytest.raises(InvalidArgument):
        await store.list_sessions(3, "garbage!")
    await store.close()


async def test_messages_keep_their_place_when_updated(tmp_path: Path):
    store = await SqliteStore.open(tmp_path / "a.db")
    await store.create_session(_session(1))
    first = agent_pb2.Message(
        id="m1", role=agent_pb2.ROLE_ASSISTANT, status=agent_pb2.MESSAGE_STATUS_STREAMING
    )
    await store.put_message("ses-001", first)
    await store.put_message("ses-001", agent_pb2.Message(id="m2", role=agent_pb2.ROLE_TOOL, content="r"))
    first.content, first.status = "done", agent_pb2.MESSAGE_STATUS_COMPLETE
    await store.put_message("ses-001", first)
    messages = await store.list_messages("ses-001")
    assert [(m.id, m.content) for m in messages] == [("m1", "done"), ("m2", "r")]
    session = await store.get_session("ses-001")
    assert session is not None and session.message_count == 2
    await store.close()


async def test_reopening_marks_unfinished_runs_and_streaming_messages_interrupted(tmp_path: Path):
    store = await SqliteStore.open(tmp_path / "a.db")
    await store.create_session(_session(1))
    for run_id, status in (
        ("r-live", agent_pb2.RUN_STATUS_RUNNING),
        ("r-done", agent_pb2.RUN_STATUS_COMPLETED),
    ):
        run = agent_pb2.Run(id=run_id, session_id="ses-001", status=status)
        await store.put_run(run)
    await store.put_message(
        "ses-001", agent_pb2.Message(id="m1", content="par", status=agent_pb2.MESSAGE_STATUS_STREAMING)
    )
    await store.close()

    reopened = await SqliteStore.open(tmp_path / "a.db")
    assert await reopened.interrupt_unfinished(5) == ["r-live"]
    live = await reopened.get_run("r-live")
    done = await reopened.get_run("r-done")
    assert live is not None and live.status == agent_pb2.RUN_STATUS_INTERRUPTED
    assert done is not None and done.status == agent_pb2.RUN_STATUS_COMPLETED
    messages = await reopened.list_messages("ses-001")
    assert [(m.content, m.status) for m in messages] == [("par", agent_pb2.MESSAGE_STATUS_INTERRUPTED)]
    await reopened.close()


async def test_usage_adds_up_atomically(tmp_path: Path):
    import asyncio

    store = await SqliteStore.open(tmp_path / "a.db")
    await store.create_session(_session(1))
    await asyncio.gather(
        *(store.add_usage("ses-001", agent_pb2.Usage(input_tokens=1, total_tokens=2)) for _ in range(50))
    )
    session = await store.get_session("ses-001")
    assert session is not None and (session.usage.input_tokens, session.usage.total_tokens) == (50, 100)
    await store.close()


async def test_deleting_a_session_deletes_its_messages_and_runs(tmp_path: Path):
    store = await SqliteStore.open(tmp_path / "a.db")
    await store.create_session(_session(1))
    await store.put_message("ses-001", agent_pb2.Message(id="m1"))
    await store.put_run(agent_pb2.Run(id="r1", session_id="ses-001"))
    assert await store.delete_session("ses-001")
    assert not await store.delete_session("ses-001")
    assert await store.list_messages("ses-001") == []
    assert await store.get_run("r1") is None
    await store.close()


async def test_clearing_a_conversation_keeps_the_session_and_refuses_while_a_run_is_recorded_running(
    tmp_path: Path,
):
    store = await SqliteStore.open(tmp_path / "a.db")
    session = _session(1)
    session.settings.model = "m"
    session.usage.total_tokens = 42
    session.context_tokens = 900
    await store.create_session(session)
    other = _session(2)
    await store.create_session(other)
    for n in range(3):
        await store.put_message("ses-001", agent_pb2.Message(id=f"m{n}"))
    await store.put_message("ses-002", agent_pb2.Message(id="kept"))
    await store.put_run(agent_pb2.Run(id="r1", session_id="ses-001", status=agent_pb2.RUN_STATUS_RUNNING))
    await store.put_run(agent_pb2.Run(id="r2", session_id="ses-001", status=agent_pb2.RUN_STATUS_QUEUED))

    with pytest.raises(Aborted, match="r1"):
        await store.clear_conversation("ses-001", 5)
    assert len(await store.list_messages("ses-001")) == 3  # nothing half-done

    await store.put_run(agent_pb2.Run(id="r1", session_id="ses-001", status=agent_pb2.RUN_STATUS_CANCELLED))
    assert await store.clear_conversation("ses-001", 5_000_000_000) == (3, 1)
    cleared = await store.get_session("ses-001")
    assert cleared is not None and cleared.message_count == 0
    assert (cleared.settings.model, cleared.usage.total_tokens, cleared.context_tokens) == ("m", 42, 0)
    assert cleared.update_time.seconds == 5
    assert await store.get_run("r1") is None
    assert await store.get_run("r2") is not None  # a queued run starts later, in the cleared session
    assert [m.id for m in await store.list_messages("ses-002")] == ["kept"]
    assert await store.clear_conversation("ses-404", 5) is None
    await store.close()
