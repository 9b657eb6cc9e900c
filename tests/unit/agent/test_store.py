"""The store's contract, on both backends (SQLite and a real PostgreSQL server), and what each
backend's own migrations promise."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from agent_service.pg_store import PostgresStore
from agent_service.schema import SCHEMA_VERSION
from agent_service.store import SqliteStore, Store, redact_url
from agent_service.stores import open_store
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import Aborted, InvalidArgument
from tests.support.postgres import PostgresServer

OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database per test: a SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'a.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
def reopen(database_url: str) -> OpenStore:
    """Opens the test's database (again): as a restarted agent would."""
    return lambda: open_store(database_url)


def _session(n: int) -> agent_pb2.Session:
    session = agent_pb2.Session(id=f"ses-{n:03d}", title=f"s{n}")
    session.create_time.FromNanoseconds(1_000_000_000 + n)
    return session


def _event(run_id: str, index: int, text: str = "x") -> agent_pb2.RunEvent:
    event = agent_pb2.RunEvent(index=index, run_id=run_id)
    event.text_delta.message_id, event.text_delta.text = "m1", text
    return event


async def test_sessions_page_newest_first_without_gaps_or_repeats(reopen: OpenStore):
    store = await reopen()
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


async def test_messages_keep_their_place_when_updated(reopen: OpenStore):
    store = await reopen()
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
    assert (await store.get_message("ses-001", "m2")).content == "r"  # type: ignore[union-attr]
    assert await store.get_message("ses-001", "nope") is None
    await store.close()


async def test_rewind_replaces_a_message_and_drops_what_follows(reopen: OpenStore):
    store = await reopen()
    await store.create_session(_session(1))
    for n in range(4):
        await store.put_message("ses-001", agent_pb2.Message(id=f"m{n}", content=f"c{n}"))
    assert await store.rewind("ses-001", agent_pb2.Message(id="m1", content="edited")) == 2
    assert [(m.id, m.content) for m in await store.list_messages("ses-001")] == [
        ("m0", "c0"),
        ("m1", "edited"),
    ]
    assert await store.rewind("ses-001", agent_pb2.Message(id="gone")) == 0
    # A message put after a rewind goes at the end.
    await store.put_message("ses-001", agent_pb2.Message(id="m9"))
    assert [m.id for m in await store.list_messages("ses-001")] == ["m0", "m1", "m9"]
    await store.close()


async def test_reopening_marks_unfinished_runs_and_streaming_messages_interrupted(reopen: OpenStore):
    store = await reopen()
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

    reopened = await reopen()
    assert await reopened.interrupt_unfinished(5) == ["r-live"]
    live = await reopened.get_run("r-live")
    done = await reopened.get_run("r-done")
    assert live is not None and live.status == agent_pb2.RUN_STATUS_INTERRUPTED
    assert done is not None and done.status == agent_pb2.RUN_STATUS_COMPLETED
    messages = await reopened.list_messages("ses-001")
    assert [(m.content, m.status) for m in messages] == [("par", agent_pb2.MESSAGE_STATUS_INTERRUPTED)]
    await reopened.close()


async def test_runs_page_newest_first_per_session(reopen: OpenStore):
    store = await reopen()
    await store.create_session(_session(1))
    await store.create_session(_session(2))
    for n in range(5):
        run = agent_pb2.Run(id=f"r{n}", session_id="ses-001", status=agent_pb2.RUN_STATUS_COMPLETED)
        run.create_time.FromNanoseconds(10 + n)
        await store.put_run(run)
    await store.put_run(agent_pb2.Run(id="other", session_id="ses-002"))
    seen, token = [], ""
    while True:
        page, token = await store.list_runs("ses-001", 2, token)
        seen += [r.id for r in page]
        if not token:
            break
    assert seen == ["r4", "r3", "r2", "r1", "r0"]
    await store.close()


async def test_usage_adds_up_atomically(reopen: OpenStore):
    store = await reopen()
    await store.create_session(_session(1))
    await asyncio.gather(
        *(store.add_usage("ses-001", agent_pb2.Usage(input_tokens=1, total_tokens=2)) for _ in range(50))
    )
    session = await store.get_session("ses-001")
    assert session is not None and (session.usage.input_tokens, session.usage.total_tokens) == (50, 100)
    await store.close()


