"""Every RPC of the executor fuzzed with hypothesis-generated messages (1,000 per RPC).

One executor process for the module (docker backend), one channel, short deadlines. Each test
asserts that no call ends INTERNAL or UNKNOWN (nor hangs), that the executor is still SERVING,
that the stored workspaces, sessions and the marker file are exactly what they were, and that
nothing in the workspace's container outside /workspace was created or changed.

Which test fuzzes which RPC is `FUZZED`, checked against the service descriptor: an RPC added
to the proto without a fuzz test fails `test_every_rpc_is_fuzzed`. A new RPC usually needs only
an entry in `GENERIC` (a request builder and what an accepted answer must satisfy).
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.fuzz import strategies as fz
from tests.fuzz.support import (
    FUZZ,
    MESSAGES_PER_RPC,
    UNARY_DEADLINE,
    Fuzzed,
    Outcomes,
    fuzz_rpc,
    serving,
    short,
    unfuzzed,
)
from tests.support.executor_server import ExecutorProcess, remove_owned_workspaces

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

MARKER = "fuzz-marker-contents\n"
SERVICE = pb.DESCRIPTOR.services_by_name["ExecutorService"]

# Named tools for Step: one reading a path, one listing a directory (hostile paths reach both).
TOOLS_TOML = r"""
[[tools]]
name = "cat"
description = "Print a file"
command = ["cat", "--", "{path}"]
read_only = true
timeout_seconds = 10
[tools.args_schema]
type = "object"
required = ["path"]
properties.path = { type = "string", minLength = 1 }

[[tools]]
name = "ls"
description = "List a directory"
command = ["ls", "-la", "{path}"]
read_only = true
[tools.args_schema]
type = "object"
properties.path = { type = "string", default = "." }
"""
# What the workspace holds besides the marker: links out of /workspace, and a directory.
LAYOUT = " && ".join(
    ["mkdir -p dir", *(f"ln -s {shlex.quote(to)} {shlex.quote(name)}" for name, to in fz.SYMLINKS.items())]
)
KEEP = ("marker", "dir", *fz.SYMLINKS)
CLEAN = (
    "cd /workspace && find . -mindepth 1 -maxdepth 1 "
    + " ".join(f"! -name {name}" for name in KEEP)
    + " -exec rm -rf {} + ; find dir -mindepth 1 -delete"
)
# Every path outside /workspace, files with size, mode and mtime. Directories by name only, and
# the executor's own per-process state left out (its pipes under /run/firebox, the shell's
# /tmp/.firebox.PID): both come and go with every command, the snapshot's own included.
_PRUNE = (
    "find / \\( -path /proc -o -path /sys -o -path /dev -o -path /workspace -o -path /run/firebox"
    " -o -path '/tmp/.firebox.*' \\) -prune"
)
OUTSIDE = (
    f"{_PRUNE} -o -type d -print | sort && {_PRUNE} -o ! -type d -print | sort | xargs stat -c '%n %s %a %Y'"
)


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
    tools = config_dir / "tools.toml"
    tools.write_text(TOOLS_TOML)
    process = ExecutorProcess(config_dir, backend="docker", args=["--tools-file", str(tools)])
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
                    workspace_id=workspace.id,
                    script=f"printf %s {shlex.quote(MARKER)} > marker && {LAYOUT}",
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
    """What must not change: workspaces (id, name, status), sessions (id, workspace), the marker
    file and the links, everything outside /workspace; last, the training log's dropped records."""
    workspaces = t.stub.ListWorkspaces(pb.ListWorkspacesRequest(), timeout=30).workspaces
    sessions = t.stub.ListSessions(pb.ListSessionsRequest(), timeout=30).sessions
    marker, _ = run(
        t.stub,
        pb.ExecuteRequest(
            workspace_id=t.workspace_id,
            script="cat /workspace/marker && cd /workspace && for l in *-link escape loop-?; do readlink $l; done",
        ),
    )
    outside, _ = run(t.stub, pb.ExecuteRequest(workspace_id=t.workspace_id, script=OUTSIDE))
    return (
        sorted((w.id, w.name, w.status) for w in workspaces),
        sorted((s.id, s.workspace_id) for s in sessions),
        marker,
        outside,
        t.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).dropped_log_records,
    )


def changed_outside(before: bytes, after: bytes) -> str:
    old, new = set(before.decode().splitlines()), set(after.decode().splitlines())
    return f"changed outside /workspace: gone {sorted(old - new)[:10]}, new {sorted(new - old)[:10]}"


