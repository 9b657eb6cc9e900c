"""A session's writable paths against a real executor (Docker): enforced for shell commands and
file tools, approvals for writes outside them (once, or always for the path), and changes on a
live session that keep the shell's state."""

from __future__ import annotations

import grpc
import pytest

from firebox.agent.v1 import agent_pb2
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2
from tests.integration.agent_policies.conftest import log_records, rest, run_until_approval, tool_results
from tests.support.agent_server import agent_stub, collect, executor_stub, kinds, new_session, running_agent
from tests.support.fake_provider import shell_reply, text_reply, tool_reply

pytestmark = pytest.mark.docker

A = agent_pb2


async def _sh(executor: str, workspace_id: str, script: str) -> tuple[int, str]:
    """Run a command in the workspace directly (not through the agent)."""
    call = executor_stub(executor).Execute()
    await call.write(executor_pb2.ExecuteRequest(workspace_id=workspace_id, script=script))
    await call.done_writing()
    responses = [r async for r in call]
    output = b"".join(r.stdout_data + r.stderr_data for r in responses).decode()
    return responses[-1].exit_code.value, output


async def _session(stub, session_id: str) -> A.Session:
    return (await stub.GetSession(A.GetSessionRequest(session_id=session_id))).session


def _send(stub, session_id: str, content: str = "go"):
    return stub.SendMessage(A.SendMessageRequest(session_id=session_id, content=content))


async def test_shell_commands_and_file_tools_write_only_inside_the_writable_paths(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, writable_paths=["/workspace/src/", "src/sub"])
        assert list(session.settings.writable_paths) == ["src"]
        fake.script(
            shell_reply("touch /workspace/src/in && echo inside; touch /workspace/out", call_id="call_sh"),
            tool_reply(
                ("write_file", {"path": "src/ok.txt", "content": "fine"}, "call_in"),
                ("write_file", {"path": "docs/no.txt", "content": "nope"}, "call_out"),
            ),
            text_reply("done"),
        )
        events = await collect(_send(stub, session.id))
        assert kinds(events)[-1] == "run_completed"
        results = tool_results(events)
        assert results["call_sh"].startswith("inside\n") and "Read-only file system" in results["call_sh"]
        assert results["call_in"].startswith("wrote 4 bytes")
        assert "outside the session's writable paths" in results["call_out"]
        assert "/workspace/docs/no.txt" in results["call_out"]
        workspace_id = (await _session(stub, session.id)).workspace_id
        code, _ = await _sh(
            executor, workspace_id, "test -e /workspace/src/in && test -e /workspace/src/ok.txt"
        )
        assert code == 0
        code, _ = await _sh(
            executor, workspace_id, "test -e /workspace/out || test -e /workspace/docs/no.txt"
        )
        assert code == 1


async def test_an_approved_write_outside_can_add_the_path_to_the_writable_paths(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(
            stub, approval_policy=A.APPROVAL_POLICY_ON_REQUEST, writable_paths=["src"]
        )
        fake.script(
            # Inside the writable paths: no approval asked.
            tool_reply(("write_file", {"path": "src/a.txt", "content": "a"}, "call_in")),
            tool_reply(("write_file", {"path": "docs/readme.md", "content": "b"}, "call_out")),
            text_reply("written"),
        )
        call = _send(stub, session.id)
        events, request = await run_until_approval(call)
        assert request is not None and request.tool_call.id == "call_out"
        assert list(request.paths) == ["/workspace/docs/readme.md"]
        assert "outside the session's writable paths" in request.reason
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id,
                tool_call_id="call_out",
                decision=A.APPROVAL_DECISION_APPROVE,
                always_allow_paths=True,
            )
        )
        events += await rest(call)
        assert kinds(events)[-1] == "run_completed"
        assert sum(e.HasField("approval_requested") for e in events) == 1
        resolved = next(e.approval_resolved for e in events if e.HasField("approval_resolved"))
        assert list(resolved.added_writable_paths) == ["docs"]
        assert tool_results(events)["call_out"].startswith("wrote 1 bytes")
        after = await _session(stub, session.id)
        assert list(after.settings.writable_paths) == ["docs", "src"]
        # The workspace itself now lets every process write there.
        assert await _sh(executor, after.workspace_id, "touch /workspace/docs/more && echo ok") == (0, "ok\n")
        code, out = await _sh(executor, after.workspace_id, "touch /workspace/elsewhere")
        assert code != 0 and "Read-only file system" in out
    (record,) = log_records(tmp_path / "agent")
    assert record.event.kind == trace_pb2.FEEDBACK_KIND_APPROVAL_APPROVED
    assert list(record.event.paths) == ["/workspace/docs/readme.md"]
    assert list(record.event.writable_paths_added) == ["docs"]


