"""compose.yaml as a Swarm stack on a single-node swarm (`docker swarm init --advertise-addr
127.0.0.1`) with two executor replicas, deployed with scripts/stack-deploy.sh and removed after,
even on failure; the swarm is left again if this test made it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.deploy import (
    GRPCURL,
    SwarmStack,
    free_port,
    grpcurl,
    have_tools,
    joined_swarm,
    prepare_images,
    run,
    swarm_stack,
    workspace_owner,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

REPLICAS = 2
HEALTHY_WITHIN_SECONDS = 240


@dataclass(frozen=True)
class AgentSwarm(SwarmStack):
    agent: str = ""  # the agent's published address


@pytest.fixture(scope="module")
def swarm() -> Iterator[AgentSwarm]:
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    prepare_images()
    agent = f"127.0.0.1:{free_port()}"
    env = {"FIREBOX_AGENT_PORT": agent.rsplit(":", 1)[1], "FIREBOX_EXECUTOR_REPLICAS": str(REPLICAS)}
    with (
        joined_swarm(),
        swarm_stack(
            "fbswarm", {"executor": REPLICAS, "agent": 1}, env=env, within=HEALTHY_WITHIN_SECONDS
        ) as stack,
    ):
        yield AgentSwarm(stack.name, agent)


def test_two_executor_replicas_are_healthy_with_their_own_identity(swarm: AgentSwarm) -> None:
    executors = swarm.containers("executor")
    assert len(executors) == REPLICAS
    slots = {swarm.slot_of(c) for c in executors}
    assert slots == {"1", "2"}
    # Each replica owns the workspaces it creates: distinct instance ids, kept per task slot.
    assert len({swarm.instance_id(c) for c in executors}) == REPLICAS


def test_agent_reaches_every_replica_by_its_own_address(swarm: AgentSwarm) -> None:
    agent = swarm.containers("agent")[0]
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
    for container in swarm.containers("executor"):
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


def test_agent_answers_through_the_published_port(swarm: AgentSwarm) -> None:
    assert "firebox.agent.v1.AgentService" in grpcurl(swarm.agent, "list").split()
    assert json.loads(grpcurl(swarm.agent, "grpc.health.v1.Health/Check")) == {"status": "SERVING"}


def test_workspaces_spread_across_replicas_and_route_back_through_the_agent(swarm: AgentSwarm) -> None:
    # The agent resolves `executor` (dnsrr: every replica's address), places new workspaces on
    # the replica with the fewest, and routes each call to the replica that created it.
    created = [
        json.loads(
            grpcurl(
                swarm.agent,
                "firebox.agent.v1.AgentService/CreateWorkspace",
                data=json.dumps({"name": f"spread-{i}"}),
            )
        )["workspace"]["id"]
        for i in range(4)
    ]
    owners = {workspace_owner(w) for w in created}
    replicas = {swarm.instance_id(c) for c in swarm.containers("executor")}
    assert owners == replicas, f"workspaces all on {owners}, replicas {replicas}"
    for workspace_id in created:
        out = grpcurl(
            swarm.agent,
            "firebox.agent.v1.AgentService/Execute",
            data=json.dumps({"workspace_id": workspace_id, "script": "echo routed"}),
        )
        assert '"exit_code": 0' in out, out
        assert '"stdout_data": "cm91dGVkCg=="' in out, out  # base64 of "routed\n"
    info = json.loads(grpcurl(swarm.agent, "firebox.agent.v1.AgentService/GetServerInfo"))
    assert {e.get("instance_id") for e in info["executors"]} == replicas, info

    # A lost replica: its workspaces answer UNAVAILABLE promptly instead of hanging.
    run(["docker", "service", "scale", "--detach=false", f"{swarm.name}_executor=1"], timeout=120)
    remaining = {swarm.instance_id(c) for c in swarm.containers("executor")}
    orphaned = next(w for w in created if workspace_owner(w) not in remaining)
    result = run(
        [GRPCURL, "-plaintext", "-max-time", "30", "-d",
         json.dumps({"workspace_id": orphaned, "script": "true"}),
         swarm.agent, "firebox.agent.v1.AgentService/Execute"],
        check=False,
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Unavailable" in result.stderr, result.stderr
    assert orphaned in result.stderr, result.stderr
    # The workspaces of the replica that is left still answer.
    kept = next(w for w in created if workspace_owner(w) in remaining)
    out = grpcurl(
        swarm.agent,
        "firebox.agent.v1.AgentService/Execute",
        data=json.dumps({"workspace_id": kept, "script": "echo kept"}),
    )
    assert '"exit_code": 0' in out, out
