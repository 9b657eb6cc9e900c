"""compose.yaml as a Swarm stack on a single-node swarm (`docker swarm init --advertise-addr
127.0.0.1`) with two executor replicas, deployed with scripts/stack-deploy.sh and removed after,
even on failure; the swarm is left again if this test made it."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.deploy import (
    GRPCURL,
    free_port,
    grpcurl,
    have_tools,
    prepare_images,
    remove_workspaces_of,
    run,
    wait_healthy,
    workspace_owner,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

REPLICAS = 2
HEALTHY_WITHIN_SECONDS = 240


@dataclass(frozen=True)
class SwarmStack:
    name: str
    agent: str  # published through the swarm's routing mesh

    def containers(self, service: str) -> list[str]:
        return run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.name}_{service}"]
        ).stdout.split()

    def slot_of(self, container: str) -> str:
        return (
            run(
                [
                    "docker",
                    "inspect",
                    "--format",
                    '{{index .Config.Labels "com.docker.swarm.task.name"}}',
                    container,
                ]
            )
            .stdout.strip()
            .rsplit(".", 2)[1]
        )

    def instance_id(self, container: str) -> str:
        slot = self.slot_of(container)
        return run(
            ["docker", "exec", container, "cat", f"/var/lib/firebox/executor/slot-{slot}/instance-id"]
        ).stdout.strip()


def _swarm_state() -> str:
    return run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"]).stdout.strip()


def _wait_for_replicas(stack: SwarmStack, service: str, count: int, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while True:
        containers = stack.containers(service)
        if len(containers) == count:
            return containers
        if time.monotonic() > deadline:
            tasks = run(["docker", "service", "ps", "--no-trunc", f"{stack.name}_{service}"], check=False)
            raise AssertionError(f"{service}: {len(containers)} of {count} replicas running\n{tasks.stdout}")
        time.sleep(1)


@pytest.fixture(scope="module")
def swarm_stack() -> Iterator[SwarmStack]:
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    prepare_images()
    made_swarm = False
    if _swarm_state() != "active":
        run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"])
        made_swarm = True
    stack = SwarmStack("fbswarm" + secrets.token_hex(3), f"127.0.0.1:{free_port()}")
    env = {"FIREBOX_AGENT_PORT": stack.agent.rsplit(":", 1)[1], "FIREBOX_EXECUTOR_REPLICAS": str(REPLICAS)}
    owners: list[str] = []
    try:
        run(["bash", "scripts/stack-deploy.sh", stack.name], env=env, timeout=180)
        executors = _wait_for_replicas(stack, "executor", REPLICAS, HEALTHY_WITHIN_SECONDS)
        agents = _wait_for_replicas(stack, "agent", 1, HEALTHY_WITHIN_SECONDS)
        wait_healthy([*executors, *agents], within=HEALTHY_WITHIN_SECONDS, describe="swarm stack")
        owners.extend(stack.instance_id(c) for c in executors)
        yield stack
    finally:
        run(["docker", "stack", "rm", stack.name], check=False, timeout=120)
        # `stack rm` returns before the containers are gone; volumes can go only after them.
        deadline = time.monotonic() + 90
        while (
            time.monotonic() < deadline
            and run(
                ["docker", "ps", "-aq", "--filter", f"label=com.docker.stack.namespace={stack.name}"],
                check=False,
            ).stdout.split()
        ):
            time.sleep(1)
        remove_workspaces_of(owners)
        for volume in ("executor-state", "agent-state"):
            run(["docker", "volume", "rm", "-f", f"{stack.name}_{volume}"], check=False)
        if made_swarm:
            run(["docker", "swarm", "leave", "--force"], check=False, timeout=60)


def test_two_executor_replicas_are_healthy_with_their_own_identity(swarm_stack: SwarmStack) -> None:
    executors = swarm_stack.containers("executor")
    assert len(executors) == REPLICAS
    slots = {swarm_stack.slot_of(c) for c in executors}
    assert slots == {"1", "2"}
    # Each replica owns the workspaces it creates: distinct instance ids, kept per task slot.
    assert len({swarm_stack.instance_id(c) for c in executors}) == REPLICAS


def test_agent_reaches_every_replica_by_its_own_address(swarm_stack: SwarmStack) -> None:
    agent = swarm_stack.containers("agent")[0]
    resolved = run(
        [
            "docker",
            "exec",
            agent,
            "python",
            "-c",
            "import socket; print(' '.join(sorted(socket.gethostbyname_ex('tasks.executor')[2])))",
        ]
    ).stdout.split()
    assert len(resolved) == REPLICAS, resolved
    executor_ips = set()
    for container in swarm_stack.containers("executor"):
        networks = json.loads(
            run(["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", container]).stdout
        )
        executor_ips.update(n["IPAddress"] for n in networks.values())
    assert set(resolved) <= executor_ips
    for address in resolved:
        probe = run(
            ["docker", "exec", agent, "python", "-m", "firebox.common.healthprobe", f"{address}:50051"]
        )
        assert probe.stdout.strip() == f"{address}:50051: SERVING"


def test_agent_answers_through_the_published_port(swarm_stack: SwarmStack) -> None:
    assert "firebox.agent.v1.AgentService" in grpcurl(swarm_stack.agent, "list").split()
    assert json.loads(grpcurl(swarm_stack.agent, "grpc.health.v1.Health/Check")) == {"status": "SERVING"}


def test_workspaces_spread_across_replicas_and_route_back_through_the_agent(swarm_stack: SwarmStack) -> None:
    # The agent resolves `executor` (dnsrr: every replica's address), places new workspaces on
    # the replica with the fewest, and routes each call to the replica that created it.
    created = [
        json.loads(
            grpcurl(
                swarm_stack.agent,
                "firebox.agent.v1.AgentService/CreateWorkspace",
                data=json.dumps({"name": f"spread-{i}"}),
            )
        )["workspace"]["id"]
        for i in range(4)
    ]
    owners = {workspace_owner(w) for w in created}
    replicas = {swarm_stack.instance_id(c) for c in swarm_stack.containers("executor")}
    assert owners == replicas, f"workspaces all on {owners}, replicas {replicas}"
    for workspace_id in created:
        out = grpcurl(
            swarm_stack.agent,
            "firebox.agent.v1.AgentService/Execute",
            data=json.dumps({"workspace_id": workspace_id, "script": "echo routed"}),
        )
        assert '"exit_code": 0' in out, out
        assert '"stdout_data": "cm91dGVkCg=="' in out, out  # base64 of "routed\n"
    info = json.loads(grpcurl(swarm_stack.agent, "firebox.agent.v1.AgentService/GetServerInfo"))
    assert {e.get("instance_id") for e in info["executors"]} == replicas, info

    # A lost replica: its workspaces answer UNAVAILABLE promptly instead of hanging.
    run(["docker", "service", "scale", "--detach=false", f"{swarm_stack.name}_executor=1"], timeout=120)
    remaining = {swarm_stack.instance_id(c) for c in swarm_stack.containers("executor")}
    orphaned = next(w for w in created if workspace_owner(w) not in remaining)
    result = run(
        [GRPCURL, "-plaintext", "-max-time", "30", "-d",
         json.dumps({"workspace_id": orphaned, "script": "true"}),
         swarm_stack.agent, "firebox.agent.v1.AgentService/Execute"],
        check=False,
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Unavailable" in result.stderr, result.stderr
    assert orphaned in result.stderr, result.stderr
    # The workspaces of the replica that is left still answer.
    kept = next(w for w in created if workspace_owner(w) in remaining)
    out = grpcurl(
        swarm_stack.agent,
        "firebox.agent.v1.AgentService/Execute",
        data=json.dumps({"workspace_id": kept, "script": "echo kept"}),
    )
    assert '"exit_code": 0' in out, out