async def test_deleting_a_session_deletes_its_messages_runs_and_events(reopen: OpenStore):
    store = await reopen()
    await store.create_session(_session(1))
    await store.put_message("ses-001", agent_pb2.Message(id="m1"))
    await store.put_run(agent_pb2.Run(id="r1", session_id="ses-001"))
    await store.append_events("r1", [_event("r1", 1)])
    assert await store.delete_session("ses-001")
    assert not await store.delete_session("ses-001")
    assert await store.list_messages("ses-001") == []
    assert await store.get_run("r1") is None
    assert await store.list_events("r1", 0, 10) == []
    await store.close()


async def test_events_come_back_in_order_after_an_index_and_never_twice(reopen: OpenStore):
    store = await reopen()
    await store.append_events("r1", [_event("r1", n, f"t{n}") for n in (1, 2, 3)])
    await store.append_events("r1", [_event("r1", 4, "t4")])
    await store.append_events("r2", [_event("r2", 1)])
    assert [e.text_delta.text for e in await store.list_events("r1", 1, 10)] == ["t2", "t3", "t4"]
    assert [e.index for e in await store.list_events("r1", 0, 2)] == [1, 2]
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        await store.append_events("r1", [_event("r1", 5), _event("r1", 3)])
    # The failed batch wrote nothing, not even its first event.
    assert [e.index for e in await store.list_events("r1", 0, 10)] == [1, 2, 3, 4]
    await store.close()


async def test_workspace_owners_are_recorded_moved_and_forgotten(reopen: OpenStore):
    store = await reopen()
    assert await store.get_workspace_owner("ws") is None
    await store.put_workspace_owner("ws", "inst-a", "10.0.0.1:1")
    await store.put_workspace_owner("ws", "inst-b", "10.0.0.2:1")
    assert await store.get_workspace_owner("ws") == ("inst-b", "10.0.0.2:1")
    await store.delete_workspace_owner("ws")
    assert await store.get_workspace_owner("ws") is None
    await store.close()


# -- SQLite's own ------------------------------------------------------------------------


async def test_sqlite_database_is_in_wal_mode_with_the_schema_version(tmp_path: Path):
    store = await SqliteStore.open(tmp_path / "a.db")
    await store.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_newer_sqlite_schema_is_refused_rather_than_damaged(tmp_path: Path):
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        await SqliteStore.open(tmp_path / "a.db")


async def test_an_older_agents_sqlite_file_is_migrated_in_place_with_its_data(tmp_path: Path):
    # The schema exactly as the agent before run events (version 2) created it.
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.executescript(
        """
        CREATE TABLE sessions (id TEXT PRIMARY KEY, create_ns INTEGER NOT NULL, data BLOB NOT NULL);
        CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            status INTEGER NOT NULL, data BLOB NOT NULL);
        CREATE TABLE runs (id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions (id)
            ON DELETE CASCADE, create_ns INTEGER NOT NULL, status INTEGER NOT NULL, data BLOB NOT NULL);
        CREATE TABLE workspace_owners (workspace_id TEXT PRIMARY KEY, instance_id TEXT NOT NULL,
            address TEXT NOT NULL, update_ns INTEGER NOT NULL);
        PRAGMA user_version=2;
        """
    )
    conn.execute("INSERT INTO sessions VALUES (?, ?, ?)", ("ses-001", 1, _session(1).SerializeToString()))
    conn.execute(
        "INSERT INTO messages (id, session_id, status, data) VALUES (?, ?, ?, ?)",
        ("m1", "ses-001", 0, agent_pb2.Message(id="m1", content="kept").SerializeToString()),
    )
    conn.commit()
    conn.close()

    store = await SqliteStore.open(tmp_path / "a.db")
    assert [m.content for m in await store.list_messages("ses-001")] == ["kept"]
    await store.append_events("r1", [_event("r1", 1)])
    assert len(await store.list_events("r1", 0, 10)) == 1
    await store.close()
    assert sqlite3.connect(tmp_path / "a.db").execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- PostgreSQL's own --------------------------------------------------------------------


