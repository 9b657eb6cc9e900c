"""The typed clients (async and sync) against a real executor: results, streaming, stdin, stop,
and failures as FireboxRpcError with the status code and the server's message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from firebox.agent.v1 import agent_pb2 as ag
from firebox.client import AsyncFireboxClient, FireboxClient, FireboxRpcError
from firebox.executor.v1 import executor_pb2 as ex
from firebox.trace.v1 import trace_pb2 as tr
from tests.support.fake_provider import text_reply

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
async def client(executor) -> AsyncIterator[AsyncFireboxClient]:
    async with AsyncFireboxClient(executor=executor.target, agent="127.0.0.1:9") as opened:
        yield opened


@pytest.fixture(scope="module")
async def workspace(client: AsyncFireboxClient) -> ex.Workspace:
    return await client.create_workspace("client-lib")


async def test_run_returns_exit_code_and_separate_output(client, workspace) -> None:
    result = await client.run(workspace.id, script="printf out; printf err >&2; exit 7")
    assert (result.exit_code, result.stdout, result.stderr) == (7, b"out", b"err")
    assert result.end_reason == ex.END_REASON_EXITED and result.execution_id


async def test_run_sends_stdin_then_end_of_input(client, workspace) -> None:
    result = await client.run(workspace.id, argv=["cat"], stdin=b"fed through stdin")
    assert result.stdout == b"fed through stdin" and result.exit_code == 0


async def test_exec_streams_output_before_the_end_and_stop_ends_the_command(client, workspace) -> None:
    call = await client.exec(workspace.id, script="echo ready; sleep 60")
    await call.close_input()
    seen = b""
    async for response in call:
        seen += response.stdout_data
        if b"ready" in seen and call.final is None:
            await call.stop(kill=True)
    assert call.final is not None
    assert call.final.end_reason == ex.END_REASON_STOPPED
    assert call.execution_id


async def test_unknown_workspace_raises_not_found_with_the_servers_message(client) -> None:
    with pytest.raises(FireboxRpcError) as caught:
        await client.get_workspace("ws_does_not_exist")
    error = caught.value
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert "ws_does_not_exist" in error.details
    assert (error.service, error.method) == ("executor", "GetWorkspace")
    assert not error.unreachable


async def test_unreachable_agent_is_reported_as_unreachable(client) -> None:
    with pytest.raises(FireboxRpcError) as caught:
        await client.agent_info()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.unreachable and caught.value.reason() == "connection refused"


async def test_health_and_server_info(client) -> None:
    assert await client.health("executor") == "SERVING"
    info = await client.executor_info()
    assert info.backend == ex.BACKEND_DOCKER and info.version


async def test_sync_client_mirrors_the_async_one(executor, workspace) -> None:
    def use_sync_client() -> tuple[int | None, bytes, list[bytes], grpc.StatusCode]:
        with FireboxClient(executor=executor.target) as sync:
            result = sync.run(workspace.id, argv=["sh", "-c", "read line; echo got $line"], stdin=b"x\n")
            call = sync.exec(workspace.id, argv=["sh", "-c", "echo a; echo b"])
            call.close_input()
            chunks = [r.stdout_data for r in call if r.stdout_data]
            try:
                sync.delete_workspace("ws_missing")
                code = grpc.StatusCode.OK
            except FireboxRpcError as error:
                code = error.code
            return result.exit_code, result.stdout, chunks, code

    # The sync client blocks its caller: keep it off the loop that serves the executor.
    exit_code, stdout, chunks, code = await asyncio.to_thread(use_sync_client)
    assert (exit_code, stdout) == (0, b"got x\n")
    assert b"".join(chunks) == b"a\nb\n"
    assert code == grpc.StatusCode.NOT_FOUND


async def test_agent_calls_generate_log_events_and_sessions(agent, executor, fake) -> None:
    fake.reset()
    fake.script(text_reply("gen", "erated"))
    async with AsyncFireboxClient(agent=agent.target, executor=executor.target) as client:
        message = ag.Message(role=ag.ROLE_USER, content="say something")
        responses = [r async for r in client.generate([message], context_id="notebook-1")]
        assert responses[0].generation_id
        assert "".join(r.text_delta.text for r in responses) == "generated"

        event = tr.FeedbackEvent(
            kind=tr.FEEDBACK_KIND_SUGGESTION_SHOWN, context_id="notebook-1", known_id="cell-1"
        )
        assert await client.log_events([event]) == 1

        session = await client.create_session("lib")
        fake.script(text_reply("hi back"))
        events = [e async for e in client.send_message(session.id, "hi")]
        assert events[-1].WhichOneof("event") == "run_completed"
        replay = [e async for e in client.stream_run(events[0].run_id, after_index=len(events) - 1)]
        assert replay == events[-1:]
        assert (await client.get_run(events[0].run_id)).status == ag.RUN_STATUS_COMPLETED
        await client.delete_session(session.id)
        with pytest.raises(FireboxRpcError) as caught:
            await client.get_session(session.id)
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