async def test_a_shell_command_approved_once_writes_outside_and_the_paths_stay_as_they_were(
    tmp_path, fake, executor
):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(
            stub, approval_policy=A.APPROVAL_POLICY_ON_REQUEST, writable_paths=["src"]
        )
        fake.script(
            shell_reply("mkdir -p notes && echo hi > notes/todo.txt", call_id="call_1"), text_reply("ok")
        )
        call = _send(stub, session.id)
        events, request = await run_until_approval(call)
        assert request is not None and list(request.paths) == [
            "/workspace/notes",
            "/workspace/notes/todo.txt",
        ]
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id, tool_call_id="call_1", decision=A.APPROVAL_DECISION_APPROVE
            )
        )
        events += await rest(call)
        assert kinds(events)[-1] == "run_completed"
        assert tool_results(events)["call_1"] == "[exit code 0]"
        resolved = next(e.approval_resolved for e in events if e.HasField("approval_resolved"))
        assert list(resolved.added_writable_paths) == []
        after = await _session(stub, session.id)
        assert list(after.settings.writable_paths) == ["src"]
        assert await _sh(executor, after.workspace_id, "cat /workspace/notes/todo.txt") == (0, "hi\n")
        code, out = await _sh(executor, after.workspace_id, "touch /workspace/notes/again")
        assert code != 0 and "Read-only file system" in out


async def test_changing_writable_paths_on_a_live_session_keeps_the_shell_state(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, writable_paths=["src"])
        fake.script(
            shell_reply("export KEPT=yes; cd /workspace/src && touch a", call_id="call_1"), text_reply("ok")
        )
        assert tool_results(await collect(_send(stub, session.id)))["call_1"] == "[exit code 0]"

        mask = ["settings.writable_paths"]
        request = A.UpdateSessionRequest(
            session_id=session.id,
            settings=A.SessionSettings(writable_paths=["lib"]),
            update_mask={"paths": mask},
        )
        updated = (await stub.UpdateSession(request)).session
        assert list(updated.settings.writable_paths) == ["lib"]
        fake.script(
            shell_reply(
                'echo "$KEPT $PWD"; touch b; touch /workspace/lib/c && echo lib-ok', call_id="call_2"
            ),
            text_reply("ok"),
        )
        result = tool_results(await collect(_send(stub, session.id)))["call_2"]
        assert result.startswith("yes /workspace/src\n") and "Read-only file system" in result
        assert "lib-ok" in result

        # Refused while a run is active; bad masks and paths are refused naming the field.
        fake.script(shell_reply("sleep 30", call_id="call_3"))
        running = _send(stub, session.id)
        async for response in running:
            if response.event.HasField("tool_call_started"):
                break
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.UpdateSession(request)
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        await stub.CancelRun(A.CancelRunRequest(run_id=response.event.run_id))
        for bad, field in (
            (A.UpdateSessionRequest(session_id=session.id), "update_mask"),
            (
                A.UpdateSessionRequest(
                    session_id=session.id, update_mask={"paths": ["settings.sandbox_mode"]}
                ),
                "update_mask",
            ),
            (
                A.UpdateSessionRequest(
                    session_id=session.id,
                    settings=A.SessionSettings(writable_paths=["../etc"]),
                    update_mask={"paths": mask},
                ),
                "settings.writable_paths[0]",
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.UpdateSession(bad)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in error.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await new_session(stub, writable_paths=["/etc"])
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