def ids(t: Target) -> st.SearchStrategy[str]:
    """Random and near-miss ids, never a real one."""
    real = set(t.real_ids)
    return st.one_of(st.sampled_from(fz.odd_ids(t.real_ids)), fz.hostile_text()).filter(
        lambda i: i not in real
    )


def workspace_ids(t: Target) -> st.SearchStrategy[str]:
    """The real workspace two times in three (where paths are checked), else a random id."""
    return st.one_of(st.just(t.workspace_id), st.just(t.workspace_id), ids(t))


# Files that exist, for the RPCs that read (an upload must not overwrite the marker).
EXISTING = ("marker", "/workspace/marker", "dir/../marker", "./marker")


def check_alive_and_unchanged(
    t: Target, before: tuple[object, ...], outcomes: Outcomes, min_calls: int = MESSAGES_PER_RPC
) -> None:
    assert serving(t.process.target), f"executor not SERVING after fuzzing; codes {dict(outcomes.codes)}"
    assert t.process.proc is not None and t.process.proc.poll() is None, t.process.output()[-3000:]
    assert outcomes.calls >= min_calls, f"only {outcomes.calls} messages sent: {dict(outcomes.codes)}"
    print(f"fuzzed: {outcomes.calls} messages, {dict(outcomes.codes)}")
    after = snapshot(t)
    assert after[3] == before[3], changed_outside(before[3], after[3])
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
    "PauseWorkspace": lambda i: pb.PauseWorkspaceRequest(workspace_id=i),
    "ResumeWorkspace": lambda i: pb.ResumeWorkspaceRequest(workspace_id=i),
    "CloseSession": lambda i: pb.CloseSessionRequest(session_id=i),
    "StopExecution": lambda i: pb.StopExecutionRequest(execution_id=i),
    "DeleteSnapshot": lambda i: pb.DeleteSnapshotRequest(snapshot_id=i),
    "ListSessions": lambda i: pb.ListSessionsRequest(workspace_id=i),
}


@pytest.mark.parametrize("rpc", sorted(ID_RPCS))
def test_id_rpcs_refuse_random_ids_and_change_nothing(target: Target, rpc: str) -> None:
    """Random and near-miss ids: NOT_FOUND / INVALID_ARGUMENT, never a bug status; nothing changes."""
    before = snapshot(target)
    outcomes = Outcomes()
    method = getattr(target.stub, rpc)
    # An empty workspace id lists every session: not a random id.
    random_ids = ids(target).filter(bool) if rpc == "ListSessions" else ids(target)

    @FUZZ
    @given(workspace_or_session_id=random_ids)
    def fuzz(workspace_or_session_id: str) -> None:
        response = outcomes.unary(method, ID_RPCS[rpc](workspace_or_session_id))
        if rpc != "ListSessions":
            assert response is None, f"{rpc}({workspace_or_session_id!r}) succeeded on a random id"

    fuzz()
    check_alive_and_unchanged(target, before, outcomes)


FIELDLESS = ("ListWorkspaces", "GetServerInfo", "ListTools")


@pytest.mark.parametrize("rpc", FIELDLESS)
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


def created_with_progress(stub: Any, outcomes: Outcomes, request: pb.CreateWorkspaceRequest) -> Any:
    """CreateWorkspaceWithProgress drained: its final response, or None when it was refused."""
    messages, ok = outcomes.stream(stub.CreateWorkspaceWithProgress(request, timeout=UNARY_DEADLINE), request)
    if not ok:
        return None
    assert messages and messages[-1].HasField("done"), f"no final response for {short(request)}"
    return messages[-1].done


@pytest.mark.parametrize("rpc", ["CreateWorkspace", "CreateWorkspaceWithProgress"])
def test_create_workspace_hostile_requests(target: Target, rpc: str) -> None:
    """Invalid requests get an error naming the field; the few valid ones work and are deleted
    (CreateWorkspaceWithProgress: the same, its stream ending with the response or the status)."""
    before = snapshot(target)
    outcomes = Outcomes()
    created: list[str] = []

    @FUZZ
    @given(case=fz.create_workspace_requests())
    def fuzz(case: tuple[pb.CreateWorkspaceRequest, bool]) -> None:
        request, poisoned = case
        if rpc == "CreateWorkspace":
            response = outcomes.unary(target.stub.CreateWorkspace, request)
        else:
            response = created_with_progress(target.stub, outcomes, request)
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
    assert outcomes.calls >= MESSAGES_PER_RPC, dict(outcomes.codes)
    after = snapshot(target)
    assert after[3] == before[3], changed_outside(before[3], after[3])
    assert after[0] == before[0] and after[2] == before[2], dict(outcomes.codes)
    assert serving(target.process.target)
    assert after[-1] == before[-1], f"the training log dropped {after[-1] - before[-1]} records"


