"""The tool loop and Execute forwarding against a real executor (Docker backend)."""

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
from tests.support.agent_server import agent_stub, collect, executor_stub, kinds, new_session, running_agent
from tests.support.executor_server import delete_workspaces, running_executor
from tests.support.fake_provider import FakeProvider, shell_reply, text_reply, tool_reply

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    config_dir = tmp_path_factory.mktemp("executor")
    async with running_executor(config_dir, backend="docker") as target:
        try:
            yield target
        finally:
            await asyncio.to_thread(delete_workspaces, target)


@pytest.fixture
async def tool_agent(tmp_path: Path, fake: FakeProvider, executor: str) -> AsyncIterator[Agent]:
    async with running_agent(
        tmp_path / "agent", fake=fake, executor=executor, tool_output_limit=1024
    ) as agent:
        yield agent


@pytest.fixture
def stub(tool_agent: Agent):
    return agent_stub(tool_agent)


def _send(stub, session_id: str, content: str = "go"):
    return stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session_id, content=content))


def _stdout(events, call_id: str | None = None) -> bytes:
    return b"".join(
        e.tool_output.stdout_data
        for e in events
        if e.HasField("tool_output") and (call_id is None or e.tool_output.tool_call_id == call_id)
    )


async def _execute(stub, workspace_id: str, script: str, **extra) -> list[executor_pb2.ExecuteResponse]:
    call = stub.Execute()
    await call.write(executor_pb2.ExecuteRequest(workspace_id=workspace_id, script=script, **extra))
    await call.done_writing()
    return [r async for r in call]


async def test_shell_tool_runs_in_the_session_workspace_and_cd_sticks(stub, fake, executor, tmp_path):
    session = await new_session(stub)
    fake.script(
        shell_reply("cd /tmp && echo first", call_id="call_1"),
        shell_reply("pwd; echo oops >&2; (exit 3)", call_id="call_2"),
        text_reply("all done"),
    )
    events = await collect(_send(stub, session.id))
    assert kinds(events)[-1] == "run_completed"
    assert not events[-1].run_completed.step_limit_reached
    started = [e.tool_call_started.tool_call for e in events if e.HasField("tool_call_started")]
    assert [(c.id, c.name) for c in started] == [("call_1", "shell"), ("call_2", "shell")]
    finished = {
        e.tool_call_finished.tool_call_id: e.tool_call_finished
        for e in events
        if e.HasField("tool_call_finished")
    }
    assert finished["call_1"].exit_code == 0
    assert (finished["call_2"].exit_code, finished["call_2"].end_reason) == (
        3,
        executor_pb2.END_REASON_EXITED,
    )
    assert _stdout(events, "call_1") == b"first\n"
    assert _stdout(events, "call_2") == b"/tmp\n"  # the cd of the first call stuck
    assert b"oops" in b"".join(e.tool_output.stderr_data for e in events if e.HasField("tool_output"))
    # The model got each result, in the history of the next call.
    tool_messages = [m for m in fake.sent(2) if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_1", "call_2"]
    assert "first" in tool_messages[0]["content"] and "[exit code 0]" in tool_messages[0]["content"]
    assert "[exit code 3]" in tool_messages[1]["content"]
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    assert got.session.workspace_id and got.session.shell_session_id
    assert [m.role for m in got.messages] == [
        agent_pb2.ROLE_USER,
        agent_pb2.ROLE_ASSISTANT,
        agent_pb2.ROLE_TOOL,
        agent_pb2.ROLE_ASSISTANT,
        agent_pb2.ROLE_TOOL,
        agent_pb2.ROLE_ASSISTANT,
    ]
    # Every execution carried the ids that join it to the run (the executor's training log).
    records = []
    for _ in range(40):
        records = [
            json.loads(line)
            for path in Path(tmp_path).parent.glob("executor[0-9]*/logs/executions-*.jsonl")
            for line in path.read_text().splitlines()
        ]
        records = [r for r in records if r["request"].get("agentSessionId") == session.id]
        if len(records) == 2:
            break
        await asyncio.sleep(0.1)
    assert sorted(r["request"]["toolCallId"] for r in records) == ["call_1", "call_2"]
    assert {r["request"]["runId"] for r in records} == {events[0].run_id}


async def test_model_gets_bounded_head_and_tail_while_the_client_gets_everything(stub, fake):
    session = await new_session(stub)
    script = 'i=0; while [ $i -lt 2000 ]; do echo "line-$i-abcdefghijklmnopqrstuvwxyz"; i=$((i+1)); done'
    fake.script(shell_reply(script, call_id="call_big"), text_reply("ok"))
    events = await collect(_send(stub, session.id))
    expected = "".join(f"line-{i}-abcdefghijklmnopqrstuvwxyz\n" for i in range(2000)).encode()
    assert _stdout(events) == expected
    result = next(m for m in fake.sent(1) if m["role"] == "tool")["content"]
    assert result.startswith("line-0-")
    assert "line-1999-abcdefghijklmnopqrstuvwxyz" in result
    assert "bytes omitted" in result
    assert len(result.encode()) < 1024 + 200
    finished = next(e.tool_call_finished for e in events if e.HasField("tool_call_finished"))
    assert finished.output_truncated


async def test_loop_stops_at_the_step_limit_and_says_so(stub, fake):
    session = await new_session(stub, max_steps=2)
    fake.script(shell_reply("echo 1"), shell_reply("echo 2"), shell_reply("echo 3"))
    events = await collect(_send(stub, session.id))
    assert events[-1].run_completed.step_limit_reached
    assert len(fake.requests) == 2


async def test_cancel_during_a_tool_execution_kills_the_command(stub, fake):
    session = await new_session(stub)
    fake.script(
        shell_reply("echo started; sleep 4; touch /workspace/marker", call_id="call_slow"), text_reply("next")
    )
    call = _send(stub, session.id)
    events = []
    async for response in call:
        events.append(response.event)
        if response.event.tool_output.stdout_data == b"started\n":
            break
    cancelled = await stub.CancelRun(agent_pb2.CancelRunRequest(run_id=events[0].run_id))
    assert cancelled.run.status == agent_pb2.RUN_STATUS_CANCELLED
    rest = [r.event async for r in call]
    assert kinds(rest)[-1] == "run_cancelled", rest
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    tool = got.messages[-1]
    assert (tool.role, tool.tool_call_id) == (agent_pb2.ROLE_TOOL, "call_slow")
    assert "cancelled" in tool.content
    # Past the time the command would have touched the marker: it never did.
    await asyncio.sleep(5)
    check = await _execute(
        stub, got.session.workspace_id, "test -e /workspace/marker && echo present || echo absent"
    )
    assert b"".join(r.stdout_data for r in check) == b"absent\n"
    # The history is valid: the next message goes to the model with the synthetic result.
    fake.script(text_reply("fine"))
    await collect(_send(stub, session.id, "again"))
    sent = fake.sent(-1)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]


