"""`firebox-agent migrate`: a SQLite store copied into PostgreSQL with nothing lost."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from agent_service.stores import open_store
from firebox.agent.v1 import agent_pb2
from tests.support.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[3]


def _migrate(source: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_service", "migrate", "--from", source, "--to", target],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


async def _fill(url: str, sessions: int, per_session: int) -> None:
    store = await open_store(url)
    for s in range(sessions):
        session = agent_pb2.Session(id=f"ses-{s}", title=f"title {s}")
        session.create_time.FromNanoseconds(1000 + s)
        session.usage.total_tokens = s
        await store.create_session(session)
        for m in range(per_session):
            await store.put_message(session.id, agent_pb2.Message(id=f"m-{s}-{m}", content=f"{s}/{m}"))
        run = agent_pb2.Run(id=f"run-{s}", session_id=session.id, status=agent_pb2.RUN_STATUS_COMPLETED)
        run.create_time.FromNanoseconds(2000 + s)
        await store.put_run(run)
        events = []
        for i in range(1, per_session + 1):
            event = agent_pb2.RunEvent(index=i, run_id=run.id)
            event.text_delta.text = f"{s}:{i}"
            events.append(event)
        await store.append_events(run.id, events)
    await store.put_workspace_owner("ws-1", "inst", "10.0.0.1:50051")
    # A message updated after later ones were written keeps its place: order is by seq.
    await store.put_message("ses-0", agent_pb2.Message(id="m-0-0", content="edited"))
    await store.close()


async def _snapshot(url: str) -> dict[str, object]:
    store = await open_store(url)
    token, seen = "", []
    while True:
        page, token = await store.list_sessions(7, token)
        seen += page
        if not token:
            break
    snapshot: dict[str, object] = {"sessions": [s.SerializeToString() for s in seen]}
    for session in seen:
        snapshot[f"messages {session.id}"] = [
            m.SerializeToString() for m in await store.list_messages(session.id)
        ]
        runs, _ = await store.list_runs(session.id, 100, "")
        snapshot[f"runs {session.id}"] = [r.SerializeToString() for r in runs]
        for run in runs:
            snapshot[f"events {run.id}"] = [
                e.SerializeToString() for e in await store.list_events(run.id, 0, 10_000)
            ]
    snapshot["owner"] = await store.get_workspace_owner("ws-1")
    await store.close()
    return snapshot


async def test_migrate_copies_sqlite_into_postgresql_with_nothing_lost(
    tmp_path: Path, postgres_server: PostgresServer
):
    source = f"sqlite://{tmp_path / 'agent.db'}"
    target = postgres_server.create_database()
    # More rows than one copy page (500) in messages and events.
    await _fill(source, sessions=12, per_session=60)
    done = await asyncio.to_thread(_migrate, source, target)
    assert done.returncode == 0, done.stderr
    assert "720 messages" in done.stdout and "720 events" in done.stdout
    assert await _snapshot(target) == await _snapshot(source)
    # Messages added after the copy go after the copied ones (the sequence was moved on).
    store = await open_store(target)
    await store.put_message("ses-0", agent_pb2.Message(id="new"))
    assert [m.id for m in await store.list_messages("ses-0")][-1] == "new"
    await store.close()

    # A second copy into the now non-empty database is refused, and changes nothing.
    again = await asyncio.to_thread(_migrate, source, target)
    assert again.returncode == 1 and "empty database" in again.stderr