# ---- every other RPC: a request builder each, 1,000 messages in batches -------------------------


def inside(path: str) -> bool:
    return path == "/workspace" or path.startswith("/workspace/")


def step_requests(t: Target) -> st.SearchStrategy[pb.StepRequest]:
    hostile = fz.message(
        pb.StepRequest.DESCRIPTOR, fz.odd_ids(t.real_ids), {"workspace_id": workspace_ids(t)}
    )

    @st.composite
    def aimed(draw: st.DrawFn) -> pb.StepRequest:
        # A real tool on the real workspace, with a hostile path and working directory.
        request = draw(hostile)
        request.workspace_id = t.workspace_id
        request.action.tool_name = draw(st.sampled_from(["cat", "ls"]))
        request.action.args.Clear()
        request.action.args.update({"path": draw(fz.workspace_paths())})
        request.action.work_dir = draw(st.sampled_from(["", "dir", "escape", "/tmp", "loop-a", "a\x00"]))
        request.timeout.Clear()
        return request

    return st.one_of(hostile, aimed())


def check_step(t: Target, request: pb.StepRequest, response: pb.StepResponse) -> None:
    assert request.workspace_id == t.workspace_id, f"Step ran on a random workspace: {short(request)}"
    assert request.action.tool_name in ("cat", "ls"), short(request)
    assert response.observation.tool_output.end_reason != pb.END_REASON_UNSPECIFIED, short(response)


@st.composite
def upload_streams(draw: st.DrawFn, t: Target) -> list[pb.UploadFileRequest]:
    first = draw(
        fz.message(
            pb.UploadFileRequest.DESCRIPTOR,
            overrides={
                "workspace_id": workspace_ids(t),
                "path": st.one_of(fz.workspace_paths(), fz.fresh_paths()),
                "mode": st.one_of(
                    st.sampled_from([0, 0o600, 0o644, 0o777]),
                    st.sampled_from([0o1000, 0o4755, 2**32 - 1]),
                    fz.hostile_int(13),
                ),
                "data": st.binary(max_size=64),
            },
        )
    )
    if draw(st.integers(0, 9)) == 0:
        # One in ten a plain valid start (each field above is left out half the time, so valid
        # uploads would otherwise be about one in a hundred: too few to be sure the accepted
        # path is reached, whatever the draws).
        first.workspace_id, first.path, first.mode = t.workspace_id, draw(fz.fresh_paths()), 0o644
    # Later messages carry data only, or (a protocol error) the first message's fields again.
    later = draw(
        st.lists(
            st.one_of(
                *[st.binary(max_size=64).map(lambda b: pb.UploadFileRequest(data=b))] * 4,
                fz.message(pb.UploadFileRequest.DESCRIPTOR),
            ),
            max_size=3,
        )
    )
    return [first, *later]


def check_upload(t: Target, stream: list[pb.UploadFileRequest], response: pb.UploadFileResponse) -> None:
    first = stream[0]
    assert first.workspace_id == t.workspace_id and first.mode <= 0o777, short(stream)
    assert inside(response.file.path), f"uploaded to {response.file.path!r}: {short(stream)}"
    data = b"".join(m.data for m in stream)
    assert response.file.size == len(data) and response.sha256 == hashlib.sha256(data).hexdigest()


def path_requests(cls: type[Any], t: Target, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    paths = fz.workspace_paths(EXISTING)
    return fz.message(cls.DESCRIPTOR, overrides={"workspace_id": workspace_ids(t), "path": paths, **fields})


def check_download(
    t: Target, request: pb.DownloadFileRequest, responses: list[pb.DownloadFileResponse]
) -> None:
    assert request.workspace_id == t.workspace_id and responses, short(request)
    assert inside(responses[0].file.path), f"downloaded {responses[0].file.path!r} for {short(request)}"
    data = b"".join(r.data for r in responses)
    assert b"root:x:0:0" not in data and len(data) == responses[0].file.size, short(request)


def check_list(t: Target, request: pb.ListFilesRequest, response: pb.ListFilesResponse) -> None:
    assert request.workspace_id == t.workspace_id and request.max_entries >= 0, short(request)
    assert all(inside(e.path) for e in response.entries), short(response)
    assert len(response.entries) <= (request.max_entries or 10_000), short(request)


def check_stat(t: Target, request: pb.StatFileRequest, response: pb.StatFileResponse) -> None:
    assert request.workspace_id == t.workspace_id and inside(response.file.path), short(response)


def check_list_executions(t: Target, request: Any, response: pb.ListExecutionsResponse) -> None:
    assert request.workspace_id in ("", t.workspace_id), f"listed for {short(request)}"
    assert all(e.workspace_id == t.workspace_id for e in response.executions), short(response)


def check_list_snapshots(t: Target, request: Any, response: pb.ListSnapshotsResponse) -> None:
    # A filter (a random id lists nothing); no snapshot outlives the test that made it.
    assert not response.snapshots, short(response)


def check_snapshot(t: Target, request: Any, response: pb.CreateSnapshotResponse) -> None:
    t.stub.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=response.snapshot.id), timeout=60)
    assert request.workspace_id == t.workspace_id, f"snapshot of a random workspace: {short(request)}"
    assert (response.snapshot.workspace_id, response.snapshot.name) == (t.workspace_id, request.name)


