"""Every RPC of the agent fuzzed with hypothesis-generated messages (1,000 per RPC).

One agent process for the module, in front of a real executor process and the fake provider
(a real HTTP server in a process of its own). Each test asserts that no call ends INTERNAL or
UNKNOWN (nor hangs), that the agent is still SERVING, and that a reference session — its
messages and its runs — is exactly as it was.

Which test fuzzes which RPC is `FUZZED`, checked against the service descriptor: an RPC added
to the proto without a fuzz test fails `test_every_rpc_is_fuzzed`. A new RPC usually needs only
an entry in `GENERIC` (a request builder and what an accepted answer must satisfy).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from firebox.agent.v1 import agent_pb2 as pb
from firebox.agent.v1 import agent_pb2_grpc
from firebox.common.limits import field_limit
from firebox.executor.v1 import executor_pb2, executor_pb2_grpc
from firebox.trace.v1 import trace_pb2
from tests.fuzz import strategies as fz
from tests.fuzz.support import (
    FUZZ,
    MESSAGES_PER_RPC,
    Fuzzed,
    Outcomes,
    fuzz_rpc,
    serving,
    short,
    unfuzzed,
)
from tests.support.executor_server import REPO, ExecutorProcess, remove_owned_workspaces
from tests.support.service_process import AgentProcess

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

SERVICE = pb.DESCRIPTOR.services_by_name["AgentService"]
RUN_ENDS = ("run_completed", "run_failed", "run_cancelled")


@dataclass
class Target:
    agent: AgentProcess
    stub: agent_pb2_grpc.AgentServiceStub
    session_id: str
    run_id: str
    workspace_id: str
    shell_session_id: str
    # A session with one exchange that edits and compactions may change (the reference may not).
    scratch_id: str
    scratch_message_id: str

    @property
    def real_ids(self) -> list[str]:
        return [self.session_id, self.run_id, self.workspace_id]


def start_provider() -> tuple[subprocess.Popen[str], str]:
    """The fake provider in a process of its own, answering every request with a short text."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_provider", "--deltas", "3"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("fuzz-agent")
    executor = ExecutorProcess(root / "executor", backend="docker")
    provider, base_url = start_provider()
    agent: AgentProcess | None = None
    try:
        executor.start()
        agent = AgentProcess(root / "agent", executor=executor.target, provider=base_url).start()
        with (
            grpc.insecure_channel(executor.target) as ex_channel,
            grpc.insecure_channel(agent.target) as channel,
        ):
            ex = executor_pb2_grpc.ExecutorServiceStub(ex_channel)
            workspace = ex.CreateWorkspace(
                executor_pb2.CreateWorkspaceRequest(name="fuzz"), timeout=60
            ).workspace
            shell = ex.CreateSession(executor_pb2.CreateSessionRequest(workspace_id=workspace.id), timeout=30)
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            session = stub.CreateSession(pb.CreateSessionRequest(title="reference"), timeout=10).session
            events = [
                r.event
                for r in stub.SendMessage(
                    pb.SendMessageRequest(session_id=session.id, content="hi"), timeout=30
                )
            ]
            assert events[-1].HasField("run_completed"), events[-1]
            scratch = stub.CreateSession(pb.CreateSessionRequest(title="scratch"), timeout=10).session
            for _ in stub.SendMessage(pb.SendMessageRequest(session_id=scratch.id, content="hi"), timeout=30):
                pass
            first = stub.GetSession(
                pb.GetSessionRequest(session_id=scratch.id, include_messages=True), timeout=10
            ).messages[0]
            yield Target(
                agent,
                stub,
                session.id,
                events[-1].run_id,
                workspace.id,
                shell.session.id,
                scratch.id,
                first.id,
            )
    finally:
        if agent is not None:
            agent.kill()
        provider.kill()
        provider.wait(10)
        executor.kill()
        remove_owned_workspaces(root / "executor")


