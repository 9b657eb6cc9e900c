"""compose.yaml + compose.tls.yaml: both services serve TLS, the executor requires the agent's
client certificate (mutual TLS), and commands still run through the agent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deploy import (
    FIREBOX_CLI,
    GRPCURL,
    ComposeStack,
    compose_stack,
    have_tools,
    prepare_images,
    run,
)
from tests.support.tls_certs import CertSet, make_certs

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    made = make_certs(tmp_path_factory.mktemp("compose-tls"), "localhost", "127.0.0.1", "executor", "agent")
    # The agent runs as uid 10001 and must read the keys; on a real host chown them instead.
    for key in (made.server_key, made.client_key):
        key.chmod(0o644)
    made.dir.chmod(0o755)
    return made


@pytest.fixture(scope="module")
def tls_stack(certs: CertSet) -> Iterator[ComposeStack]:
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    prepare_images()
    with compose_stack(
        "compose.yaml", "compose.tls.yaml", env={"FIREBOX_TLS_DIR": str(certs.dir)}
    ) as deployed:
        yield deployed


def _grpcurl_tls(target: str, *args: str, tls: list[str], data: str | None = None) -> tuple[int, str, str]:
    argv = [GRPCURL, *tls, "-max-time", "30"]
    if data is not None:
        argv += ["-d", data]
    result = run([*argv, target, *args], check=False, timeout=60)
    return result.returncode, result.stdout, result.stderr


def _ca(certs: CertSet) -> list[str]:
    return ["-cacert", str(certs.ca)]


def _mutual(certs: CertSet) -> list[str]:
    return [*_ca(certs), "-cert", str(certs.client_cert), "-key", str(certs.client_key)]


def test_agent_serves_tls_and_refuses_plaintext(tls_stack: ComposeStack, certs: CertSet) -> None:
    code, out, _ = _grpcurl_tls(tls_stack.agent, "grpc.health.v1.Health/Check", tls=_ca(certs))
    assert code == 0 and json.loads(out) == {"status": "SERVING"}
    code, _, _ = _grpcurl_tls(tls_stack.agent, "grpc.health.v1.Health/Check", tls=["-plaintext"])
    assert code != 0


def test_executor_requires_a_client_certificate(tls_stack: ComposeStack, certs: CertSet) -> None:
    code, _, _ = _grpcurl_tls(tls_stack.executor, "grpc.health.v1.Health/Check", tls=_ca(certs))
    assert code != 0
    code, out, _ = _grpcurl_tls(tls_stack.executor, "grpc.health.v1.Health/Check", tls=_mutual(certs))
    assert code == 0 and json.loads(out) == {"status": "SERVING"}


def test_commands_run_through_the_agent_over_mutual_tls(tls_stack: ComposeStack, certs: CertSet) -> None:
    code, out, err = _grpcurl_tls(
        tls_stack.executor,
        "firebox.executor.v1.ExecutorService/CreateWorkspace",
        tls=_mutual(certs),
        data='{"name": "tls"}',
    )
    assert code == 0, err
    workspace_id = json.loads(out)["workspace"]["id"]
    code, out, err = _grpcurl_tls(
        tls_stack.agent,
        "firebox.agent.v1.AgentService/Execute",
        tls=_ca(certs),
        data=json.dumps({"workspace_id": workspace_id, "script": "echo over tls"}),
    )
    assert code == 0, err
    assert '"exit_code": 0' in out, out


def test_cli_connects_with_tls_flags(tls_stack: ComposeStack, certs: CertSet) -> None:
    flags = ["--agent", tls_stack.agent, "--executor", tls_stack.executor, "--tls-ca", str(certs.ca),
             "--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key)]  # fmt: skip
    status = run([FIREBOX_CLI, *flags, "status"], check=False, timeout=60)
    assert status.returncode == 0, status.stderr


def test_certificate_files_are_mounted_read_only(tls_stack: ComposeStack) -> None:
    for service in ("executor", "agent"):
        mounts = json.loads(
            run(["docker", "inspect", "--format", "{{json .Mounts}}", tls_stack.container(service)]).stdout
        )
        tls_mount = next(m for m in mounts if m["Destination"] == "/etc/firebox/tls")
        assert tls_mount["RW"] is False
        assert Path(tls_mount["Source"]).exists()
