"""Runs: replay and reconnect, disconnects, one active run per session, cancel."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from firebox.agent.v1 import agent_pb2
from firebox.client.aio import AsyncFireboxClient, run_events
from firebox.client.settings import ConnectionSettings
from tests.support.agent_server import collect, kinds, new_session, text_of
from tests.support.fake_provider import held_reply, text_reply


def _send(stub, session_id: str, content: str = "hi", policy: int = 0):
    return stub.SendMessage(
        agent_pb2.SendMessageRequest(session_id=session_id, content=content, on_conflict=policy)
    )


async def _events_until(call, predicate) -> list[agent_pb2.RunEvent]:
    events = []
    async for response in call:
        events.append(response.event)
        if predicate(response.event):
            return events
    return events


async def test_reconnect_after_every_index_of_a_finished_run_gives_exactly_the_rest(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply(*[f"t{i} " for i in range(12)], reasoning=["r1", "r2"]))
    events = await collect(_send(stub, session.id))
    last = events[-1].index
    assert [e.index for e in events] == list(range(1, last + 1))
    for after in range(0, last + 1):
        replay = await collect(
            stub.StreamRun(agent_pb2.StreamRunRequest(run_id=events[0].run_id, after_index=after))
        )
        assert replay == events[after:], f"after_index={after}"
    beyond = await collect(
        stub.StreamRun(agent_pb2.StreamRunRequest(run_id=events[0].run_id, after_index=last + 5))
    )
    assert beyond == []


async def test_reconnect_during_a_live_run_has_no_gap_and_no_duplicate(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply(*[f"w{i} " for i in range(40)], pause=0.01))
    first = _send(stub, session.id)
    seen = await _events_until(first, lambda e: e.index >= 5)
    first.cancel()  # the client goes away mid-run
    run_id = seen[0].run_id
    readers = []
    for after in (0, 3, seen[-1].index):
        readers.append(
            asyncio.create_task(
                collect(stub.StreamRun(agent_pb2.StreamRunRequest(run_id=run_id, after_index=after)))
            )
        )
        await asyncio.sleep(0.05)
    results = await asyncio.gather(*readers)
    full = results[0]
    assert [e.index for e in full] == list(range(1, len(full) + 1))
    assert kinds(full)[-1] == "run_completed"
    assert text_of(full) == "".join(f"w{i} " for i in range(40))
    assert results[1] == full[3:]
    assert results[2] == full[seen[-1].index :]
    assert full[: len(seen)] == seen


async def test_run_goes_on_after_its_client_disconnects(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply("a", "b", "c", pause=0.05))
    call = _send(stub, session.id)
    seen = await _events_until(call, lambda e: e.HasField("text_delta"))
    call.cancel()
    rest = await collect(
        stub.StreamRun(agent_pb2.StreamRunRequest(run_id=seen[0].run_id, after_index=seen[-1].index))
    )
    assert kinds(rest)[-1] == "run_completed"
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    assert got.messages[-1].content == "abc"


async def test_concurrent_messages_under_reject_let_exactly_one_run(stub, fake):
    session = await new_session(stub)
    fake.script(held_reply("busy"))

    async def attempt(n: int):
        call = _send(stub, session.id, f"m{n}")
        try:
            return await _events_until(call, lambda e: e.HasField("run_started"))
        except grpc.aio.AioRpcError as exc:
            return exc

    outcomes = await asyncio.gather(*(attempt(n) for n in range(8)))
    winners = [o for o in outcomes if isinstance(o, list)]
    losers = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 7
    run_id = winners[0][0].run_id
    for loser in losers:
        assert loser.code() == grpc.StatusCode.ABORTED
        assert run_id in loser.details()
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id))
    assert got.session.active_run_id == run_id
    fake.release()


async def test_enqueued_messages_run_one_after_another_in_order(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply("one", pause=0.1), text_reply("two"), text_reply("three"))
    readers = []
    for n in range(3):
        # One after the other: calls started together may reach the agent in any order (it failed
        # so in CI); each is sent once the agent has recorded the one before.
        readers.append(
            asyncio.create_task(collect(_send(stub, session.id, f"m{n}", agent_pb2.CONFLICT_POLICY_ENQUEUE)))
        )
        async with asyncio.timeout(10):
            while True:
                if len((await stub.ListRuns(agent_pb2.ListRunsRequest(session_id=session.id))).runs) > n:
                    break
                await asyncio.sleep(0.01)
    results = await asyncio.gather(*readers)
    assert [text_of(events) for events in results] == ["one", "two", "three"]
    assert all(kinds(events)[-1] == "run_completed" for events in results)
    # Each run saw the previous run's complete exchange, never another's half.
    assert [m["content"] for m in fake.sent(2)] == ["m0", "one", "m1", "two", "m2"]


async def test_interrupt_cancels_the_active_run_keeping_its_partial_output(stub, fake):
    session = await new_session(stub)
    fake.script(held_reply("partial ", "answer"), text_reply("fresh"))
    first = _send(stub, session.id, "first")
    received: list[str] = []

    def whole_partial_answer(event: agent_pb2.RunEvent) -> bool:
        received.append(event.text_delta.text)
        return "".join(received) == "partial answer"

    seen = await _events_until(first, whole_partial_answer)
    second = await collect(_send(stub, session.id, "second", agent_pb2.CONFLICT_POLICY_INTERRUPT))
    rest = [r.event async for r in first]
    assert kinds(seen + rest)[-1] == "run_cancelled"
    assert "interrupted" in rest[-1].run_cancelled.reason
    assert text_of(second) == "fresh"
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    assert [(m.content, m.status) for m in got.messages] == [
        ("first", agent_pb2.MESSAGE_STATUS_COMPLETE),
        ("partial answer", agent_pb2.MESSAGE_STATUS_INTERRUPTED),
        ("second", agent_pb2.MESSAGE_STATUS_COMPLETE),
        ("fresh", agent_pb2.MESSAGE_STATUS_COMPLETE),
    ]
    assert fake.sent(1)[1] == {"role": "assistant", "content": "partial answer"}


async def test_cancel_during_model_streaming_keeps_partial_content_and_is_idempotent(stub, fake):
    session = await new_session(stub)
    fake.script(held_reply("so far"))
    call = _send(stub, session.id)
    seen = await _events_until(call, lambda e: e.HasField("text_delta"))
    run_id = seen[0].run_id
    cancelled = await stub.CancelRun(agent_pb2.CancelRunRequest(run_id=run_id))
    assert cancelled.run.status == agent_pb2.RUN_STATUS_CANCELLED
    rest = [r.event async for r in call]
    assert kinds(rest)[-2:] == ["message_completed", "run_cancelled"]
    assert rest[-2].message_completed.message.status == agent_pb2.MESSAGE_STATUS_INTERRUPTED
    again = await stub.CancelRun(agent_pb2.CancelRunRequest(run_id=run_id))
    assert again.run.status == agent_pb2.RUN_STATUS_CANCELLED
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    assert (got.messages[-1].content, got.messages[-1].status) == (
        "so far",
        agent_pb2.MESSAGE_STATUS_INTERRUPTED,
    )
    assert got.session.active_run_id == ""
    # The session takes a new message at once.
    fake.script(text_reply("next"))
    assert text_of(await collect(_send(stub, session.id))) == "next"


async def test_cancelling_a_finished_run_is_not_an_error(stub, fake):
    session = await new_session(stub)
    events = await collect(_send(stub, session.id))
    response = await stub.CancelRun(agent_pb2.CancelRunRequest(run_id=events[0].run_id))
    assert response.run.status == agent_pb2.RUN_STATUS_COMPLETED


async def test_cancelling_a_queued_run_removes_it_from_the_queue(stub, fake):
    session = await new_session(stub)
    fake.script(held_reply("first"), text_reply("third"))
    first = _send(stub, session.id, "1")
    await _events_until(first, lambda e: e.HasField("text_delta"))

    async def queued_runs(count: int) -> list[agent_pb2.Run]:
        async with asyncio.timeout(10):
            while True:
                listed = await stub.ListRuns(agent_pb2.ListRunsRequest(session_id=session.id))
                waiting = [r for r in listed.runs if r.status == agent_pb2.RUN_STATUS_QUEUED]
                if len(waiting) >= count:
                    return waiting
                await asyncio.sleep(0.01)

    # One after the other: two calls started together may reach the agent in either order.
    readers = [asyncio.create_task(collect(_send(stub, session.id, "2", agent_pb2.CONFLICT_POLICY_ENQUEUE)))]
    second_id = (await queued_runs(1))[0].id
    readers.append(
        asyncio.create_task(collect(_send(stub, session.id, "3", agent_pb2.CONFLICT_POLICY_ENQUEUE)))
    )
    await queued_runs(2)
    await stub.CancelRun(agent_pb2.CancelRunRequest(run_id=second_id))
    assert kinds(await readers[0]) == ["run_cancelled"]
    fake.release()
    assert text_of(await readers[1]) == "third"
    assert "2" not in [m["content"] for m in fake.sent(-1)]


async def test_list_runs_is_newest_first_and_paged(stub, fake):
    session = await new_session(stub)
    ids = []
    for n in range(3):
        events = await collect(_send(stub, session.id, f"m{n}"))
        ids.append(events[0].run_id)
    page = await stub.ListRuns(agent_pb2.ListRunsRequest(session_id=session.id, page_size=2))
    assert [r.id for r in page.runs] == ids[::-1][:2]
    rest = await stub.ListRuns(
        agent_pb2.ListRunsRequest(session_id=session.id, page_size=2, page_token=page.next_page_token)
    )
    assert [r.id for r in rest.runs] == ids[:1] and rest.next_page_token == ""
    assert all(r.status == agent_pb2.RUN_STATUS_COMPLETED for r in page.runs)


@pytest.mark.parametrize(
    ("call", "code", "field"),
    [
        ("send_unknown_session", grpc.StatusCode.NOT_FOUND, "session"),
        ("send_empty_content", grpc.StatusCode.INVALID_ARGUMENT, "content"),
        ("send_unknown_policy", grpc.StatusCode.INVALID_ARGUMENT, "on_conflict"),
        ("send_no_session_id", grpc.StatusCode.INVALID_ARGUMENT, "session_id"),
        ("stream_negative_index", grpc.StatusCode.INVALID_ARGUMENT, "after_index"),
        ("stream_unknown_run", grpc.StatusCode.NOT_FOUND, "run"),
        ("cancel_unknown_run", grpc.StatusCode.NOT_FOUND, "run"),
        ("get_unknown_run", grpc.StatusCode.NOT_FOUND, "run"),
        ("get_unknown_session", grpc.StatusCode.NOT_FOUND, "session"),
        ("delete_unknown_session", grpc.StatusCode.NOT_FOUND, "session"),
        ("list_too_many", grpc.StatusCode.INVALID_ARGUMENT, "page_size"),
        ("list_bad_token", grpc.StatusCode.INVALID_ARGUMENT, "page_token"),
        ("generate_nothing", grpc.StatusCode.INVALID_ARGUMENT, "messages"),
        ("log_unspecified_kind", grpc.StatusCode.INVALID_ARGUMENT, "events[0].kind"),
        ("create_negative_steps", grpc.StatusCode.INVALID_ARGUMENT, "settings.max_steps"),
    ],
)
async def test_bad_input_gets_a_precise_status_naming_the_field(stub, call, code, field):
    session = await new_session(stub)
    calls = {
        "send_unknown_session": lambda: collect(_send(stub, "ses-nope")),
        "send_empty_content": lambda: collect(_send(stub, session.id, "  ")),
        "send_unknown_policy": lambda: collect(_send(stub, session.id, "x", 99)),
        "send_no_session_id": lambda: collect(_send(stub, "")),
        "stream_negative_index": lambda: collect(
            stub.StreamRun(agent_pb2.StreamRunRequest(run_id="run-x", after_index=-1))
        ),
        "stream_unknown_run": lambda: collect(stub.StreamRun(agent_pb2.StreamRunRequest(run_id="run-x"))),
        "cancel_unknown_run": lambda: stub.CancelRun(agent_pb2.CancelRunRequest(run_id="run-x")),
        "get_unknown_run": lambda: stub.GetRun(agent_pb2.GetRunRequest(run_id="run-x")),
        "get_unknown_session": lambda: stub.GetSession(agent_pb2.GetSessionRequest(session_id="ses-x")),
        "delete_unknown_session": lambda: stub.DeleteSession(
            agent_pb2.DeleteSessionRequest(session_id="ses-x")
        ),
        "list_too_many": lambda: stub.ListSessions(agent_pb2.ListSessionsRequest(page_size=5000)),
        "list_bad_token": lambda: stub.ListSessions(agent_pb2.ListSessionsRequest(page_token="%%%")),
        "generate_nothing": lambda: collect(stub.Generate(agent_pb2.GenerateRequest())),
        "log_unspecified_kind": lambda: stub.LogEvents(
            agent_pb2.LogEventsRequest(
                events=[__import__("firebox.trace.v1.trace_pb2", fromlist=["x"]).FeedbackEvent()]
            )
        ),
        "create_negative_steps": lambda: stub.CreateSession(
            agent_pb2.CreateSessionRequest(settings=agent_pb2.SessionSettings(max_steps=-1))
        ),
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await calls[call]()
    assert caught.value.code() == code
    assert field in caught.value.details()


async def _batches(call) -> list[list[agent_pb2.RunEvent]]:
    """The events of each message of a batched SendMessage or StreamRun call."""
    batches = []
    async for response in call:
        assert not response.HasField("event"), "a batched message carries its events in `events`"
        assert response.events, "a batched message carries at least one event"
        batches.append(list(response.events))
    return batches


async def test_batched_streams_carry_exactly_the_events_of_one_per_message_streams(stub, fake):
    session = await new_session(stub)
    # Text arriving in one piece per write and several pieces per write, and reasoning.
    fake.script(text_reply(*[f"t{i} " for i in range(30)], reasoning=["r1", "r2"]))
    batches = await _batches(
        stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi", batch_events=True))
    )
    events = [e for batch in batches for e in batch]
    assert [e.index for e in events] == list(range(1, len(events) + 1))
    assert kinds(events)[-1] == "run_completed"
    assert text_of(events) == "".join(f"t{i} " for i in range(30))
    run_id = events[0].run_id
    # The same run, one event per message, as clients that do not opt in get it.
    assert await collect(stub.StreamRun(agent_pb2.StreamRunRequest(run_id=run_id))) == events
    for after in range(0, len(events) + 1):
        replay = await _batches(
            stub.StreamRun(agent_pb2.StreamRunRequest(run_id=run_id, after_index=after, batch_events=True))
        )
        assert [e for batch in replay for e in batch] == events[after:], f"after_index={after}"


async def test_batched_reconnect_during_a_live_run_has_no_gap_and_no_duplicate(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply(*[f"w{i} " for i in range(40)], pause=0.01))
    first = stub.SendMessage(
        agent_pb2.SendMessageRequest(session_id=session.id, content="hi", batch_events=True)
    )
    seen: list[agent_pb2.RunEvent] = []
    async for response in first:
        seen.extend(response.events)
        if seen[-1].index >= 5:
            break
    first.cancel()  # the client goes away mid-run
    rest = await _batches(
        stub.StreamRun(
            agent_pb2.StreamRunRequest(run_id=seen[0].run_id, after_index=seen[-1].index, batch_events=True)
        )
    )
    full = seen + [e for batch in rest for e in batch]
    assert [e.index for e in full] == list(range(1, len(full) + 1))
    assert kinds(full)[-1] == "run_completed"
    assert text_of(full) == "".join(f"w{i} " for i in range(40))


async def test_clients_that_do_not_opt_in_get_exactly_one_event_per_message(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply(*[f"t{i} " for i in range(20)]))
    responses = [r async for r in _send(stub, session.id)]
    assert all(r.HasField("event") and not r.events for r in responses)
    assert [r.event.index for r in responses] == list(range(1, len(responses) + 1))
    replay = [r async for r in stub.StreamRun(agent_pb2.StreamRunRequest(run_id=responses[0].event.run_id))]
    assert all(r.HasField("event") and not r.events for r in replay)
    assert [r.event for r in replay] == [r.event for r in responses]


async def test_the_client_library_opts_in_and_yields_every_event_in_order(agent, fake):
    fake.script(text_reply(*[f"t{i} " for i in range(25)]))
    async with AsyncFireboxClient(ConnectionSettings(agent=agent.target)) as client:
        session = await client.create_session(title="batched")
        requests, responses = [], []
        server_stream = client._server_stream

        async def recording(service, method, request):
            requests.append(request)
            async for response in server_stream(service, method, request):
                responses.append(response)
                yield response

        client._server_stream = recording  # type: ignore[method-assign]
        events = [e async for e in client.send_message(session.id, "hi")]
        assert requests[0].batch_events
        assert all(r.events and not r.HasField("event") for r in responses)
        assert [e.index for e in events] == list(range(1, len(events) + 1))
        assert text_of(events) == "".join(f"t{i} " for i in range(25))
        replay = [e async for e in client.stream_run(events[0].run_id, 3)]
        assert replay == events[3:]


def test_the_client_library_reads_one_event_messages_of_agents_older_than_batching():
    event = agent_pb2.RunEvent(index=4, run_id="r", text_delta=agent_pb2.TextDelta(text="x"))
    assert list(run_events(agent_pb2.SendMessageResponse(event=event))) == [event]
    assert list(run_events(agent_pb2.StreamRunResponse(events=[event, event]))) == [event, event]
    assert list(run_events(agent_pb2.StreamRunResponse())) == []
    assert list(run_events(agent_pb2.EditMessageResponse(event=event))) == [event]


async def test_a_batched_edit_and_resend_streams_the_same_events_as_its_replay(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply("one"), text_reply(*[f"t{i} " for i in range(30)]))
    first = await collect(_send(stub, session.id, "first"))
    responses = [
        r
        async for r in stub.EditMessage(
            agent_pb2.EditMessageRequest(
                session_id=session.id,
                message_id=first[0].run_started.user_message_id,
                content="again",
                action=agent_pb2.EDIT_ACTION_RESEND,
                batch_events=True,
            )
        )
    ]
    assert responses[0].message.content == "again" and not responses[0].events
    assert all(r.events and not r.HasField("event") for r in responses[1:])
    events = [e for r in responses[1:] for e in r.events]
    assert [e.index for e in events] == list(range(1, len(events) + 1))
    assert kinds(events)[0] == "run_started" and kinds(events)[-1] == "run_completed"
    assert text_of(events) == "".join(f"t{i} " for i in range(30))
    # One event per message when not asked, as before: the replay of the same run.
    assert await collect(stub.StreamRun(agent_pb2.StreamRunRequest(run_id=events[0].run_id))) == events
