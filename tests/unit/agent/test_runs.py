"""The run manager: event indices, replay and follow, one active run per session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent_service.runs import ConflictPolicy, LiveRun, RunManager
from agent_service.store import SqliteStore
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import Aborted, FailedPrecondition, Unavailable


async def _store(tmp_path: Path) -> SqliteStore:
    store = await SqliteStore.open(tmp_path / "a.db")
    session = agent_pb2.Session(id="s")
    session.create_time.GetCurrentTime()
    await store.create_session(session)
    return store


def _body(deltas: int, pause: float = 0.0, gate: asyncio.Event | None = None):
    async def body(live: LiveRun) -> bool:
        live.emit(run_started=agent_pb2.RunStarted(session_id=live.session_id))
        for n in range(deltas):
            if gate is not None:
                await gate.wait()
            if pause:
                await asyncio.sleep(pause)
            live.emit(text_delta=agent_pb2.TextDelta(text=f"{live.content}{n}"))
        return False

    return body


async def test_followers_joining_at_any_moment_see_every_event_once_in_order(tmp_path: Path):
    store = await _store(tmp_path)
    manager = RunManager(store, _body(30, pause=0.002), retention_seconds=60)
    live = manager.submit("s", "x", ConflictPolicy.REJECT)

    async def join_later(delay: float, after: int) -> list[agent_pb2.RunEvent]:
        await asyncio.sleep(delay)
        return [e async for e in manager.follow(live.id, after)]

    results = await asyncio.gather(*(join_later(d / 100, a) for d in range(0, 10) for a in (0, 2, 7)))
    full = live.events
    assert [e.index for e in full] == list(range(1, 33))
    assert full[-1].HasField("run_completed")
    for index, result in enumerate(results):
        after = (0, 2, 7)[index % 3]
        assert result == full[after:]
    await store.close()


async def test_reject_lets_exactly_one_of_many_concurrent_submissions_run(tmp_path: Path):
    store = await _store(tmp_path)
    gate = asyncio.Event()
    manager = RunManager(store, _body(1, gate=gate), retention_seconds=60)

    async def submit(n: int):
        await asyncio.sleep(0)
        try:
            return manager.submit("s", f"m{n}", ConflictPolicy.REJECT)
        except Aborted as exc:
            return exc

    outcomes = await asyncio.gather(*(submit(n) for n in range(20)))
    runs = [o for o in outcomes if isinstance(o, LiveRun)]
    refusals = [o for o in outcomes if isinstance(o, Aborted)]
    assert len(runs) == 1 and len(refusals) == 19
    assert all(runs[0].id in r.message for r in refusals)
    gate.set()
    assert runs[0].task is not None
    await runs[0].task
    await store.close()


async def test_enqueued_runs_start_in_order_after_the_active_one(tmp_path: Path):
    store = await _store(tmp_path)
    order: list[str] = []

    async def body(live: LiveRun) -> bool:
        order.append(live.content)
        await asyncio.sleep(0.01)
        return False

    manager = RunManager(store, body, retention_seconds=60)
    runs = [manager.submit("s", f"m{n}", ConflictPolicy.ENQUEUE) for n in range(4)]
    assert runs[1].run.status == agent_pb2.RUN_STATUS_QUEUED
    for live in runs:
        await asyncio.wait_for(_finished(live), 5)
    assert order == ["m0", "m1", "m2", "m3"]
    assert manager.active_run_id("s") == ""
    await store.close()


async def _finished(live: LiveRun) -> None:
    async for _ in live.follow(0):
        pass


async def test_failure_in_the_body_ends_the_run_failed_with_its_code(tmp_path: Path):
    store = await _store(tmp_path)

    async def body(live: LiveRun) -> bool:
        raise Unavailable("provider down")

    manager = RunManager(store, body, retention_seconds=60)
    live = manager.submit("s", "x", ConflictPolicy.REJECT)
    await _finished(live)
    assert live.events[-1].run_failed.code == "UNAVAILABLE"
    stored = await store.get_run(live.id)
    assert stored is not None and stored.status == agent_pb2.RUN_STATUS_FAILED
    await store.close()


async def test_events_are_forgotten_after_the_retention(tmp_path: Path):
    store = await _store(tmp_path)
    manager = RunManager(store, _body(1), retention_seconds=0.05)
    live = manager.submit("s", "x", ConflictPolicy.REJECT)
    await _finished(live)
    await asyncio.sleep(0.2)
    with pytest.raises(FailedPrecondition, match="no longer kept"):
        async for _ in manager.follow(live.id, 0):
            pass
    await store.close()


async def test_cancel_is_idempotent_and_ends_the_run_cancelled(tmp_path: Path):
    store = await _store(tmp_path)
    gate = asyncio.Event()
    manager = RunManager(store, _body(1, gate=gate), retention_seconds=60)
    live = manager.submit("s", "x", ConflictPolicy.REJECT)
    await asyncio.sleep(0.01)
    manager.cancel(live.id)
    manager.cancel(live.id)
    await _finished(live)
    manager.cancel(live.id)
    kinds = [e.WhichOneof("event") for e in live.events]
    assert kinds == ["run_started", "run_cancelled"]
    assert live.run.status == agent_pb2.RUN_STATUS_CANCELLED
    await store.close()


async def test_the_queue_behind_an_active_run_is_bounded(tmp_path: Path):
    from agent_service.runs import MAX_WAITING_RUNS
    from firebox.common.errors import ResourceExhausted

    store = await _store(tmp_path)
    gate = asyncio.Event()
    manager = RunManager(store, _body(1, gate=gate), retention_seconds=60)
    runs = [manager.submit("s", "x", ConflictPolicy.ENQUEUE) for _ in range(MAX_WAITING_RUNS + 1)]
    with pytest.raises(ResourceExhausted, match="waiting"):
        manager.submit("s", "x", ConflictPolicy.ENQUEUE)
    gate.set()
    for live in runs:
        await asyncio.wait_for(_finished(live), 5)
    await store.close()