async def test_deleting_a_session_deletes_its_workspace(stub, fake, executor):
    session = await new_session(stub)
    fake.script(shell_reply("true"), text_reply("ok"))
    await collect(_send(stub, session.id))
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id))
    await stub.DeleteSession(agent_pb2.DeleteSessionRequest(session_id=session.id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await executor_stub(executor).GetWorkspace(
            executor_pb2.GetWorkspaceRequest(workspace_id=got.session.workspace_id)
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
async def workspace(executor: str) -> str:
    response = await executor_stub(executor).CreateWorkspace(executor_pb2.CreateWorkspaceRequest())
    return response.workspace.id


async def test_execute_is_forwarded_with_stdin_and_half_close(stub, workspace):
    call = stub.Execute()
    await call.write(executor_pb2.ExecuteRequest(workspace_id=workspace, script="cat; echo end"))
    await call.write(executor_pb2.ExecuteRequest(input_data=b"hello "))
    await call.write(executor_pb2.ExecuteRequest(input_data=b"stdin\n"))
    await call.done_writing()
    responses = [r async for r in call]
    assert responses[0].execution_id
    assert b"".join(r.stdout_data for r in responses) == b"hello stdin\nend\n"
    assert responses[-1].exit_code.value == 0


async def test_execute_forwards_a_stop(stub, workspace):
    call = stub.Execute()
    await call.write(executor_pb2.ExecuteRequest(workspace_id=workspace, script="echo up; sleep 30"))
    first = []
    async for response in call:
        first.append(response)
        if response.stdout_data:
            break
    await call.write(executor_pb2.ExecuteRequest(stop=executor_pb2.STOP_SIGNAL_KILL))
    rest = [r async for r in call]
    assert rest[-1].end_reason == executor_pb2.END_REASON_STOPPED


async def test_execute_cancelled_by_the_client_kills_the_command(stub, workspace):
    call = stub.Execute()
    await call.write(
        executor_pb2.ExecuteRequest(
            workspace_id=workspace, script="echo up; sleep 3; touch /workspace/cancel-marker"
        )
    )
    async for response in call:
        if response.stdout_data:
            break
    call.cancel()
    await asyncio.sleep(4)
    check = await _execute(stub, workspace, "test -e /workspace/cancel-marker && echo present || echo absent")
    assert b"".join(r.stdout_data for r in check) == b"absent\n"


async def test_execute_deadline_is_forwarded(stub, workspace):
    call = stub.Execute(timeout=1.0)
    await call.write(
        executor_pb2.ExecuteRequest(
            workspace_id=workspace, script="sleep 3; touch /workspace/deadline-marker"
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(3)
    check = await _execute(
        stub, workspace, "test -e /workspace/deadline-marker && echo present || echo absent"
    )
    assert b"".join(r.stdout_data for r in check) == b"absent\n"


async def test_execute_keeps_the_executors_error_codes(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _execute(stub, "ws-does-not-exist", "true")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_auth_token_is_sent_on_to_the_executor(tmp_path, fake):
    token = "shared-secret-token"
    async with (
        running_executor(tmp_path / "ex", backend="docker", auth_token=token) as target,
        running_agent(tmp_path / "ag", fake=fake, executor=target, auth_token=token) as agent,
    ):
        stub = agent_stub(agent)
        metadata = (("authorization", f"Bearer {token}"),)
        executor = executor_stub(target)
        created = await executor.CreateWorkspace(executor_pb2.CreateWorkspaceRequest(), metadata=metadata)
        try:
            call = stub.Execute(metadata=metadata)
            await call.write(
                executor_pb2.ExecuteRequest(workspace_id=created.workspace.id, script="echo through")
            )
            await call.done_writing()
            responses = [r async for r in call]
            assert b"".join(r.stdout_data for r in responses) == b"through\n"
        finally:
            await executor.DeleteWorkspace(
                executor_pb2.DeleteWorkspaceRequest(workspace_id=created.workspace.id), metadata=metadata
            )


async def test_a_lost_or_ended_shell_session_is_replaced_on_the_next_tool_call(stub, fake, executor):
    session = await new_session(stub)
    fake.script(shell_reply("echo one"), text_reply("ok"))
    await collect(_send(stub, session.id))
    first = (await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id))).session
    # The executor forgets the shell (as after its restart) ...
    await executor_stub(executor).CloseSession(
        executor_pb2.CloseSessionRequest(session_id=first.shell_session_id)
    )
    fake.script(shell_reply("echo two; exit 4"), text_reply("ok"))
    events = await collect(_send(stub, session.id))
    assert _stdout(events) == b"two\n"
    second = (await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id))).session
    assert second.workspace_id == first.workspace_id
    # ... and a command that ends its shell (exit) leaves the next call a fresh one.
    assert second.shell_session_id == ""
    fake.script(shell_reply("echo three"), text_reply("ok"))
    events = await collect(_send(stub, session.id))
    assert _stdout(events) == b"three\n"
    third = (await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id))).session
    assert third.shell_session_id not in ("", first.shell_session_id)