def snapshot(t: Target) -> tuple[object, ...]:
    """The reference session, its messages and runs, and every session's id and title."""
    got = t.stub.GetSession(pb.GetSessionRequest(session_id=t.session_id, include_messages=True), timeout=10)
    runs = t.stub.ListRuns(pb.ListRunsRequest(session_id=t.session_id, page_size=1000), timeout=10).runs
    listed = t.stub.ListSessions(pb.ListSessionsRequest(page_size=1000), timeout=10).sessions
    session = pb.Session()
    session.CopyFrom(got.session)
    session.ClearField("update_time")
    return (
        session.SerializeToString(deterministic=True),
        [m.SerializeToString(deterministic=True) for m in got.messages],
        [(r.id, r.status, r.last_event_index) for r in runs],
        sorted((s.id, s.title) for s in listed),
        dropped(t),
    )


def dropped(t: Target) -> int:
    return t.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).dropped_log_records


def ids(t: Target) -> st.SearchStrategy[str]:
    """Random and near-miss ids, never a real one."""
    real = {*t.real_ids, t.scratch_id, t.scratch_message_id}
    return st.one_of(st.sampled_from(fz.odd_ids(t.real_ids)), fz.hostile_text()).filter(
        lambda i: i not in real
    )


def check_alive_and_unchanged(t: Target, before: tuple[object, ...], outcomes: Outcomes) -> None:
    assert serving(t.agent.target), f"agent not SERVING after fuzzing; codes {dict(outcomes.codes)}"
    assert outcomes.calls >= MESSAGES_PER_RPC, f"only {outcomes.calls} messages sent: {dict(outcomes.codes)}"
    print(f"fuzzed: {outcomes.calls} messages, {dict(outcomes.codes)}")
    after = snapshot(t)
    assert after[:-1] == before[:-1], f"stored data changed; codes {dict(outcomes.codes)}"
    # What was accepted was recorded: the training log dropped nothing (e.g. a value it cannot write).
    assert after[-1] == before[-1], f"the training log dropped {after[-1] - before[-1]} accepted records"


# ---- lookups and deletions with random ids ------------------------------------------------------

ID_RPCS = {
    "GetSession": lambda i, n, tok: pb.GetSessionRequest(session_id=i, include_messages=n % 2 == 0),
    "DeleteSession": lambda i, n, tok: pb.DeleteSessionRequest(session_id=i),
    "ClearSession": lambda i, n, tok: pb.ClearSessionRequest(session_id=i),
    "ForkSession": lambda i, n, tok: pb.ForkSessionRequest(session_id=i, message_id=tok),
    "RewindSession": lambda i, n, tok: pb.RewindSessionRequest(session_id=i, message_id=tok),
    "UpdateSession": lambda i, n, tok: pb.UpdateSessionRequest(
        session_id=i, settings=pb.SessionSettings(writable_paths=[tok]), update_mask={"paths": [tok]}
    ),
    "CancelRun": lambda i, n, tok: pb.CancelRunRequest(run_id=i),
    "GetRun": lambda i, n, tok: pb.GetRunRequest(run_id=i),
    "ListRuns": lambda i, n, tok: pb.ListRunsRequest(session_id=i, page_size=n, page_token=tok),
    "GetWorkspace": lambda i, n, tok: executor_pb2.GetWorkspaceRequest(workspace_id=i),
    "DeleteWorkspace": lambda i, n, tok: executor_pb2.DeleteWorkspaceRequest(workspace_id=i),
    "PauseWorkspace": lambda i, n, tok: executor_pb2.PauseWorkspaceRequest(workspace_id=i),
    "ResumeWorkspace": lambda i, n, tok: executor_pb2.ResumeWorkspaceRequest(workspace_id=i),
    "DeleteSnapshot": lambda i, n, tok: executor_pb2.DeleteSnapshotRequest(snapshot_id=i),
}


@pytest.mark.parametrize("rpc", sorted(ID_RPCS))
def test_id_rpcs_refuse_random_ids_and_change_nothing(target: Target, rpc: str) -> None:
    before = snapshot(target)
    outcomes = Outcomes()
    method = getattr(target.stub, rpc)

    @FUZZ
    @given(any_id=ids(target), number=fz.hostile_int(5), token=fz.hostile_text())
    def fuzz(any_id: str, number: int, token: str) -> None:
        number = max(-(2**31), min(2**31 - 1, number))
        response = outcomes.unary(method, ID_RPCS[rpc](any_id, number, token))
        assert response is None, f"{rpc}({any_id!r}) succeeded on a random id"

    fuzz()
    check_alive_and_unchanged(target, before, outcomes)


