"""The TypeScript client (clients/typescript) under Node's own test runner, against a real executor
(Docker workspaces) and a real agent started here with a bearer token required, the agent talking
to a fake model provider that streams every answer slowly enough to cut a connection mid-run.

`node --test` gets the services' addresses in FIREBOX_TEST_* variables; each of its test files
says what it covers (Execute with stdin and stop, a run resumed after a dropped connection,
cancellation, deadlines, auth failures, NOT_FOUND, files, sessions, TLS, the notebook-runner
example, and `npm pack`).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.agent_server import running_agent
from tests.support.executor_server import running_executor
from tests.support.fake_provider import FakeProvider, text_reply
from tests.support.tls_certs import make_certs

REPO = Path(__file__).resolve().parents[3]
CLIENT = REPO / "clients" / "typescript"
TOKEN = "typescript-client-token"
# Every model answer: this many text deltas "w0 ", "w1 ", ... 50 ms apart (a run lasts ~1.5 s).
REPLY_DELTAS = 30

pytestmark = [pytest.mark.docker, pytest.mark.slow]


async def _run(*argv: str, env: dict[str, str] | None = None, limit: float = 300) -> tuple[int, str]:
    """Run a program in clients/typescript; its exit status and its stdout and stderr together."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=CLIENT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.fixture(scope="module")
async def built() -> None:
    """The package's dependencies (scripts/test-env.sh installs them in CI) and its build."""
    assert shutil.which("node") and shutil.which("npm"), "Node 20 and npm are needed (scripts/test-env.sh)"
    code, output = await _run("bash", str(REPO / "scripts" / "npm-ci.sh"), "clients/typescript")
    assert code == 0, output
    code, output = await _run("npm", "run", "build")
    assert code == 0, output


@pytest.fixture(scope="module")
async def services(tmp_path_factory: pytest.TempPathFactory, built: None) -> AsyncIterator[dict[str, str]]:
    base = tmp_path_factory.mktemp("typescript")
    fake = await FakeProvider.start(text_reply(*(f"w{n} " for n in range(REPLY_DELTAS)), pause=0.05))
    certs = make_certs(base / "certs")
    try:
        async with (
            running_executor(base / "executor", auth_token=TOKEN) as executor,
            # Mutual TLS: the server's certificate from a private CA, and client certificates required.
            running_executor(
                base / "tls-executor",
                backend="bwrap",
                auth_token=TOKEN,
                tls_cert=certs.server_cert,
                tls_key=certs.server_key,
                tls_client_ca=certs.ca,
            ) as tls_executor,
            running_agent(
                base / "agent", provider=fake.base_url, executor=executor, auth_token=TOKEN
            ) as agent,
        ):
            yield {
                "FIREBOX_TEST_EXECUTOR": executor,
                "FIREBOX_TEST_AGENT": agent.target,
                "FIREBOX_TEST_TOKEN": TOKEN,
                "FIREBOX_TEST_REPLY_DELTAS": str(REPLY_DELTAS),
                "FIREBOX_TEST_TLS_EXECUTOR": tls_executor,
                "FIREBOX_TEST_TLS_DIR": str(certs.dir),
            }
    finally:
        await fake.stop()


async def _node_test(services: dict[str, str], *files: str) -> None:
    code, output = await _run("node", "--test", "--test-concurrency=1", *files, env=services)
    print(output)  # shown with -s, or when the test fails
    passed = re.search(r"^# pass (\d+)$", output, re.M)
    failed = re.search(r"^# fail (\d+)$", output, re.M)
    assert code == 0 and failed and failed.group(1) == "0", output[-6000:]
    assert passed and int(passed.group(1)) > 0, output[-6000:]
    # Skips and todos would hide untested promises.
    tail = output[-3000:]
    assert re.search(r"^# skipped 0$", output, re.M) and re.search(r"^# todo 0$", output, re.M), tail


async def test_committed_generated_code_matches_the_protos() -> None:
    """What `make lint` checks, here too so that CI (which runs `make test`) fails on stale code."""
    code, output = await _run("bash", str(REPO / "scripts" / "check-ts-client.sh"))
    assert code == 0, output
    assert "generated code is up to date" in output


async def test_executor_client_against_a_real_executor(services: dict[str, str]) -> None:
    await _node_test(services, "test/executor.test.js")


async def test_agent_client_against_a_real_agent(services: dict[str, str]) -> None:
    await _node_test(services, "test/agent.test.js")


async def test_tls_and_client_certificates(services: dict[str, str]) -> None:
    await _node_test(services, "test/tls.test.js")


async def test_the_notebook_runner_example(services: dict[str, str]) -> None:
    await _node_test(services, "test/example.test.js")


async def test_npm_pack_gives_an_installable_typed_package(services: dict[str, str]) -> None:
    await _node_test(services, "test/package.test.js")
