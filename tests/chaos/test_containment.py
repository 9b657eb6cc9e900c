"""Containment probes, each a test: what a command inside a default workspace can reach.

The executor runs as a process of its own with a host-only variable in its environment; the
probes run inside a workspace created with the default policy (and one read-only workspace).
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.chaos.helpers import HOST_PROBE_NAME, HOST_PROBE_VALUE, all_log_text, execute
from tests.support.executor_server import ExecutorProcess, remove_owned_workspaces
from tests.support.service_process import AgentProcess

pytestmark = pytest.mark.docker


def test_no_network_by_default(stub, workspace) -> None:
    """Only the loopback interface exists, and nothing outside answers."""
    result = execute(stub, workspace.id, "cd /sys/class/net && echo *")
    assert result.final.end_reason == pb.END_REASON_EXITED, result
    assert result.text.split() == ["lo"], result
    routes = execute(stub, workspace.id, "cat /proc/net/route").text.strip().splitlines()
    assert len(routes) <= 1, routes  # the header only: no route at all
    result = execute(stub, workspace.id, "nc -w 2 1.1.1.1 80 </dev/null && echo REACHED; echo done")
    assert "REACHED" not in result.text and "done" in result.text, result
    assert b"unreachable" in result.stderr, result


def test_writes_refused_in_read_only_mode(stub) -> None:
    ws = stub.CreateWorkspace(
        pb.CreateWorkspaceRequest(name="chaos-ro", policy=pb.IsolationPolicy(read_only=True)), timeout=60
    ).workspace
    try:
        result = execute(stub, ws.id, "echo x > /workspace/f; echo rc=$?; touch /etc/x; echo rc2=$?")
        assert "rc=0" not in result.text and "rc=" in result.text, result
        assert "rc2=0" not in result.text, result
        assert b"Read-only file system" in result.stderr, result
    finally:
        stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id), timeout=60)


def test_no_host_environment_variables(executor, stub, workspace) -> None:
    """The executor's own variables (and its PATH) are not in the command's environment."""
    result = execute(stub, workspace.id, "env; cat /proc/1/environ | tr '\\0' '\\n'")
    assert HOST_PROBE_NAME not in result.text and HOST_PROBE_VALUE not in result.text, result
    assert str(executor.config_dir) not in result.text


def test_no_docker_socket(stub, workspace) -> None:
    script = (
        "for p in /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock; do "
        "test -e $p && echo FOUND $p; done; "
        "find / -xdev -type s 2>/dev/null | head -20"
    )
    result = execute(stub, workspace.id, script)
    assert "FOUND" not in result.text, result
    assert "docker" not in result.text and "containerd" not in result.text, result


def test_non_root_user(stub, workspace) -> None:
    result = execute(stub, workspace.id, "id -u; id -g")
    uid, gid = result.text.split()
    assert uid != "0" and gid != "0", result
    assert execute(stub, workspace.id, "su -c true root </dev/null; echo rc=$?").text.strip().endswith("rc=1")


def test_no_capabilities(stub, workspace) -> None:
    """Inherited, permitted, effective and ambient sets are empty and privileges cannot be gained.
    The bounding set holds CAP_CHOWN alone, kept for the init's one `chown` of /workspace (the
    isolation line says so, docs/workspaces.md): bit 0, and nothing a process can take up."""
    result = execute(stub, workspace.id, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status")
    fields = dict(line.split(":\t") for line in result.text.strip().splitlines())
    for name in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(fields[name], 16) == 0, result
    assert int(fields["CapBnd"], 16) == 1 << 0, result  # CAP_CHOWN is capability 0
    assert "CAP_CHOWN kept in the bounding set" in workspace.isolation, workspace.isolation
    assert fields["NoNewPrivs"].strip() == "1", result


# ---- auth on both services, and secrets in logs ---------------------------------------------------

TOKEN = "chaos-auth-token-5d21f0"
API_KEY = "sk-chaos-provider-key-9a8b7c"
ALLOWED_SECRET_NAME = "DEPLOY_API_KEY"
ALLOWED_SECRET_VALUE = "allowed-secret-value-31f7"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    """An executor and an agent that both require the bearer token; the executor allows one
    secret-named variable, the agent holds a provider API key."""
    root = tmp_path_factory.mktemp("chaos-secured")
    executor = ExecutorProcess(
        root / "executor",
        env={"FIREBOX_AUTH_TOKEN": TOKEN},
        args=["--env-allow", ALLOWED_SECRET_NAME, "--log-level", "debug"],
    )
    agent = AgentProcess(
        root / "agent",
        executor=executor.target,
        provider="http://127.0.0.1:9/v1",
        env={"FIREBOX_AUTH_TOKEN": TOKEN, "FIREBOX_PROVIDER_API_KEY": API_KEY},
        args=["--log-level", "debug"],
    )
    try:
        executor.start()
        agent.start()
        yield executor, agent
    finally:
        agent.kill()
        executor.kill()
        remove_owned_workspaces(root / "executor")


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.mark.parametrize("service", ["executor", "agent"])
def test_auth_enforced(secured, service: str) -> None:
    """No token or a wrong one: UNAUTHENTICATED on every call; health stays open; the right token works."""
    executor, agent = secured
    target = executor.target if service == "executor" else agent.target
    with grpc.insecure_channel(target) as channel:
        if service == "executor":
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            call, request = stub.ListWorkspaces, pb.ListWorkspacesRequest()
        else:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            call, request = stub.ListSessions, agent_pb2.ListSessionsRequest()

        def stream(metadata):
            first = pb.ExecuteRequest(workspace_id="x", script="true")
            return stub.Execute(iter([first]), metadata=metadata, timeout=10)

        for metadata in (None, _bearer("wrong"), _bearer(""), (("authorization", TOKEN),)):
            with pytest.raises(grpc.RpcError) as refused:
                call(request, metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (
                metadata,
                refused.value.details(),
            )
            with pytest.raises(grpc.RpcError) as refused_stream:
                list(stream(metadata))
            assert refused_stream.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call(request, metadata=_bearer(TOKEN), timeout=10)
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_secrets_refused_unless_allowed_and_never_logged(secured) -> None:
    """A secret-named variable is refused (Execute and workspace); the allowed one reaches the command;
    neither its value, the auth token nor the provider key appears in any file under the config dirs."""
    executor, agent = secured
    md = _bearer(TOKEN)
    with (
        grpc.insecure_channel(executor.target) as ex_channel,
        grpc.insecure_channel(agent.target) as ag_channel,
    ):
        ex = executor_pb2_grpc.ExecutorServiceStub(ex_channel)
        ag = agent_pb2_grpc.AgentServiceStub(ag_channel)
        with pytest.raises(grpc.RpcError) as refused:
            ex.CreateWorkspace(
                pb.CreateWorkspaceRequest(env={"GITHUB_TOKEN": "gh-value-0000"}), metadata=md, timeout=60
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "GITHUB_TOKEN" in refused.value.details()
        ws = ex.CreateWorkspace(pb.CreateWorkspaceRequest(name="secrets"), metadata=md, timeout=60).workspace
        first = pb.ExecuteRequest(workspace_id=ws.id, script="true", env={"DB_PASSWORD": "pw-value-0000"})
        with pytest.raises(grpc.RpcError) as refused:
            list(ag.Execute(iter([first]), metadata=md, timeout=30))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "DB_PASSWORD" in refused.value.details()
        # The allowed one, through the agent and directly: the command sees it (without printing it).
        script = f'test "${ALLOWED_SECRET_NAME}" = {ALLOWED_SECRET_VALUE} && echo seen'
        for stub in (ag, ex):
            first = pb.ExecuteRequest(
                workspace_id=ws.id, script=script, env={ALLOWED_SECRET_NAME: ALLOWED_SECRET_VALUE}
            )
            responses = list(stub.Execute(iter([first]), metadata=md, timeout=30))
            assert b"".join(r.stdout_data for r in responses).strip() == b"seen", responses
        # A failing call that names the secret in its arguments must not log it either.
        with pytest.raises(grpc.RpcError):
            list(
                ex.Execute(
                    iter(
                        [
                            pb.ExecuteRequest(
                                workspace_id="missing",
                                script="true",
                                env={ALLOWED_SECRET_NAME: ALLOWED_SECRET_VALUE},
                            )
                        ]
                    ),
                    metadata=md,
                    timeout=30,
                )
            )
        # The agent uses its provider key on a call (the provider is unreachable; the run fails).
        session = ag.CreateSession(agent_pb2.CreateSessionRequest(title="s"), metadata=md, timeout=10).session
        list(
            ag.SendMessage(
                agent_pb2.SendMessageRequest(session_id=session.id, content="hi"), metadata=md, timeout=60
            )
        )
        ex.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id), metadata=md, timeout=60)
    # Stop both so that every queued log line is on disk.
    agent.terminate()
    executor.terminate()
    files = all_log_text(executor.config_dir, agent.config_dir)
    assert any(p.parent.name == "logs" for p in files), sorted(files)
    for secret in (ALLOWED_SECRET_VALUE, TOKEN, API_KEY, "pw-value-0000", "gh-value-0000"):
        leaks = [str(p) for p, data in files.items() if secret.encode() in data]
        assert not leaks, f"{secret!r} found in {leaks}"