async def test_tool_timeout_ends_a_shell_call_and_the_run_goes_on(tmp_path, fake, executor):
    """docs/agent.md: --tool-timeout is the time limit of one shell tool call. A command that
    would outlive it ends TIMED_OUT (killed, not left running) and the model gets the result."""
    async with running_agent(tmp_path / "agent", fake=fake, executor=executor, tool_timeout=1.0) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(
            shell_reply("echo started; sleep 600; echo never", call_id="call_slow"),
            shell_reply("ps -o args | grep -c '[s]leep 600' || true", call_id="call_check"),
            text_reply("gave up"),
        )
        events = await collect(_send(stub, session.id))
    assert kinds(events)[-1] == "run_completed"
    finished = {
        e.tool_call_finished.tool_call_id: e.tool_call_finished
        for e in events
        if e.HasField("tool_call_finished")
    }
    assert finished["call_slow"].end_reason == executor_pb2.END_REASON_TIMED_OUT
    assert _stdout(events, "call_slow") == b"started\n"
    # The sleep was killed with the call: nothing of it runs in the session's workspace.
    assert _stdout(events, "call_check") == b"0\n"
    slow = next(m for m in fake.sent(1) if m["role"] == "tool")
    assert "started" in slow["content"] and "never" not in slow["content"]


