"""The run manager: event indices, replay and follow, one active run per session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent_service import runs
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
    await manager.shutdown(grace=0)  # its timers must not outlive the store
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
    await manager.shutdown(grace=0)  # its timers must not outlive the store
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
    await manager.shutdown(grace=0)  # its timers must not outlive the store
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
    assert live.task is not None
    await live.task  # the outcome is stored after the run's events
    stored = await store.get_run(live.id)
    assert stored is not None and stored.status == agent_pb2.RUN_STATUS_FAILED
    await manager.shutdown(grace=0)  # its timers must not outlive the store
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
    await manager.shutdown(grace=0)  # its timers must not outlive the store
    await store.close()


async def test_after_shutdown_nothing_more_is_written_to_the_closed_store(tmp_path: Path):
    """A finished run's events are forgotten after the retention; once the manager has shut down
    (and its store is closed) that clean-up is dropped instead of failing against the store."""
    store = await _store(tmp_path)
    manager = RunManager(store, _body(1), retention_seconds=0.2)
    live = manager.submit("s", "x", ConflictPolicy.REJECT)
    await _finished(live)
    await manager.shutdown(grace=1)
    await store.close()
    deletes: list[str] = []
    store.delete_events = lambda run_id: deletes.append(run_id)  # type: ignore[method-assign,assignment,return-value]
    await asyncio.sleep(0.4)
    assert deletes == []


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
    await manager.shutdown(grace=0)  # its timers must not outlive the store
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
    await manager.shutdown(grace=0)  # its timers must not outlive the store
    await store.close()


async def test_batched_followers_joining_at_any_moment_see_every_event_once_in_order(tmp_path: Path):
    store = await _store(tmp_path)
    manager = RunManager(store, _body(40, pause=0.002), retention_seconds=60)
    live = manager.submit("s", "d", ConflictPolicy.REJECT)

    async def follow(after: int) -> list[list[agent_pb2.RunEvent]]:
        return [batch async for batch in manager.follow_batches(live.id, after)]

    readers = []
    for after in (0, 0, 2, 7):
        readers.append(asyncio.create_task(follow(after)))
        await asyncio.sleep(0.01)
    results = await asyncio.gather(*readers)
    everything = live.events
    assert [e.index for e in everything] == list(range(1, len(everything) + 1))
    for after, batches in zip((0, 0, 2, 7), results, strict=True):
        assert all(batches), "no empty batch"
        flat = [e for batch in batches for e in batch]
        assert flat == everything[after:], f"after_index={after}"
    # Whatever is there when a follower reads goes in one batch: a finished run's replay is one.
    assert await follow(0) == [everything]
    await manager.shutdown(grace=0)  # its timers must not outlive the store
    await store.close()


async def test_a_batch_is_bounded_in_events_and_bytes():
    live = LiveRun(agent_pb2.Run(id="r", session_id="s"), "hi")
    big = b"x" * (runs.MAX_BATCH_BYTES // 3)
    for n in range(runs.MAX_BATCH_EVENTS + 500):
        live.emit_delta("m", f"t{n}")
    for _ in range(7):
        live.emit(tool_output=agent_pb2.ToolOutput(tool_call_id="c", stdout_data=big))
    live.emit_delta("m", "after")
    live.finish()

    batches = [batch async for batch in live.follow_batches(0)]

    assert [e for batch in batches for e in batch] == live.events
    assert all(len(batch) <= runs.MAX_BATCH_EVENTS for batch in batches)
    for batch in batches:
        size = sum(e.ByteSize() for e in batch)
        assert size <= runs.MAX_BATCH_BYTES or len(batch) == 1
    assert len(batches[0]) == runs.MAX_BATCH_EVENTS


async def test_a_follower_cancelled_while_waiting_leaves_the_others_following():
    live = LiveRun(agent_pb2.Run(id="r", session_id="s"), "hi")
    live.emit_delta("m", "a")

    async def follow() -> list[agent_pb2.RunEvent]:
        return [e async for e in live.follow(0)]

    kept = asyncio.create_task(follow())
    dropped = asyncio.create_task(follow())
    await asyncio.sleep(0.01)  # both are waiting for the next event now
    dropped.cancel()
    await asyncio.sleep(0)
    live.emit_delta("m", "b")
    live.finish()
    events = await asyncio.wait_for(kept, 5)
    assert [e.text_delta.text for e in events] == ["a", "b"]
    assert dropped.cancelled()


def _resumable_body(deltas: int, gate: asyncio.Event | None = None):
    """A body that, given a run taken over, says so and ends; else as `_body`."""
    first = _body(deltas, gate=gate)

    async def body(live: LiveRun) -> bool:
        if live.resumed_after is None:
            return await first(live)
        live.emit(text_delta=agent_pb2.TextDelta(text=f"resumed after {live.resumed_after}"))
        return False

    return body


async def test_a_run_taken_over_goes_on_at_the_taker_and_is_written_no_more_by_the_loser(postgres_server):
    from agent_service.pg_store import PostgresStore

    url = postgres_server.create_database()
    store_a, store_b = await PostgresStore.open(url), await PostgresStore.open(url)
    session = agent_pb2.Session(id="s")
    session.create_time.GetCurrentTime()
    await store_a.create_session(session)
    gate = asyncio.Event()
    slow = RunManager(store_a, _body(3, gate=gate), retention_seconds=60, lease_seconds=60)
    taker = RunManager(store_b, _resumable_body(1), retention_seconds=60, lease_seconds=60)
    live = slow.submit("s", "x", ConflictPolicy.REJECT)
    await live.wait_accepted()
    follower_on_slow = asyncio.create_task(_collect(slow, live.id))
    await asyncio.sleep(0.2)  # its first event (run_started) is written
    # The slow replica misses its renewals (a long pause): its lease runs out, the other takes over.
    await store_a.renew_leases(slow.owner, 0)
    await taker._take_over_expired()
    resumed = taker.get(live.id)
    assert resumed is not None and resumed.task is not None
    await resumed.task
    # The slow one finds out at its next renewal, or when its next write is refused.
    gate.set()
    await slow._renew()
    assert live.task is not None
    await live.task
    assert live.fenced
    stored = await store_b.get_run(live.id)
    assert stored is not None and stored.status == agent_pb2.RUN_STATUS_COMPLETED  # the taker's outcome
    assert stored.takeovers == 1
    recorded = await store_b.list_events(live.id, 0, 100)
    assert [e.index for e in recorded] == list(range(1, len(recorded) + 1))
    assert stored.last_event_index == len(recorded)  # the stored run counts its last event
    assert [e.WhichOneof("event") for e in recorded] == ["run_started", "text_delta", "run_completed"]
    assert recorded[1].text_delta.text == "resumed after 1"
    # Followers on either replica see the same list: on the slow one, what it had stored before
    # the takeover, then the taker's events from the store (none of its own after that).
    assert [e async for e in taker.follow(live.id, 0)] == recorded
    assert await follower_on_slow == recorded
    assert [e async for e in slow.follow(live.id, 0)] == recorded
    # The session is free again once the taker's run ended.
    again = taker.submit("s", "y", ConflictPolicy.REJECT)
    await again.wait_accepted()
    await _finished(again)
    await slow.shutdown(grace=0)  # their timers must not outlive the stores
    await taker.shutdown(grace=0)
    await store_a.close()
    await store_b.close()


async def _collect(manager: RunManager, run_id: str) -> list[agent_pb2.RunEvent]:
    return [e async for e in manager.follow(run_id, 0)]


async def test_with_a_shared_store_followers_get_an_event_only_once_it_is_stored(postgres_server):
    from agent_service.pg_store import PostgresStore

    store = await PostgresStore.open(postgres_server.create_database())
    session = agent_pb2.Session(id="s")
    session.create_time.GetCurrentTime()
    await store.create_session(session)
    manager = RunManager(store, _body(20, pause=0.005), retention_seconds=60)
    live = manager.submit("s", "x", ConflictPolicy.REJECT)
    seen = 0
    async for batch in manager.follow_batches(live.id, 0):
        for event in batch:
            seen += 1
            assert event.index == seen
        # Everything a follower has is in the store already: a takeover starts from it.
        stored = await store.list_events(live.id, 0, 100)
        assert len(stored) >= seen
    assert seen == 22
    await manager.shutdown(grace=0)
    await store.close()


async def test_a_run_whose_takeover_failed_to_start_is_tried_again_at_the_next_look(tmp_path: Path):
    store = await _store(tmp_path)
    run = agent_pb2.Run(id="run-dead", session_id="s", status=agent_pb2.RUN_STATUS_RUNNING)
    assert await store.claim_run(run, "dead-replica", 1) == ""
    taker = RunManager(store, _resumable_body(0), retention_seconds=60)
    reading = store.list_events
    failures = []

    async def failing_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise OSError("the database went away for a moment")
        return await reading(*args, **kwargs)

    store.list_events = failing_once  # type: ignore[method-assign]
    await taker._take_over_expired()
    assert taker.get("run-dead") is None and failures  # claimed (its lease is ours), not started
    await taker._take_over_expired()
    resumed = taker.get("run-dead")
    assert resumed is not None and resumed.task is not None
    await resumed.task
    assert (await store.get_run("run-dead")).status == agent_pb2.RUN_STATUS_COMPLETED  # type: ignore[union-attr]
    await taker.shutdown(grace=0)
    await store.close()