def test_stream_run_random_ids_and_indexes(target: Target) -> None:
    before = snapshot(target)
    outcomes = Outcomes()

    @FUZZ
    @given(run_id=st.one_of(st.just(target.run_id), ids(target)), after=fz.hostile_int(3))
    def fuzz(run_id: str, after: int) -> None:
        request = pb.StreamRunRequest(run_id=run_id, after_index=after)
        events, ok = outcomes.stream(target.stub.StreamRun(request, timeout=10), request)
        if ok:
            assert run_id == target.run_id, f"StreamRun({run_id!r}) answered for a random id"
            assert all(r.event.index > after for r in events), short(request)

    fuzz()
    check_alive_and_unchanged(target, before, outcomes)


def test_list_sessions_random_pages(target: Target) -> None:
    before = snapshot(target)
    outcomes = Outcomes()

    @FUZZ
    @given(request=fz.message(pb.ListSessionsRequest.DESCRIPTOR))
    def fuzz(request: pb.ListSessionsRequest) -> None:
        response = outcomes.unary(target.stub.ListSessions, request)
        if response is not None:
            assert len(response.sessions) <= max(request.page_size, 50)

    fuzz()
    check_alive_and_unchanged(target, before, outcomes)


def test_create_session_hostile_requests(target: Target) -> None:
    """Whatever is accepted is stored as given and deleted again; the rest is refused precisely."""
    before = snapshot(target)
    outcomes = Outcomes()
    created: list[str] = []

    @FUZZ
    @given(request=fz.message(pb.CreateSessionRequest.DESCRIPTOR))
    def fuzz(request: pb.CreateSessionRequest) -> None:
        response = outcomes.unary(target.stub.CreateSession, request)
        if response is not None:
            created.append(response.session.id)
            got = target.stub.GetSession(pb.GetSessionRequest(session_id=response.session.id), timeout=10)
            assert got.session.title == request.title
            assert dict(got.session.labels) == dict(request.labels)
            target.stub.DeleteSession(pb.DeleteSessionRequest(session_id=response.session.id), timeout=30)

    try:
        fuzz()
    finally:
        for session_id in created:
            try:
                target.stub.DeleteSession(pb.DeleteSessionRequest(session_id=session_id), timeout=30)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
    check_alive_and_unchanged(target, before, outcomes)


def test_send_message_hostile_requests(target: Target) -> None:
    """Random sessions, contents and conflict policies; runs on a scratch session reach an end."""
    before = snapshot(target)
    outcomes = Outcomes()
    scratch = target.stub.CreateSession(pb.CreateSessionRequest(title="scratch"), timeout=10).session.id
    session_ids = st.one_of(st.just(scratch), ids(target))

    @FUZZ
    @given(
        request=fz.message(pb.SendMessageRequest.DESCRIPTOR, overrides={"session_id": session_ids}),
    )
    def fuzz(request: pb.SendMessageRequest) -> None:
        if request.session_id == target.session_id:
            return
        events, ok = outcomes.stream(target.stub.SendMessage(request, timeout=30), request)
        if ok:
            # With batch_events a message carries its events in `events`, else one in `event`.
            run_events = [e for r in events for e in ([r.event] if r.HasField("event") else r.events)]
            assert run_events, short(request)
            last = run_events[-1]
            assert last.WhichOneof("event") in ("run_completed", "run_failed", "run_cancelled"), short(last)
            assert [e.index for e in run_events] == list(range(1, len(run_events) + 1)), short(request)

    try:
        fuzz()
    finally:
        target.stub.DeleteSession(pb.DeleteSessionRequest(session_id=scratch), timeout=30)
    check_alive_and_unchanged(target, before, outcomes)


def test_generate_hostile_conversations(target: Target) -> None:
    before = snapshot(target)
    outcomes = Outcomes()

    @FUZZ
    @given(request=fz.message(pb.GenerateRequest.DESCRIPTOR))
    def fuzz(request: pb.GenerateRequest) -> None:
        outcomes.stream(target.stub.Generate(request, timeout=30), request)

    fuzz()
    check_alive_and_unchanged(target, before, outcomes)