def _last_tool_result(request: dict) -> str:
    """The newest tool result a provider request carries, in either wire format (a `tool` message,
    or an Anthropic user message's `tool_result` block)."""
    for message in reversed(request["messages"]):
        if message["role"] == "tool":
            return message["content"]
        blocks = message["content"] if isinstance(message["content"], list) else []
        for block in reversed(blocks):
            if block.get("type") == "tool_result":
                content = block["content"]
                return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
    raise AssertionError("no tool result in the request")


def _process_id(request: dict) -> str:
    return _last_tool_result(request).split("session_id: ")[1].split("]")[0].strip()


async def test_background_process_tools_start_write_read_and_stop(stub, fake, executor):
    session = await new_session(stub)
    fake.script(
        tool_reply(
            (
                "exec_command",
                {"command": "echo started; read line; echo got:$line; sleep 300", "yield_time_ms": 1500},
                "c1",
            )
        ),
        lambda request: tool_reply(
            (
                "write_stdin",
                {"session_id": _process_id(request), "chars": "hello\n", "yield_time_ms": 1500},
                "c2",
            )
        ),
        lambda request: tool_reply(("stop_process", {"session_id": _process_id(request)}, "c3")),
        text_reply("stopped it"),
    )
    events = await collect(_send(stub, session.id))
    assert kinds(events)[-1] == "run_completed"
    results = {
        e.tool_call_finished.tool_call_id: e.tool_call_finished.result
        for e in events
        if e.HasField("tool_call_finished")
    }
    assert "started" in results["c1"] and "still running; session_id: ex_" in results["c1"]
    # Only what is new since the last call: the echo of the input, not "started" again.
    assert (
        "got:hello" in results["c2"] and "started" not in results["c2"] and "still running" in results["c2"]
    )
    assert "the process ended" in results["c3"] and "killed by a stop request" in results["c3"]
    process_id = results["c1"].split("session_id: ")[1].split("]")[0].strip()
    # The executor saw a background execution, joined to the tool call for the training log.
    stored = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id))
    listed = await executor_stub(executor).ListExecutions(
        executor_pb2.ListExecutionsRequest(workspace_id=stored.session.workspace_id)
    )
    info = next(e for e in listed.executions if e.execution_id == process_id)
    assert (
        info.state == executor_pb2.EXECUTION_STATE_FINISHED
        and info.end_reason == executor_pb2.END_REASON_STOPPED
    )


async def test_a_process_tool_with_an_unknown_session_id_tells_the_model(stub, fake):
    session = await new_session(stub)
    fake.script(tool_reply(("write_stdin", {"session_id": "ex_nope", "chars": "x"}, "c1")), text_reply("ok"))
    events = await collect(_send(stub, session.id))
    finished = [e.tool_call_finished for e in events if e.HasField("tool_call_finished")]
    assert finished[0].result.startswith("[error:") and "ex_nope" in finished[0].result


async def test_terminal_and_background_executions_go_through_the_agents_execute(stub, workspace, executor):
    on_tty = await _execute(
        stub, workspace, "stty size", tty=True, winsize=executor_pb2.Winsize(rows=31, cols=99)
    )
    assert b"".join(r.stdout_data for r in on_tty) == b"31 99\r\n"
    call = stub.Execute()
    await call.write(
        executor_pb2.ExecuteRequest(workspace_id=workspace, script="echo up; sleep 300", background=True)
    )
    first = await call.read()
    call.cancel()  # the client (and the agent's call) go away; the execution runs on
    await asyncio.sleep(0.5)
    listed = await executor_stub(executor).ListExecutions(
        executor_pb2.ListExecutionsRequest(workspace_id=workspace)
    )
    info = next(e for e in listed.executions if e.execution_id == first.execution_id)
    assert info.state == executor_pb2.EXECUTION_STATE_RUNNING
    await executor_stub(executor).StopExecution(
        executor_pb2.StopExecutionRequest(
            execution_id=first.execution_id, signal=executor_pb2.STOP_SIGNAL_KILL
        )
    )
