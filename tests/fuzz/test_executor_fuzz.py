"""Every RPC of the executor fuzzed with hypothesis-generated messages (1,000 per RPC).

One executor process for the module (docker backend), one channel, short deadlines. Each test
asserts that no call ends INTERNAL or UNKNOWN (nor hangs), that the executor is still SERVING,
and, for lookups and deletions with random ids, that the stored workspaces and sessions are
exactly what they were, files included.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.fuzz import strategies as fz
from tests.fuzz.support import FUZZ, Outcomes, serving, short
from tests.support.executor_server import ExecutorProcess, remove_owned_workspaces

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

MARKER = "fuzz-marker-contents\n"


@dataclass
class Target:
    """The executor under fuzz: its address, a stub, a workspace and a session that must survive."""

    process: ExecutorProcess
    stub: executor_pb2_grpc.ExecutorServiceStub
    workspace_id: str
    session_id: str

    @property
    def real_ids(self) -> list[str]:
        return [self.workspace_id, self.session_id]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    config_dir = tmp_path_factory.mktemp("fuzz-executor")
    process = ExecutorProcess(config_dir, backend="docker")
    try:
        process.start()
        with grpc.insecure_channel(process.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            workspace = stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="fuzz"), timeout=60).workspace
            session = stub.CreateSession(
                pb.CreateSessionRequest(workspace_id=workspace.id), timeout=30
            ).session
            run(
                stub,
                pb.ExecuteRequest(
                    workspace_id=workspace.id, script=f"printf %s {shlex.quote(MARKER)} > marker"
                ),
            )
            yield Target(process, stub, workspace.id, session.id)
    finally:
        process.kill()
        remove_owned_workspaces(config_dir)


def run(
    stub: executor_pb2_grpc.ExecutorServiceStub, first: pb.ExecuteRequest
) -> tuple[bytes, pb.ExecuteResponse]:
    responses = list(stub.Execute(iter([first]), timeout=30))
    return b"".join(r.stdout_data for r in responses), responses[-1]


def snapshot(t: Target) -> tuple[object, ...]:
    """What must not change: workspaces (id, name, status), sessions (id, workspace), the marker file."""
    workspaces = t.stub.ListWorkspaces(pb.ListWorkspacesRequest(), timeout=30).workspaces
    sessions = t.stub.ListSessions(pb.ListSessionsRequest(), timeout=30).sessions
    marker, _ = run(t.stub, pb.ExecuteRequest(workspace_id=t.workspace_id, argv=["cat", "/workspace/marker"]))
    return (
        sorted((w.id, w.name, w.status) for w in workspaces),
        sorted((s.id, s.workspace_id) for s in sessions),
        marker,
        t.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).dropped_log_records,
    )


def ids(t: Target) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(fz.odd_ids(t.real_ids)), fz.hostile_text())


def check_alive_and_unchanged(t: Target, before: tuple[object, ...], outcomes: Outcomes) -> None:
    assert serving(t.process.target), f"executor not SERVING after fuzzing; codes {dict(outcomes.codes)}"
    assert t.process.proc is not None and t.process.proc.poll() is None, t.process.output()[-3000:]
    after = snapshot(t)
    assert after[:-1] == before[:-1], f"stored data changed; codes {dict(outcomes.codes)}"
    # Every accepted Execute reached the training log (none dropped as unwritable).
    assert after[-1] == before[-1], f"the training log dropped {after[-1] - before[-1]} records"


# ---- lookups and deletions with random ids: read-only for everything that exists -------------------

ID_RPCS = {
    "GetWorkspace": lambda i: pb.GetWorkspaceRequest(workspace_id=i),
    "StartWorkspace": lambda i: pb.StartWorkspaceRequest(workspace_id=i),
    "StopWorkspace": lambda i: pb.StopWorkspaceRequest(workspace_id=i),
    "DeleteWorkspace": lambda i: pb.DeleteWorkspaceRequest(workspace_id=i),
    "SetWritablePaths": lambda i: pb.SetWritablePathsRequest(workspace_id=i, writable_paths=["src"]),
    "CloseSession": lambda i: pb.CloseSessionRequest(session_id=i),
    "ListSessions": lambda i: pb.ListSessionsRequest(workspace_id=i),
}


@pytest.mark.parametrize("rpc", sorted(ID_RPCS))
def test_id_rpcs_refuse_random_ids_and_change_nothing(target: Target, rpc: str) -> None:
    """Random and near-miss ids: NOT_FOUND / INVALID_ARGUMENT, never a bug status; nothing changes."""
    before = snapshot(target)
    outcomes = Outcomes()
    method = getattr(target.stub, rpc)
    real = set(target.real_ids)

    @FUZZ
    @given(workspace_or_session_id=ids(target))
    def fuzz(workspace_or_session_id: str) -> None:
        if workspace_or_session_id in real or (rpc == "ListSessions" and not workspace_or_session_id):
            return  # the real ids themselves (or "all") are not random input
        response = outcomes.unary(method, ID_RPCS[rpc](workspace_or_session_id))
        if rpc != "ListSessions":
            assert response is None, f"{rpc}({workspace_or_session_id!r}) succeeded on a random id"

    fuzz()
    check_alive_and_unchanged(target, before, outcomes)


@pytest.mark.parametrize("rpc", ["ListWorkspaces", "GetServerInfo"])
def test_fieldless_rpcs_ignore_unknown_fields(target: Target, rpc: str) -> None:
    """Requests without fields, sent as the bytes of other random messages (all unknown fields)."""
    before = snapshot(target)
    outcomes = Outcomes()
    raw = target.process.target
    channel = grpc.insecure_channel(raw)
    method = channel.unary_unary(
        f"/firebox.executor.v1.ExecutorService/{rpc}",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    foreign = st.one_of(
        fz.message(pb.CreateWorkspaceRequest.DESCRIPTOR), fz.message(pb.ExecuteRequest.DESCRIPTOR)
    ).map(lambda m: m.SerializeToString())

    @FUZZ
    @given(payload=foreign)
    def fuzz(payload: bytes) -> None:
        assert outcomes.unary(method, payload) is not None, f"{rpc} refused a request of unknown fields"

    try:
        fuzz()
    finally:
        channel.close()
    check_alive_and_unchanged(target, before, outcomes)


# ---- creation: mostly invalid, the few valid ones removed -------------------------------------------

POISONS = (
    ("image", "NOT A VALID IMAGE\x00"),
    ("env", {"MY_API_KEY": "x"}),
    ("env", {"1BAD NAME": "x"}),
    ("labels", {"": "x"}),
    ("name", "-starts-with-a-dash\x00"),
    ("memory_bytes", -5),
    ("pids_limit", -1),
    ("tmp_bytes", 1),
    ("user", "root;id"),
)


@st.composite
def create_workspace_requests(draw: st.DrawFn) -> tuple[pb.CreateWorkspaceRequest, bool]:
    """(request, poisoned). Never a random image reference that is valid: that would try a pull."""
    request = draw(
        fz.message(
            pb.CreateWorkspaceRequest.DESCRIPTOR,
            overrides={
                "image": st.sampled_from(["", "firebox-busybox:latest", "Bad Image", "a" * 300, "\x00"])
            },
        )
    )
    # One in 25 is valid. (Not 0: hypothesis draws the bounds of a range far more often than 1/25.)
    poisoned = draw(st.integers(0, 24)) != 13
    if poisoned:
        field, value = draw(st.sampled_from(POISONS))
        if field in ("memory_bytes", "pids_limit", "tmp_bytes", "user"):
            setattr(request.policy, field, value)
        elif isinstance(value, dict):
            getattr(request, field).update(value)
        else:
            setattr(request, field, value)
    else:
        # A valid one now and then: a fresh name, small policy the engine accepts, a variable.
        request.name = f"fz-{draw(st.integers(0, 10**9))}"
        request.image = ""
        request.ClearField("policy")
        request.ClearField("labels")
        request.env.clear()
        request.env["FUZZ_VAR"] = draw(st.text(max_size=30).filter(lambda s: "\x00" not in s))
    return request, poisoned


def test_create_workspace_hostile_requests(target: Target) -> None:
    """Invalid requests get an error naming the field; the few valid ones work and are deleted."""
    before = snapshot(target)
    outcomes = Outcomes()
    created: list[str] = []

    @FUZZ
    @given(case=create_workspace_requests())
    def fuzz(case: tuple[pb.CreateWorkspaceRequest, bool]) -> None:
        request, poisoned = case
        response = outcomes.unary(target.stub.CreateWorkspace, request)
        assert not (poisoned and response is not None), f"accepted an invalid request: {short(request)}"
        if response is not None:
            created.append(response.workspace.id)
            target.stub.DeleteWorkspace(
                pb.DeleteWorkspaceRequest(workspace_id=response.workspace.id), timeout=60
            )

    try:
        fuzz()
    finally:
        for workspace_id in created:
            try:
                target.stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=workspace_id), timeout=60)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
    assert outcomes.codes["INVALID_ARGUMENT"] > 500 and 1 <= len(created) <= 150, (
        dict(outcomes.codes),
        len(created),
    )
    check_alive_and_unchanged(target, before, outcomes)


def test_create_session_hostile_requests(target: Target) -> None:
    """Random workspace ids and client-chosen session ids; sessions that were made are closed."""
    before = snapshot(target)
    outcomes = Outcomes()
    # One request in five names the real workspace (a shell is started and closed for each valid one).
    workspace_ids = st.one_of(*[ids(target)] * 4, st.just(target.workspace_id))

    @FUZZ
    @given(workspace_id=workspace_ids, session_id=fz.hostile_text(fz.odd_ids([target.session_id])))
    def fuzz(workspace_id: str, session_id: str) -> None:
        request = pb.CreateSessionRequest(workspace_id=workspace_id, session_id=session_id)
        response = outcomes.unary(target.stub.CreateSession, request)
        if response is not None:
            assert response.session.id != target.session_id
            target.stub.CloseSession(pb.CloseSessionRequest(session_id=response.session.id), timeout=30)

    fuzz()
    check_alive_and_unchanged(target, before, outcomes)


# ---- Execute --------------------------------------------------------------------------------------


def test_execute_hostile_streams(target: Target) -> None:
    """Random first and later messages: refused precisely, or run to a final message."""
    before = snapshot(target)
    outcomes = Outcomes()

    @FUZZ
    @given(requests=fz.execute_streams(target.workspace_id, target.session_id))
    def fuzz(requests: list[pb.ExecuteRequest]) -> None:
        responses, ok = outcomes.stream(target.stub.Execute(iter(requests), timeout=15), requests[0])
        if ok and requests[0].background:
            # Half-closed at once: the execution's id, and it runs on (AttachExecution follows it).
            assert responses and responses[0].execution_id, short(requests)
        elif ok:
            # A stream that ends OK ends with the final message: why the program ended.
            assert responses and responses[-1].end_reason != pb.END_REASON_UNSPECIFIED, short(requests)

    fuzz()
    # The shared session may have been ended by a stop or an `exit`; only workspaces and files must stay.
    after = snapshot(target)
    assert after[0] == before[0] and after[2] == before[2], dict(outcomes.codes)
    assert serving(target.process.target)
    assert after[-1] == before[-1], f"the training log dropped {after[-1] - before[-1]} records"


def test_huge_fields_near_the_message_limit(target: Target) -> None:
    """A few requests with one field just under 16 MiB, and one just over: precise refusals."""
    before = snapshot(target)
    outcomes = Outcomes()
    big = "a" * fz.NEAR_LIMIT
    over = "a" * (16 * 1024 * 1024 + 1024)
    for method, request in (
        (target.stub.GetWorkspace, pb.GetWorkspaceRequest(workspace_id=big)),
        (target.stub.CreateWorkspace, pb.CreateWorkspaceRequest(name=big)),
        (target.stub.CreateWorkspace, pb.CreateWorkspaceRequest(env={"BIG": big})),
        (
            target.stub.CreateSession,
            pb.CreateSessionRequest(workspace_id=target.workspace_id, session_id=big),
        ),
        (target.stub.CloseSession, pb.CloseSessionRequest(session_id=over)),
    ):
        assert outcomes.unary(method, request) is None, f"accepted a 16 MiB field: {short(request, 200)}"
    for first in (
        pb.ExecuteRequest(workspace_id=target.workspace_id, script=big),
        pb.ExecuteRequest(workspace_id=target.workspace_id, argv=["true"], env={"X": big}),
        pb.ExecuteRequest(workspace_id=target.workspace_id, argv=["true"], known_id=big),
    ):
        _, ok = outcomes.stream(target.stub.Execute(iter([first]), timeout=30), "huge first message")
        assert not ok, "a first message with a 16 MiB field was accepted"
    # 16 MiB of argv and of stdin are accepted, and slow: see tests/chaos/test_large_data.py.
    check_alive_and_unchanged(target, before, outcomes)


def test_fuzz_left_no_extra_workspaces_on_the_engine(target: Target) -> None:
    """Containers labelled for this executor are exactly those it lists (nothing leaked by fuzzing)."""
    import docker

    from executor_service.backends.docker import LABEL_OWNER, container_name

    owner = (target.process.config_dir / "instance-id").read_text().strip()
    client = docker.from_env()
    try:
        labelled = {
            c.name for c in client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"})
        }
    finally:
        client.close()
    listed = target.stub.ListWorkspaces(pb.ListWorkspacesRequest(), timeout=30).workspaces
    assert [w.id for w in listed] == [target.workspace_id]
    assert labelled == {container_name(target.workspace_id)}