def test_log_events_hostile_feedback(target: Target) -> None:
    before = snapshot(target)
    outcomes = Outcomes()
    events = st.lists(fz.message(trace_pb2.FeedbackEvent.DESCRIPTOR, fz.odd_ids(target.real_ids)), max_size=5)

    @FUZZ
    @given(events=events)
    def fuzz(events: list[trace_pb2.FeedbackEvent]) -> None:
        request = pb.LogEventsRequest(events=events)
        response = outcomes.unary(target.stub.LogEvents, request)
        if response is not None:
            assert response.accepted == len(events)

    fuzz()
    check_alive_and_unchanged(target, before, outcomes)


def test_execute_forwarding_hostile_streams(target: Target) -> None:
    """The executor's Execute fuzz, through the agent's forwarding."""
    before = snapshot(target)
    outcomes = Outcomes()

    @FUZZ
    @given(requests=fz.execute_streams(target.workspace_id, target.shell_session_id))
    def fuzz(requests: list[executor_pb2.ExecuteRequest]) -> None:
        responses, ok = outcomes.stream(target.stub.Execute(iter(requests), timeout=15), requests[0])
        if ok:
            assert responses and responses[-1].end_reason != executor_pb2.END_REASON_UNSPECIFIED, short(
                requests
            )

    fuzz()
    check_alive_and_unchanged(target, before, outcomes)


FIELDLESS = ("GetServerInfo", "ListWorkspaces")


@pytest.mark.parametrize("rpc", FIELDLESS)
def test_fieldless_rpcs_ignore_unknown_fields(target: Target, rpc: str) -> None:
    """Requests without fields, sent as the bytes of other random messages (all unknown fields)."""
    before = snapshot(target)
    outcomes = Outcomes()
    channel = grpc.insecure_channel(target.agent.target)
    method = channel.unary_unary(
        f"/firebox.agent.v1.AgentService/{rpc}",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )

    @FUZZ
    @given(payload=fz.message(pb.CreateSessionRequest.DESCRIPTOR).map(lambda m: m.SerializeToString()))
    def fuzz(payload: bytes) -> None:
        assert outcomes.unary(method, payload) is not None

    try:
        fuzz()
    finally:
        channel.close()
    check_alive_and_unchanged(target, before, outcomes)


# ---- every other RPC: a request builder each, 1,000 messages in batches -------------------------


def check_create_workspace(t: Target, request: Any, response: Any) -> None:
    # Only the strategy's valid form (a fresh fz- name, no policy, no labels) may be accepted.
    t.stub.DeleteWorkspace(
        executor_pb2.DeleteWorkspaceRequest(workspace_id=response.workspace.id), timeout=60
    )
    assert request.name.startswith("fz-") and not request.HasField("policy"), short(request)


def check_create_workspace_with_progress(t: Target, request: Any, responses: Any) -> None:
    # The stream ends with the response (a plain workspace streams nothing before it).
    assert len(responses) == 1 and responses[0].HasField("done"), short(request)
    check_create_workspace(t, request, responses[0].done)


def session_ids(t: Target) -> st.SearchStrategy[str]:
    return st.one_of(st.just(t.scratch_id), ids(t), ids(t))


def check_list_tools(t: Target, request: pb.ListToolsRequest, response: pb.ListToolsResponse) -> None:
    assert request.session_id in ("", t.scratch_id), f"ListTools answered for {short(request)}"


def approval_requests(t: Target) -> st.SearchStrategy[pb.ResolveApprovalRequest]:
    # The real (finished) run now and then: there is no pending approval to resolve in it either.
    runs = st.one_of(st.just(t.run_id), ids(t))
    return fz.message(pb.ResolveApprovalRequest.DESCRIPTOR, fz.odd_ids(t.real_ids), {"run_id": runs})


def never(t: Target, request: Any, answer: Any) -> None:
    raise AssertionError(f"accepted {short(request)}")


