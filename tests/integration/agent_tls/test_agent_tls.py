"""TLS on the agent's own server and on its channel to the executor (mutual TLS), with real
certificates from scripts/make-certs.sh and real servers on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.executor.v1 import executor_pb2
from tests.support.agent_server import running_agent
from tests.support.executor_server import running_executor
from tests.support.tls_certs import CertSet, make_certs

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    """A second CA: its client certificate is not one the executor trusts."""
    return make_certs(tmp_path_factory.mktemp("other-certs"))


@pytest.fixture(scope="module")
async def mtls_executor(tmp_path_factory: pytest.TempPathFactory, certs: CertSet) -> AsyncIterator[str]:
    """An executor that serves TLS and requires client certificates signed by `certs`' CA."""
    async with running_executor(
        tmp_path_factory.mktemp("executor"),
        backend="docker",
        tls_cert=certs.server_cert,
        tls_key=certs.server_key,
        tls_client_ca=certs.ca,
    ) as target:
        yield target


def _tls_stub(target: str, certs: CertSet, client: CertSet | None = None) -> agent_pb2_grpc.AgentServiceStub:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certs.ca.read_bytes(),
        private_key=client.client_key.read_bytes() if client else None,
        certificate_chain=client.client_cert.read_bytes() if client else None,
    )
    return agent_pb2_grpc.AgentServiceStub(grpc.aio.secure_channel(target, credentials))


async def _execute(stub: agent_pb2_grpc.AgentServiceStub, workspace_id: str, script: str) -> bytes:
    call = stub.Execute()
    await call.write(executor_pb2.ExecuteRequest(workspace_id=workspace_id, script=script))
    await call.done_writing()
    out = b""
    async for response in call:
        out += response.stdout_data
    return out


async def test_agent_reaches_executor_over_mutual_tls_and_serves_tls(tmp_path, certs, mtls_executor):
    async with running_agent(
        tmp_path / "agent",
        executor=mtls_executor,
        tls_cert=certs.server_cert,
        tls_key=certs.server_key,
        executor_tls_ca=certs.ca,
        executor_tls_cert=certs.client_cert,
        executor_tls_key=certs.client_key,
    ) as agent:
        stub = _tls_stub(agent.target, certs)
        created = await stub.CreateWorkspace(executor_pb2.CreateWorkspaceRequest(name="tls"))
        try:
            assert await _execute(stub, created.workspace.id, "echo over-tls") == b"over-tls\n"
            info = await stub.GetServerInfo(agent_pb2.GetServerInfoRequest())
            assert [(r.address, r.reachable) for r in info.executors] == [(mtls_executor, True)]
            assert info.executors[0].instance_id.startswith("ex_")
        finally:
            await stub.DeleteWorkspace(executor_pb2.DeleteWorkspaceRequest(workspace_id=created.workspace.id))
        # A plaintext client gets nowhere with a TLS agent.
        plain = agent_pb2_grpc.AgentServiceStub(grpc.aio.insecure_channel(agent.target))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await plain.GetServerInfo(agent_pb2.GetServerInfoRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_certificate_from_another_ca_is_refused_by_the_executor(
    tmp_path, certs, other_certs, mtls_executor
):
    async with running_agent(
        tmp_path / "agent",
        executor=mtls_executor,
        executor_tls_ca=certs.ca,
        executor_tls_cert=other_certs.client_cert,
        executor_tls_key=other_certs.client_key,
    ) as agent:
        stub = agent_pb2_grpc.AgentServiceStub(grpc.aio.insecure_channel(agent.target))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateWorkspace(executor_pb2.CreateWorkspaceRequest(name="refused"), timeout=15)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert mtls_executor in caught.value.details()


async def test_agent_with_mutual_tls_refuses_a_client_without_a_certificate(tmp_path, certs, mtls_executor):
    async with running_agent(
        tmp_path / "agent",
        tls_cert=certs.server_cert,
        tls_key=certs.server_key,
        tls_client_ca=certs.ca,
    ) as agent:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _tls_stub(agent.target, certs).GetServerInfo(agent_pb2.GetServerInfoRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        info = await _tls_stub(agent.target, certs, client=certs).GetServerInfo(
            agent_pb2.GetServerInfoRequest(), timeout=5
        )
        assert info.version


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--tls-cert", "/nonexistent/server.pem", "--tls-key", "/nonexistent/key.pem"],
            "--tls-cert: file not found",
        ),
        (["--executor-tls-ca", "{not_pem}"], "--executor-tls-ca:"),
        (["--tls-cert", "{cert}"], "--tls-key: missing"),
    ],
)
def test_a_bad_tls_setting_stops_start_up_with_one_line(tmp_path, certs, flags, expected):
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello\n")
    argv = [a.format(not_pem=not_pem, cert=certs.server_cert) for a in flags]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_service",
            "--listen",
            "127.0.0.1:0",
            "--config-dir",
            str(tmp_path),
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("firebox-agent: ") and expected in lines[0]
