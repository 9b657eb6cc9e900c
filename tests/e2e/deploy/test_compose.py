"""compose.yaml on this host: images built locally (no registry), both services healthy through
their gRPC health checks, driven with grpcurl and the firebox CLI, torn down even on failure."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.support.deploy import (
    FIREBOX_CLI,
    ComposeStack,
    compose_stack,
    container_health,
    grpcurl,
    have_tools,
    prepare_images,
    run,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    prepare_images()
    with compose_stack("compose.yaml") as deployed:
        yield deployed


def test_both_services_turn_healthy_through_the_grpc_health_check(stack: ComposeStack) -> None:
    # wait_healthy in the fixture already needed this; the engine's verdict comes from
    # `python -m firebox.common.healthprobe` inside each container.
    assert container_health(stack.container("executor")) == "healthy"
    assert container_health(stack.container("agent")) == "healthy"


def test_agent_starts_only_after_the_executor_is_healthy(stack: ComposeStack) -> None:
    def state(service: str) -> dict:
        return json.loads(
            run(["docker", "inspect", "--format", "{{json .State}}", stack.container(service)]).stdout
        )

    executor_log = state("executor")["Health"]["Log"]
    agent_started = state("agent")["StartedAt"]
    first_healthy = min(entry["End"] for entry in executor_log if entry["ExitCode"] == 0)
    # Both are RFC 3339 in UTC from the same engine clock: string order is time order.
    assert agent_started > first_healthy, (agent_started, first_healthy)


def test_grpcurl_lists_services_by_reflection(stack: ComposeStack) -> None:
    agent_services = grpcurl(stack.agent, "list").split()
    assert "firebox.agent.v1.AgentService" in agent_services
    assert "grpc.health.v1.Health" in agent_services
    executor_services = grpcurl(stack.executor, "list").split()
    assert "firebox.executor.v1.ExecutorService" in executor_services


def test_grpcurl_health_check_reports_serving(stack: ComposeStack) -> None:
    for target in (stack.agent, stack.executor):
        assert json.loads(grpcurl(target, "grpc.health.v1.Health/Check")) == {"status": "SERVING"}


def _stdout_of(responses_text: str) -> tuple[str, int | None]:
    """grpcurl prints one JSON object per response message; join stdout, find the exit code."""
    decoder = json.JSONDecoder()
    text, index, out, code = responses_text.strip(), 0, b"", None
    while index < len(text):
        message, index = decoder.raw_decode(text, index)
        while index < len(text) and text[index].isspace():
            index += 1
        # grpcurl prints the .proto field names; accept the JSON (camelCase) names as well.
        out += base64.b64decode(message.get("stdout_data", message.get("stdoutData", "")))
        if "exit_code" in message or "exitCode" in message:
            code = message.get("exit_code", message.get("exitCode"))
    return out.decode(), code


def test_grpcurl_executes_a_command_through_the_agent(stack: ComposeStack) -> None:
    created = json.loads(
        grpcurl(
            stack.executor,
            "firebox.executor.v1.ExecutorService/CreateWorkspace",
            data='{"name": "e2e-grpcurl"}',
        )
    )
    workspace_id = created["workspace"]["id"]
    request = json.dumps({"workspace_id": workspace_id, "script": "echo hello from $(hostname); exit 3"})
    output = grpcurl(stack.agent, "firebox.agent.v1.AgentService/Execute", data=request)
    stdout, code = _stdout_of(output)
    assert stdout.startswith("hello from "), output
    assert code == 3, output


def test_cli_runs_a_command_through_the_agent_and_exits_with_its_status(stack: ComposeStack) -> None:
    flags = ["--agent", stack.agent, "--executor", stack.executor]
    status = run([FIREBOX_CLI, *flags, "status"], check=False, timeout=60)
    assert status.returncode == 0, status.stderr
    created = run([FIREBOX_CLI, *flags, "workspaces", "create", "e2e-cli", "--json"], timeout=120)
    workspace_id = json.loads(created.stdout)["workspace"]["id"]
    result = run(
        [
            FIREBOX_CLI,
            *flags,
            "exec",
            "--via",
            "agent",
            "--workspace",
            workspace_id,
            "--shell",
            "--",
            "echo cli-through-agent; exit 4",
        ],
        check=False,
        timeout=120,
    )
    assert result.stdout.strip() == "cli-through-agent", result
    assert result.returncode == 4, result


def test_config_and_logs_live_on_named_volumes(stack: ComposeStack) -> None:
    for service, volume, path in (
        ("executor", f"{stack.project}_executor-state", "/var/lib/firebox/executor"),
        ("agent", f"{stack.project}_agent-state", "/var/lib/firebox/agent"),
    ):
        mounts = json.loads(
            run(["docker", "inspect", "--format", "{{json .Mounts}}", stack.container(service)]).stdout
        )
        assert {"Type": "volume", "Name": volume, "Destination": path}.items() <= next(
            m for m in mounts if m["Destination"] == path
        ).items()
        listing = run(["docker", "exec", stack.container(service), "ls", f"{path}/logs"]).stdout.split()
        assert listing, f"no log files under {path}/logs in {service}"