def check_compact(t: Target, request: pb.CompactSessionRequest, responses: list[Any]) -> None:
    assert request.session_id == t.scratch_id, f"compacted {short(request)}"
    assert responses and responses[-1].HasField("compacted"), short(responses)


def edit_requests(t: Target) -> st.SearchStrategy[pb.EditMessageRequest]:
    overrides = {
        "session_id": session_ids(t),
        "message_id": st.one_of(st.just(t.scratch_message_id), ids(t)),
        "content": st.one_of(st.just("edited"), fz.hostile_text()),
    }
    hostile = fz.message(pb.EditMessageRequest.DESCRIPTOR, fz.odd_ids(t.real_ids), overrides)

    @st.composite
    def aimed(draw: st.DrawFn) -> pb.EditMessageRequest:
        # The scratch session's user message, a valid action, hostile text and request ids.
        request = draw(hostile)
        request.session_id, request.message_id = t.scratch_id, t.scratch_message_id
        request.action = draw(st.sampled_from([pb.EDIT_ACTION_SAVE, pb.EDIT_ACTION_RESEND]))
        request.content = "edited " + draw(fz.hostile_text())
        return request

    return st.one_of(hostile, aimed())


def check_edit(t: Target, request: pb.EditMessageRequest, responses: list[pb.EditMessageResponse]) -> None:
    assert request.session_id == t.scratch_id and request.message_id == t.scratch_message_id, short(request)
    assert responses and responses[0].message.content == request.content, short(responses[:1])
    if request.action == pb.EDIT_ACTION_RESEND:
        events = [e for r in responses[1:] for e in ([r.event] if r.HasField("event") else r.events)]
        assert events and events[-1].WhichOneof("event") in RUN_ENDS, short(request)
    else:
        assert len(responses) == 1, short(responses)


def check_snapshot(t: Target, request: Any, response: Any) -> None:
    t.stub.DeleteSnapshot(executor_pb2.DeleteSnapshotRequest(snapshot_id=response.snapshot.id), timeout=60)
    assert request.workspace_id == t.workspace_id, f"snapshot of a random workspace: {short(request)}"
    assert (response.snapshot.workspace_id, response.snapshot.name) == (t.workspace_id, request.name)


def check_list_snapshots(t: Target, request: Any, response: Any) -> None:
    # A filter (a random id lists nothing); no snapshot outlives the test that made it.
    assert not response.snapshots, short(response)


GENERIC: dict[str, Fuzzed] = {
    "CreateSnapshot": Fuzzed(lambda t: fz.create_snapshot_requests(t.workspace_id, ids(t)), check_snapshot),
    "ListSnapshots": Fuzzed(
        lambda t: st.builds(
            executor_pb2.ListSnapshotsRequest,
            workspace_id=st.one_of(st.just(""), st.just(t.workspace_id), ids(t)),
        ),
        check_list_snapshots,
    ),
    "CreateWorkspace": Fuzzed(
        lambda t: fz.create_workspace_requests().map(lambda c: c[0]), check_create_workspace
    ),
    "CreateWorkspaceWithProgress": Fuzzed(
        lambda t: fz.create_workspace_requests().map(lambda c: c[0]), check_create_workspace_with_progress
    ),
    "ListTools": Fuzzed(
        lambda t: st.builds(pb.ListToolsRequest, session_id=st.one_of(st.just(""), session_ids(t))),
        check_list_tools,
    ),
    "ResolveApproval": Fuzzed(approval_requests, never, accepts=False),
    "CompactSession": Fuzzed(
        lambda t: st.builds(pb.CompactSessionRequest, session_id=session_ids(t)), check_compact
    ),
    "EditMessage": Fuzzed(edit_requests, check_edit),
}


@pytest.mark.parametrize("rpc", sorted(GENERIC))
def test_rpc_hostile_requests(target: Target, rpc: str) -> None:
    """Batches of generated requests over one channel: accepted ones satisfy the RPC's check."""
    before = snapshot(target)
    outcomes = fuzz_rpc(target, target.stub, SERVICE.methods_by_name[rpc], GENERIC[rpc])
    check_alive_and_unchanged(target, before, outcomes)


