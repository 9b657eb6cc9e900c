"""The CLI's bearer token and TLS settings against real servers: a token-protected executor, and
TLS / mutual-TLS servers from firebox.common.server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firebox.common.server import RunningServer, ServerSpec, start
from firebox.common.tls import ServerTLS
from tests.support.cli import firebox
from tests.support.executor_server import running_executor_handle
from tests.support.tls_certs import CertSet, make_certs

TOKEN = "cli-test-token"


@pytest.fixture(scope="module")
async def guarded_executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[object]:
    directory = tmp_path_factory.mktemp("guarded")
    async with running_executor_handle(directory, backend="docker", auth_token=TOKEN) as running:
        try:
            yield running
        finally:
            for info in await running.workspaces.list():
                await running.workspaces.delete(info.id)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


async def tls_server(tls: ServerTLS) -> RunningServer:
    """A server with only health and reflection, over TLS."""
    spec = ServerSpec(
        name="cli-tls-test",
        listen="127.0.0.1:0",
        register=lambda _server: None,
        service_names=[],
        grace_seconds=0.1,
        server_credentials=tls.credentials(),
    )
    return await start(spec)


@pytest.mark.docker
async def test_missing_token_exits_5_with_a_hint_and_the_token_is_sent_from_flag_or_env(
    guarded_executor,
) -> None:
    target = guarded_executor.target
    refused = await firebox("workspaces", "list", executor=target)
    assert refused.code == 5
    line = refused.error_line()
    assert "--token" in line and "FIREBOX_AUTH_TOKEN" in line

    by_flag = await firebox("workspaces", "list", "--json", "--token", TOKEN, executor=target)
    assert by_flag.code == 0, by_flag.stderr
    assert "workspaces" in json.loads(by_flag.stdout)

    by_env = await firebox("exec", "--", "echo", "ok", executor=target, env={"FIREBOX_AUTH_TOKEN": TOKEN})
    assert by_env.code == 0, by_env.stderr
    assert by_env.stdout == b"ok\n"


@pytest.mark.docker
async def test_exec_with_a_wrong_token_exits_125_saying_the_token_was_refused(guarded_executor) -> None:
    result = await firebox("exec", "--token", "wrong", "--", "true", executor=guarded_executor.target)
    assert result.code == 125
    assert "invalid bearer token" in result.error_line()


def health_of(result) -> str:
    return json.loads(result.stdout)["executor"]["health"]


async def test_tls_ca_lets_the_cli_reach_a_tls_server_that_plaintext_cannot(certs: CertSet) -> None:
    server = await tls_server(ServerTLS(certs.server_cert, certs.server_key))
    try:
        target = f"127.0.0.1:{server.port}"
        secure = await firebox("status", "--json", "--tls-ca", str(certs.ca), executor=target)
        assert health_of(secure) == "SERVING"
        plain = await firebox("status", "--json", executor=target)
        assert health_of(plain) == "UNREACHABLE"
        assert plain.code == 4
    finally:
        await server.stop(0)


async def test_mutual_tls_needs_the_client_certificate(certs: CertSet) -> None:
    server = await tls_server(ServerTLS(certs.server_cert, certs.server_key, certs.ca))
    try:
        target = f"127.0.0.1:{server.port}"
        with_cert = await firebox(
            "status",
            "--json",
            "--tls-ca",
            str(certs.ca),
            executor=target,
            env={
                "FIREBOX_TLS_CLIENT_CERT": str(certs.client_cert),
                "FIREBOX_TLS_CLIENT_KEY": str(certs.client_key),
            },
        )
        assert health_of(with_cert) == "SERVING"
        without = await firebox("status", "--json", "--tls-ca", str(certs.ca), executor=target)
        assert health_of(without) != "SERVING"
        assert without.code == 4
    finally:
        await server.stop(0)


async def test_the_services_server_certificate_variables_do_not_reach_the_cli(certs: CertSet) -> None:
    # A shell that starts the services exports FIREBOX_TLS_CERT / FIREBOX_TLS_KEY (their server
    # certificate); the CLI must not take them as its client certificate and turn TLS on.
    spec = ServerSpec(
        name="cli-plain-test",
        listen="127.0.0.1:0",
        register=lambda _server: None,
        service_names=[],
        grace_seconds=0.1,
    )
    server = await start(spec)
    try:
        target = f"127.0.0.1:{server.port}"
        server_env = {"FIREBOX_TLS_CERT": str(certs.server_cert), "FIREBOX_TLS_KEY": str(certs.server_key)}
        result = await firebox("status", "--json", executor=target, env=server_env)
        assert health_of(result) == "SERVING", result.stderr
        # The client's own variables do turn TLS on (and a plaintext server cannot answer it).
        client_env = {
            "FIREBOX_TLS_CLIENT_CERT": str(certs.client_cert),
            "FIREBOX_TLS_CLIENT_KEY": str(certs.client_key),
        }
        tls = await firebox("status", "--json", executor=target, env=client_env)
        assert health_of(tls) != "SERVING"
    finally:
        await server.stop(0)


async def test_a_tls_file_that_is_not_pem_is_a_usage_error_naming_flag_and_path(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    result = await firebox("status", "--tls-ca", str(bogus))
    assert result.code == 2
    line = result.error_line()
    assert "--tls-ca" in line and str(bogus) in line
