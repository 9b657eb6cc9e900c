"""The real `firebox-executor` console script as a process, driven by the real grpcurl binary."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_server import REPO, ExecutorProcess, remove_owned_workspaces

pytestmark = [pytest.mark.docker, pytest.mark.slow]

GRPCURL = REPO / ".venv" / "bin" / "grpcurl"
SERVICE = "firebox.executor.v1.ExecutorService"


def grpcurl(
    target: str, *args: str, data: str | None = None, token: str | None = None
) -> subprocess.CompletedProcess:
    cmd = [str(GRPCURL), "-plaintext"]
    if token:
        cmd += ["-H", f"authorization: Bearer {token}"]
    if data is not None:
        cmd += ["-d", data]
    cmd += [target, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def process(tmp_path_factory):
    config_dir = tmp_path_factory.mktemp("e2e")
    try:
        with ExecutorProcess(config_dir) as proc:
            yield proc
    finally:
        remove_owned_workspaces(config_dir)


@pytest.fixture(scope="module")
def workspace_id(process):
    out = grpcurl(process.target, f"{SERVICE}/CreateWorkspace", data='{"name": "e2e"}')
    assert out.returncode == 0, out.stderr
    ws = json.loads(out.stdout)["workspace"]
    assert ws["status"] == "WORKSPACE_STATUS_RUNNING"
    yield ws["id"]
    grpcurl(process.target, f"{SERVICE}/DeleteWorkspace", data=json.dumps({"workspace_id": ws["id"]}))


def test_help_works():
    out = subprocess.run([str(REPO / ".venv/bin/firebox-executor"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--listen" in out.stdout and "FIREBOX_LISTEN" in out.stdout


def test_grpcurl_list_and_describe(process):
    out = grpcurl(process.target, "list")
    assert out.returncode == 0, out.stderr
    services = out.stdout.split()
    assert SERVICE in services and "grpc.health.v1.Health" in services
    out = grpcurl(process.target, "describe", SERVICE)
    assert out.returncode == 0 and "rpc Execute ( stream .firebox.executor.v1.ExecuteRequest )" in out.stdout


def test_grpcurl_health(process):
    out = grpcurl(process.target, "grpc.health.v1.Health/Check")
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "SERVING"


def test_grpcurl_execute_streams_output_to_completion(process, workspace_id):
    # grpcurl sends its -d message and closes its side at once: the command must still finish.
    request = {"workspace_id": workspace_id, "script": "echo hello; sleep 1; echo world >&2; exit 7"}
    out = grpcurl(process.target, f"{SERVICE}/Execute", data=json.dumps(request))
    assert out.returncode == 0, out.stderr
    messages = [json.loads(chunk) for chunk in _json_objects(out.stdout)]
    assert messages[0]["execution_id"].startswith("ex_") and messages[0]["pid"] > 0
    stdout = b"".join(base64.b64decode(m.get("stdout_data", "")) for m in messages)
    stderr = b"".join(base64.b64decode(m.get("stderr_data", "")) for m in messages)
    assert stdout == b"hello\n" and stderr == b"world\n"
    assert messages[-1]["exit_code"] == 7 and messages[-1]["end_reason"] == "END_REASON_EXITED"


def test_grpcurl_bad_input_is_invalid_argument(process, workspace_id):
    out = grpcurl(process.target, f"{SERVICE}/Execute", data=json.dumps({"workspace_id": workspace_id}))
    assert out.returncode != 0 and "InvalidArgument" in out.stderr and "script" in out.stderr


def test_auth_token_required_but_health_open(tmp_path):
    token = "e2e-secret-token"
    with ExecutorProcess(tmp_path, env={"FIREBOX_AUTH_TOKEN": token}) as proc:  # creates no workspaces
        out = grpcurl(proc.target, f"{SERVICE}/GetServerInfo")
        assert out.returncode != 0 and "Unauthenticated" in out.stderr
        out = grpcurl(proc.target, f"{SERVICE}/GetServerInfo", token=token)
        assert out.returncode == 0 and json.loads(out.stdout)["backend"] == "BACKEND_DOCKER"
        out = grpcurl(proc.target, "grpc.health.v1.Health/Check")
        assert out.returncode == 0 and "SERVING" in out.stdout
        # The token never appears in the process's log.
        assert token not in proc.output()
        assert not any(token in p.read_text() for p in Path(tmp_path, "logs").glob("*.log"))


def test_sigterm_turns_health_not_serving_then_exits_and_workspaces_are_adopted(tmp_path):
    proc = ExecutorProcess(tmp_path, args=["--shutdown-grace", "8"]).start()
    try:
        out = grpcurl(proc.target, f"{SERVICE}/CreateWorkspace", data='{"name": "survivor"}')
        ws_id = json.loads(out.stdout)["workspace"]["id"]
        grpcurl(
            proc.target,
            f"{SERVICE}/Execute",
            data=json.dumps({"workspace_id": ws_id, "script": "echo persisted > /workspace/f"}),
        )
        # A long command keeps the server in its grace period, so NOT_SERVING can be observed.
        long_run = subprocess.Popen(
            [
                str(GRPCURL),
                "-plaintext",
                "-d",
                json.dumps({"workspace_id": ws_id, "script": "sleep 30"}),
                proc.target,
                f"{SERVICE}/Execute",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # New calls are refused once stopping begins, so NOT_SERVING is seen on a Watch opened before.
        channel = grpc.insecure_channel(proc.target)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        time.sleep(1.0)
        proc.proc.send_signal(signal.SIGTERM)
        statuses = []
        with contextlib.suppress(grpc.RpcError):
            for update in watch:
                statuses.append(update.status)
                if update.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
        channel.close()
        assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
        # docs/executor.md: new calls are refused while running executions get their grace.
        with grpc.insecure_channel(proc.target) as fresh, pytest.raises(grpc.RpcError) as refused:
            executor_pb2_grpc.ExecutorServiceStub(fresh).ListWorkspaces(
                pb.ListWorkspacesRequest(), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert proc.proc.poll() is None and long_run.poll() is None, "refused only because it had exited"
        assert proc.proc.wait(30) == 0
        out, _ = long_run.communicate(timeout=30)
        assert "END_REASON_SHUTDOWN" in out
        # The workspace survived the stop and a new executor with the same config dir adopts it.
        with ExecutorProcess(tmp_path, port=proc.port) as again:
            out = grpcurl(again.target, f"{SERVICE}/ListWorkspaces")
            assert ws_id in out.stdout
            out = grpcurl(
                again.target,
                f"{SERVICE}/Execute",
                data=json.dumps({"workspace_id": ws_id, "script": "cat /workspace/f"}),
            )
            assert "cGVyc2lzdGVkCg==" in out.stdout  # base64 of "persisted\n"
    finally:
        proc.kill()
        remove_owned_workspaces(tmp_path)


def test_kill_9_loses_nothing_the_next_executor_adopts_the_workspace(tmp_path):
    try:
        with ExecutorProcess(tmp_path) as first:
            out = grpcurl(first.target, f"{SERVICE}/CreateWorkspace", data='{"name": "crashy"}')
            ws_id = json.loads(out.stdout)["workspace"]["id"]
            grpcurl(
                first.target,
                f"{SERVICE}/Execute",
                data=json.dumps({"workspace_id": ws_id, "script": "echo before-crash > /workspace/f"}),
            )
            first.kill()
        with ExecutorProcess(tmp_path) as second:
            listed = json.loads(grpcurl(second.target, f"{SERVICE}/ListWorkspaces").stdout)["workspaces"]
            assert [(w["id"], w["status"]) for w in listed] == [(ws_id, "WORKSPACE_STATUS_RUNNING")]
            out = grpcurl(
                second.target,
                f"{SERVICE}/Execute",
                data=json.dumps({"workspace_id": ws_id, "script": "cat /workspace/f"}),
            )
            assert base64.b64encode(b"before-crash\n").decode() in out.stdout
    finally:
        remove_owned_workspaces(tmp_path)


@pytest.mark.bwrap
def test_auto_without_docker_falls_back_to_bwrap_loudly(tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    with ExecutorProcess(tmp_path, backend="auto", env=env) as proc:
        out = grpcurl(proc.target, f"{SERVICE}/GetServerInfo")
        assert json.loads(out.stdout)["backend"] == "BACKEND_BWRAP"
        assert "FALLING BACK TO BUBBLEWRAP, WEAKER ISOLATION" in proc.output()
        out = grpcurl(proc.target, f"{SERVICE}/CreateWorkspace", data="{}")
        ws = json.loads(out.stdout)["workspace"]
        assert ws["backend"] == "BACKEND_BWRAP" and "weaker than a container" in ws["isolation"]
        out = grpcurl(
            proc.target,
            f"{SERVICE}/Execute",
            data=json.dumps({"workspace_id": ws["id"], "argv": ["id", "-u"]}),
        )
        assert "MTAwMAo=" in out.stdout  # base64 of "1000\n"
        grpcurl(proc.target, f"{SERVICE}/DeleteWorkspace", data=json.dumps({"workspace_id": ws["id"]}))


def _json_objects(text: str) -> list[str]:
    """grpcurl prints one pretty JSON object per response; split them."""
    decoder = json.JSONDecoder()
    objects, i = [], 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        obj, end = decoder.raw_decode(text, i)
        objects.append(json.dumps(obj))
        i = end
    return objects