def answer(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str, Any]:
    """(code, details, answer) of a call; a server stream is drained into a list."""
    try:
        got = call()
        if not isinstance(got, Message):
            got = list(got)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", None
    return grpc.StatusCode.OK, "", got


def test_huge_fields_near_the_message_limit(target: Target) -> None:
    """Just under 16 MiB in one field is refused, naming the field; the same RPCs accept a field
    at a size their limit allows (the docs' numbers, firebox/common/limits.py)."""
    before = snapshot(target)
    big = "a" * fz.NEAR_LIMIT
    stub = target.stub

    def event(text: str) -> pb.LogEventsRequest:
        shown = trace_pb2.FEEDBACK_KIND_SUGGESTION_SHOWN
        return pb.LogEventsRequest(events=[trace_pb2.FeedbackEvent(kind=shown, suggested_text=text)])

    refused = {
        "title": lambda: stub.CreateSession(pb.CreateSessionRequest(title=big), timeout=30),
        "session_id": lambda: stub.GetSession(pb.GetSessionRequest(session_id=big), timeout=30),
        "content": lambda: stub.SendMessage(
            pb.SendMessageRequest(session_id=target.scratch_id, content=big), timeout=30
        ),
        "messages": lambda: stub.Generate(
            pb.GenerateRequest(messages=[pb.Message(role=pb.ROLE_USER, content=big)]), timeout=30
        ),
        "events": lambda: stub.LogEvents(event(big), timeout=30),
        "edited_command": lambda: stub.ResolveApproval(
            pb.ResolveApprovalRequest(
                run_id=target.run_id,
                tool_call_id="c",
                decision=pb.APPROVAL_DECISION_APPROVE_EDITED,
                edited_command=big,
            ),
            timeout=30,
        ),
    }
    for field, call in refused.items():
        code, details, _ = answer(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in details, (field, code, details[:200])
        assert len(details) <= 1024 and "a" * 100 not in details, (field, details[:200])

    # At the limits (firebox/common/limits.py): the whole conversation text allowed runs to the
    # end, and the whole suggestion allowed is logged.
    within = "b" * field_limit(pb.SendMessageRequest.DESCRIPTOR.fields_by_name["content"])
    code, details, responses = answer(
        lambda: stub.SendMessage(
            pb.SendMessageRequest(session_id=target.scratch_id, content=within), timeout=60
        )
    )
    assert code == grpc.StatusCode.OK, details
    assert responses[-1].event.WhichOneof("event") == "run_completed", short(responses[-1])
    code, details, responses = answer(
        lambda: stub.Generate(
            pb.GenerateRequest(messages=[pb.Message(role=pb.ROLE_USER, content=within)]), timeout=60
        )
    )
    assert code == grpc.StatusCode.OK and responses, details
    code, details, response = answer(
        lambda: stub.LogEvents(
            event("c" * field_limit(trace_pb2.FeedbackEvent.DESCRIPTOR.fields_by_name["suggested_text"])),
            timeout=30,
        )
    )
    assert code == grpc.StatusCode.OK and response.accepted == 1, details
    after = snapshot(target)
    assert after[:-1] == before[:-1] and after[-1] == before[-1], "the reference session changed"


# Which test fuzzes each RPC; `test_every_rpc_is_fuzzed` holds it to the service descriptor.
FUZZED: dict[str, Callable[..., Any]] = {
    **{rpc: test_id_rpcs_refuse_random_ids_and_change_nothing for rpc in ID_RPCS},
    **{rpc: test_fieldless_rpcs_ignore_unknown_fields for rpc in FIELDLESS},
    "StreamRun": test_stream_run_random_ids_and_indexes,
    "ListSessions": test_list_sessions_random_pages,
    "CreateSession": test_create_session_hostile_requests,
    "SendMessage": test_send_message_hostile_requests,
    "Generate": test_generate_hostile_conversations,
    "LogEvents": test_log_events_hostile_feedback,
    "Execute": test_execute_forwarding_hostile_streams,
    **{rpc: test_rpc_hostile_requests for rpc in GENERIC},
}


def test_every_rpc_is_fuzzed() -> None:
    assert not unfuzzed(SERVICE, FUZZED), unfuzzed(SERVICE, FUZZED)