async def test_replicas_starting_together_apply_the_migrations_once(postgres_server: PostgresServer):
    url = postgres_server.create_database()
    # Eight replicas open the empty database at the same moment: the advisory lock lets one
    # migrate; the others wait, then find the schema current. Without it, CREATE TABLE races.
    stores = await asyncio.gather(*(PostgresStore.open(url, max_size=2) for _ in range(8)))
    assert [await s.schema_version() for s in stores] == [SCHEMA_VERSION] * 8
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM firebox_schema_version").fetchone() == (1,)
    for store in stores:
        await store.close()


async def test_a_newer_postgresql_schema_is_refused(postgres_server: PostgresServer):
    url = postgres_server.create_database()
    await (await PostgresStore.open(url)).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE firebox_schema_version SET version = version + 1")
    with pytest.raises(RuntimeError, match="newer"):
        await PostgresStore.open(url)


def test_database_urls_are_redacted_for_logs():
    assert redact_url("postgresql://u:secret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"
    assert redact_url("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"


async def test_an_unknown_database_url_is_refused():
    with pytest.raises(InvalidArgument, match="sqlite"):
        await open_store("mysql://x")


# -- between replicas ------------------------------------------------------------------------


def _running(run_id: str, session_id: str = "ses-001") -> agent_pb2.Run:
    return agent_pb2.Run(id=run_id, session_id=session_id, status=agent_pb2.RUN_STATUS_RUNNING)


async def test_only_one_run_per_session_can_be_claimed_whoever_claims(reopen: OpenStore):
    store = await reopen()
    await store.create_session(_session(1))
    # Many claims at once, as from several replicas: exactly one wins, the rest name it.
    outcomes = await asyncio.gather(
        *(store.claim_run(_running(f"r{n}"), f"owner-{n}", 2**62) for n in range(10))
    )
    winners = [f"r{n}" for n, other in enumerate(outcomes) if other == ""]
    assert len(winners) == 1
    assert all(other in ("", winners[0]) for other in outcomes)
    assert await store.running_run_id("ses-001") == winners[0]
    # Once it ends, the session can be claimed again; claiming again the same run is no conflict.
    done = _running(winners[0])
    done.status = agent_pb2.RUN_STATUS_COMPLETED
    await store.put_run(done)
    assert await store.claim_run(_running("next"), "owner-x", 2**62) == ""
    assert await store.claim_run(_running("next"), "owner-x", 2**62) == ""
    await store.close()


async def test_a_cancel_request_reaches_the_owner_when_it_renews(reopen: OpenStore):
    store = await reopen()
    await store.create_session(_session(1))
    await store.claim_run(_running("r1"), "owner-a", 100)
    assert await store.renew_leases("owner-a", 200) == {"r1": ""}
    assert await store.request_cancel("r1", "stop it")
    assert await store.renew_leases("owner-b", 200) == {}
    assert await store.renew_leases("owner-a", 300) == {"r1": "stop it"}
    assert not await store.request_cancel("nope", "x")
    await store.close()


async def test_expired_running_runs_are_taken_over_once_and_go_on_unchanged(reopen: OpenStore):
    store = await reopen()
    await store.create_session(_session(1))
    await store.create_session(_session(2))
    await store.claim_run(_running("dead", "ses-001"), "owner-a", 1_000)
    await store.claim_run(_running("alive", "ses-002"), "owner-b", 1_000)
    assert await store.append_events("dead", [_event("dead", 1), _event("dead", 2)], "owner-a")
    await store.put_message(
        "ses-001", agent_pb2.Message(id="m1", content="half", status=agent_pb2.MESSAGE_STATUS_STREAMING)
    )
    await store.renew_leases("owner-b", 5_000)
    # Two replicas look at once: the run is taken once.
    taken = await asyncio.gather(
        store.claim_expired(2_000, "owner-c", 9_000, 10), store.claim_expired(2_000, "owner-d", 9_000, 10)
    )
    claimed = taken[0] + taken[1]
    assert [r.id for r in claimed] == ["dead"]
    assert claimed[0].takeovers == 1 and claimed[0].last_event_index == 2
    taker = "owner-c" if taken[0] else "owner-d"
    # Nothing of it changed but its owner: it is still its session's running run, its streaming
    # message is for the taker to close.
    run = await store.get_run("dead")
    assert run is not None and run.status == agent_pb2.RUN_STATUS_RUNNING and run.takeovers == 1
    assert await store.running_run_id("ses-001") == "dead"
    assert (await store.list_messages("ses-001"))[0].status == agent_pb2.MESSAGE_STATUS_STREAMING
    assert await store.renew_leases(taker, 10_000) == {"dead": ""}
    assert await store.renew_leases("owner-a", 10_000) == {}
    assert await store.claim_expired(2_000, "owner-e", 9_000, 10) == []
    # The replica that lost it writes nothing more of it: no event, no outcome.
    assert not await store.append_events("dead", [_event("dead", 3, "late")], "owner-a")
    done = _running("dead")
    done.status = agent_pb2.RUN_STATUS_COMPLETED
    await store.put_run(done, only_owner="owner-a")
    assert (await store.get_run("dead")).status == agent_pb2.RUN_STATUS_RUNNING  # type: ignore[union-attr]
    # The taker goes on after index 2 and ends it.
    assert await store.append_events("dead", [_event("dead", 3, "taker")], taker)
    assert [e.text_delta.text for e in await store.list_events("dead", 0, 10)] == ["x", "x", "taker"]
    await store.put_run(done, only_owner=taker)
    assert (await store.get_run("dead")).status == agent_pb2.RUN_STATUS_COMPLETED  # type: ignore[union-attr]
    assert (await store.get_run("alive")).status == agent_pb2.RUN_STATUS_RUNNING  # type: ignore[union-attr]
    await store.close()


async def test_expired_queued_runs_end_interrupted_with_a_final_event(reopen: OpenStore):
    store = await reopen()
    await store.create_session(_session(1))
    await store.claim_run(_running("running", "ses-001"), "owner-b", 5_000)
    await store.put_message(
        "ses-001", agent_pb2.Message(id="m1", content="half", status=agent_pb2.MESSAGE_STATUS_STREAMING)
    )
    queued = agent_pb2.Run(id="queued", session_id="ses-001", status=agent_pb2.RUN_STATUS_QUEUED)
    await store.put_run(queued, "owner-a", 1_000)
    # Its message was never stored (it waited): it cannot go on, it ends.
    taken = await asyncio.gather(
        store.interrupt_expired(2_000, "gone"), store.interrupt_expired(2_000, "gone")
    )
    assert sorted(taken[0] + taken[1]) == ["queued"]
    run = await store.get_run("queued")
    assert run is not None and run.status == agent_pb2.RUN_STATUS_INTERRUPTED and run.error == "gone"
    events = await store.list_events("queued", 0, 10)
    assert [e.index for e in events] == [1] and events[-1].run_cancelled.reason == "gone"
    assert run.last_event_index == 1
    # The session's running run (another replica's, alive) and its streaming message are left be.
    assert await store.running_run_id("ses-001") == "running"
    assert (await store.list_messages("ses-001"))[0].status == agent_pb2.MESSAGE_STATUS_STREAMING
    await store.close()


async def test_approval_requests_wait_for_the_owner_and_report_its_outcome(reopen: OpenStore):
    store = await reopen()
    await store.put_approval_request("r1", "call_1", b'{"x": 1}')
    await store.put_approval_request("r1", "call_2", b"{}")
    assert await store.approval_request_outcome("r1", "call_1") == ""
    assert sorted(await store.approval_requests("r1")) == [("call_1", b'{"x": 1}'), ("call_2", b"{}")]
    await store.finish_approval_request("r1", "call_1", "")
    await store.finish_approval_request("r1", "call_2", "no approval waiting")
    assert await store.approval_request_outcome("r1", "call_1") is None
    assert await store.approval_request_outcome("r1", "call_2") == "no approval waiting"
    assert await store.approval_request_outcome("r1", "call_2") is None  # reported once
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