def check_forward(t: Target, stream: list[pb.ForwardPortRequest], responses: list[Any]) -> None:
    assert stream[0].workspace_id == t.workspace_id, f"forwarded for {short(stream)}"


GENERIC: dict[str, Fuzzed] = {
    "ListExecutions": Fuzzed(
        lambda t: st.builds(pb.ListExecutionsRequest, workspace_id=st.one_of(st.just(""), workspace_ids(t))),
        check_list_executions,
    ),
    "AttachExecution": Fuzzed(
        lambda t: st.lists(
            fz.message(
                pb.AttachExecutionRequest.DESCRIPTOR, fz.odd_ids(t.real_ids), {"execution_id": ids(t)}
            ),
            min_size=1,
            max_size=3,
        ),
        lambda t, stream, answer: never_accepted(stream),
        accepts=False,
    ),
    "ForwardPort": Fuzzed(
        lambda t: st.lists(
            fz.message(
                pb.ForwardPortRequest.DESCRIPTOR,
                overrides={"workspace_id": workspace_ids(t), "data": st.binary(max_size=64)},
            ),
            min_size=1,
            max_size=3,
        ),
        check_forward,
        accepts=None,
    ),
    "CreateSnapshot": Fuzzed(lambda t: fz.create_snapshot_requests(t.workspace_id, ids(t)), check_snapshot),
    "ListSnapshots": Fuzzed(
        lambda t: st.builds(pb.ListSnapshotsRequest, workspace_id=st.one_of(st.just(""), workspace_ids(t))),
        check_list_snapshots,
    ),
    "Step": Fuzzed(step_requests, check_step),
    "UploadFile": Fuzzed(lambda t: upload_streams(t), check_upload),
    "DownloadFile": Fuzzed(lambda t: path_requests(pb.DownloadFileRequest, t), check_download),
    "ListFiles": Fuzzed(
        lambda t: path_requests(
            pb.ListFilesRequest, t, max_entries=st.one_of(st.integers(-3, 5), fz.hostile_int(5))
        ),
        check_list,
    ),
    "StatFile": Fuzzed(lambda t: path_requests(pb.StatFileRequest, t), check_stat),
}


def never_accepted(request: Any) -> None:
    raise AssertionError(f"accepted {short(request)}")


@pytest.mark.parametrize("rpc", sorted(GENERIC))
def test_rpc_hostile_requests(target: Target, rpc: str) -> None:
    """Batches of generated requests over one channel: accepted ones satisfy the RPC's check."""
    before = snapshot(target)
    try:
        outcomes = fuzz_rpc(target, target.stub, SERVICE.methods_by_name[rpc], GENERIC[rpc])
    finally:
        # What the uploads wrote (inside /workspace, by the checks) goes; the marker and links stay.
        run(target.stub, pb.ExecuteRequest(workspace_id=target.workspace_id, script=CLEAN))
    check_alive_and_unchanged(target, before, outcomes)


# Which test fuzzes each RPC; `test_every_rpc_is_fuzzed` holds it to the service descriptor.
FUZZED: dict[str, Callable[..., Any]] = {
    **{rpc: test_id_rpcs_refuse_random_ids_and_change_nothing for rpc in ID_RPCS},
    **{rpc: test_fieldless_rpcs_ignore_unknown_fields for rpc in FIELDLESS},
    "CreateWorkspace": test_create_workspace_hostile_requests,
    "CreateWorkspaceWithProgress": test_create_workspace_hostile_requests,
    "CreateSession": test_create_session_hostile_requests,
    "Execute": test_execute_hostile_streams,
    **{rpc: test_rpc_hostile_requests for rpc in GENERIC},
}


def test_every_rpc_is_fuzzed() -> None:
    assert not unfuzzed(SERVICE, FUZZED), unfuzzed(SERVICE, FUZZED)


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
    check_alive_and_unchanged(target, before, outcomes, min_calls=8)


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
