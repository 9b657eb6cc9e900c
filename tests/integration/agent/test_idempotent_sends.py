"""Idempotent sends: a client-chosen message id (or resend request id) makes a repeated send an
ALREADY_EXISTS that names the run to follow instead, whether the first is still running or done."""

from __future__ import annotations

import grpc
import pytest

from firebox.agent.v1 import agent_pb2
from tests.support.agent_server import collect, kinds, new_session, text_of
from tests.support.fake_provider import held_reply, text_reply

A = agent_pb2


def _send(stub, session_id: str, message_id: str, content: str = "hello"):
    return stub.SendMessage(
        A.SendMessageRequest(session_id=session_id, content=content, message_id=message_id)
    )


async def _refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await collect(call)
    return error.value


async def test_a_send_repeated_after_a_dropped_connection_is_refused_naming_the_run_to_follow(stub, fake):
    session = await new_session(stub)
    fake.script(held_reply("partial ", "answer"))
    first = _send(stub, session.id, "client-msg-1")
    async for response in first:
        if response.event.HasField("text_delta"):
            run_id = response.event.run_id
            break
    first.cancel()  # the connection drops; the run goes on

    error = await _refused(_send(stub, session.id, "client-msg-1"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "client-msg-1" in error.details() and run_id in error.details()

    fake.release()
    events = await collect(stub.StreamRun(A.StreamRunRequest(run_id=run_id)))
    assert kinds(events)[-1] == "run_completed" and text_of(events) == "partial answer"
    # Done and stored: still refused, from the store.
    error = await _refused(_send(stub, session.id, "client-msg-1"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and run_id in error.details()
    got = await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
    assert (got.messages[0].id, got.messages[0].content) == ("client-msg-1", "hello")
    assert len(got.messages) == 2  # the turn happened once
    assert len(fake.requests) == 1


async def test_message_ids_are_validated_and_unique_across_sessions(stub, fake):
    session, other = await new_session(stub), await new_session(stub)
    for bad in ("has space", "x" * 129, "ünïcode", "a/b"):
        error = await _refused(_send(stub, session.id, bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "message_id" in error.details()
    fake.script(text_reply("one"))
    await collect(_send(stub, session.id, "shared-id"))
    error = await _refused(_send(stub, other.id, "shared-id"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and "another session" in error.details()
    # Without an id the server makes one, as before.
    fake.script(text_reply("two"))
    assert kinds(await collect(stub.SendMessage(A.SendMessageRequest(session_id=other.id, content="hi"))))[
        -1
    ] == ("run_completed")


async def test_a_repeated_resend_is_refused_naming_the_message_and_its_run(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply("first answer"))
    await collect(_send(stub, session.id, "m-edit"))
    fake.script(text_reply("second answer"))
    resend = A.EditMessageRequest(
        session_id=session.id,
        message_id="m-edit",
        content="changed",
        action=A.EDIT_ACTION_RESEND,
        request_id="resend-1",
    )
    responses = [r async for r in stub.EditMessage(resend)]
    run_id = responses[1].event.run_id
    assert kinds([r.event for r in responses[1:]])[-1] == "run_completed"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        [r async for r in stub.EditMessage(resend)]
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "resend-1" in error.value.details() and "m-edit" in error.value.details()
    assert run_id in error.value.details()
    run = (await stub.GetRun(A.GetRunRequest(run_id=run_id))).run
    assert run.request_id == "resend-1"
    # A new request id resends again.
    fake.script(text_reply("third answer"))
    resend.request_id = "resend-2"
    assert kinds([r.event async for r in stub.EditMessage(resend)][1:])[-1] == "run_completed"


async def test_the_client_library_sends_a_message_id_and_reports_a_repeat(agent, fake):
    from firebox.client import FireboxRpcError
    from firebox.client.aio import AsyncFireboxClient
    from firebox.client.settings import ConnectionSettings

    fake.script(text_reply("once"))
    async with AsyncFireboxClient(ConnectionSettings(agent=agent.target)) as client:
        session = await client.create_session(title="retries")
        events = [e async for e in client.send_message(session.id, "hi", message_id="lib-1")]
        with pytest.raises(FireboxRpcError) as error:
            [e async for e in client.send_message(session.id, "hi", message_id="lib-1")]
        assert error.value.code == grpc.StatusCode.ALREADY_EXISTS
        assert events[0].run_id in str(error.value)
