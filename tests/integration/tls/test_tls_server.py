"""A real grpc.aio server started by firebox.common.server with TLS credentials, and real
channels with and without the right certificates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firebox.common import healthprobe
from firebox.common.server import RunningServer, ServerSpec, start
from firebox.common.tls import ClientTLS, ServerTLS, secure_or_insecure_channel
from tests.support.tls_certs import CertSet, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    """Another CA and a client certificate it signed: valid, but not trusted by the server."""
    return make_certs(tmp_path_factory.mktemp("stranger"))


async def _serve(tls: ServerTLS) -> RunningServer:
    spec = ServerSpec(
        name="tls-test",
        listen="127.0.0.1:0",
        register=lambda _server: None,
        service_names=[],
        grace_seconds=0.1,
        server_credentials=tls.credentials(),
    )
    return await start(spec)


async def _health(port: int, tls: ClientTLS | None) -> health_pb2.HealthCheckResponse.ServingStatus:
    async with secure_or_insecure_channel(f"127.0.0.1:{port}", tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        return response.status


async def test_tls_server_answers_a_client_that_trusts_its_ca(certs: CertSet) -> None:
    running = await _serve(ServerTLS(certs.server_cert, certs.server_key))
    try:
        assert await _health(running.port, ClientTLS(ca=certs.ca)) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await running.stop(0)


async def test_tls_server_refuses_plaintext_and_untrusting_clients(certs: CertSet, stranger: CertSet) -> None:
    running = await _serve(ServerTLS(certs.server_cert, certs.server_key))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as plaintext:
            await _health(running.port, None)
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as wrong_ca:
            await _health(running.port, ClientTLS(ca=stranger.ca))
        assert wrong_ca.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(0)


async def test_server_name_override_lets_a_client_dial_by_a_name_not_in_the_cert(
    tmp_path: Path,
) -> None:
    # A certificate for "executor" only, dialled at 127.0.0.1 — as the agent dials Swarm replicas by IP.
    only_executor = make_certs(tmp_path / "named", "executor")
    running = await _serve(ServerTLS(only_executor.server_cert, only_executor.server_key))
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await _health(running.port, ClientTLS(ca=only_executor.ca))
        named = ClientTLS(ca=only_executor.ca, server_name="executor")
        assert await _health(running.port, named) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await running.stop(0)


async def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(
    certs: CertSet, stranger: CertSet
) -> None:
    running = await _serve(ServerTLS(certs.server_cert, certs.server_key, client_ca=certs.ca))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as no_cert:
            await _health(running.port, ClientTLS(ca=certs.ca))
        assert no_cert.value.code() == grpc.StatusCode.UNAVAILABLE
        foreign = ClientTLS(ca=certs.ca, cert=stranger.client_cert, key=stranger.client_key)
        with pytest.raises(grpc.aio.AioRpcError) as wrong_cert:
            await _health(running.port, foreign)
        assert wrong_cert.value.code() == grpc.StatusCode.UNAVAILABLE
        trusted = ClientTLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
        assert await _health(running.port, trusted) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await running.stop(0)


async def test_health_probe_exit_code_follows_serving_status(certs: CertSet) -> None:
    running = await _serve(ServerTLS(certs.server_cert, certs.server_key, client_ca=certs.ca))
    target = f"127.0.0.1:{running.port}"
    mutual = [
        "--tls-ca",
        str(certs.ca),
        "--tls-cert",
        str(certs.client_cert),
        "--tls-key",
        str(certs.client_key),
    ]
    try:
        # The probe uses the blocking grpc API: keep it off the loop that serves.
        assert await asyncio.to_thread(healthprobe.main, [*mutual, target]) == 0
        assert await asyncio.to_thread(healthprobe.main, ["--tls-ca", str(certs.ca), target]) == 1
        assert await asyncio.to_thread(healthprobe.main, ["--tls-ca", "/nonexistent.pem", target]) == 1
        await running.health.enter_graceful_shutdown()
        assert await asyncio.to_thread(healthprobe.main, [*mutual, target]) == 1
    finally:
        await running.stop(0)
