"""Helpers for the deployment end-to-end tests: run commands with bounded waits, wait for
containers to turn healthy, call services with grpcurl, and clean up workspace containers the
deployed executors left on the host engine."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GRPCURL = str(REPO / ".venv" / "bin" / "grpcurl") if (REPO / ".venv/bin/grpcurl").exists() else "grpcurl"
FIREBOX_CLI = str(REPO / ".venv" / "bin" / "firebox")
SERVICE_IMAGE = os.environ.get("FIREBOX_SERVICE_IMAGE", "firebox:latest")
# Labels the executor's Docker backend puts on workspace containers and volumes.
LABEL_MANAGED = "dev.firebox.managed"
LABEL_OWNER = "dev.firebox.owner"
LABEL_WORKSPACE_ID = "dev.firebox.workspace-id"


def run(
    argv: Sequence[str],
    *,
    timeout: float = 60,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; on failure the error carries its output."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        list(argv),
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def have_tools() -> str | None:
    """Why the deployment tests cannot run here, or None when they can."""
    if shutil.which("docker") is None:
        return "docker CLI not installed"
    if subprocess.run(["docker", "version"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker engine answers (make docker)"
    return None


_prepared = False


def prepare_images() -> None:
    """docker-compose, the workspace image, the base image and the service image
    (scripts/deploy-env.sh), once per test session; `make e2e` does it before pytest and says so
    with FIREBOX_E2E_PREPARED=1."""
    global _prepared
    if _prepared or os.environ.get("FIREBOX_E2E_PREPARED") == "1":
        return
    run(["bash", "scripts/deploy-env.sh"], timeout=900)
    _prepared = True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def container_health(container: str) -> str:
    """The engine's health status of a container: starting, healthy, unhealthy (or none)."""
    result = run(["docker", "inspect", "--format", "{{json .State}}", container], check=False)
    if result.returncode != 0:
        return "missing"
    state = json.loads(result.stdout)
    return (state.get("Health") or {}).get("Status", "none")


def wait_healthy(containers: Sequence[str], *, within: float, describe: str) -> None:
    """Wait until every container reports healthy; fail with their logs after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        statuses = {name: container_health(name) for name in containers}
        if all(status == "healthy" for status in statuses.values()):
            return
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {name} ({statuses[name]})\n"
                + run(["docker", "logs", "--tail", "40", name], check=False).stderr
                for name in containers
            )
            raise AssertionError(f"{describe}: not healthy within {within:.0f} s: {statuses}\n{logs}")
        time.sleep(1)


def container_ip(container: str) -> str:
    """The container's address on its (first) network."""
    result = run(
        [
            "docker",
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            container,
        ]
    )
    return result.stdout.split()[0]


def grpcurl(target: str, *args: str, data: str | None = None, token: str | None = None) -> str:
    """Call grpcurl (plaintext, reflection) and return its stdout; fails on a non-zero exit."""
    argv = [GRPCURL, "-plaintext", "-max-time", "60"]
    if token:
        argv += ["-H", f"authorization: Bearer {token}"]
    if data is not None:
        argv += ["-d", data]
    argv += [target, *args]
    return run(argv, timeout=90).stdout


def remove_workspaces_of(owners: Sequence[str]) -> None:
    """Remove the workspace containers and volumes that executors with these instance ids made on
    the host engine: compose and stack teardown do not know about them."""
    for owner in owners:
        label = f"label={LABEL_OWNER}={owner}"
        ids = run(["docker", "ps", "-aq", "--filter", label], check=False).stdout.split()
        if ids:
            run(["docker", "rm", "-f", *ids], check=False)
        volumes = run(["docker", "volume", "ls", "-q", "--filter", label], check=False).stdout.split()
        if volumes:
            run(["docker", "volume", "rm", "-f", *volumes], check=False)


def workspace_owner(workspace_id: str) -> str:
    """The instance id of the executor that owns a workspace, from its container's labels."""
    out = run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label={LABEL_WORKSPACE_ID}={workspace_id}",
            "--format",
            f'{{{{.Label "{LABEL_OWNER}"}}}}',
        ]
    ).stdout.split()
    assert len(out) == 1, f"expected one container for workspace {workspace_id}, found {out}"
    return out[0]


@dataclass(frozen=True)
class ComposeStack:
    """A running compose project: its name, files, published addresses and environment."""

    project: str
    files: tuple[str, ...]
    agent: str  # host:port published for the agent
    executor: str  # host:port published for the executor (loopback only)
    env: dict[str, str]

    def compose(self, *args: str) -> list[str]:
        files = [arg for name in self.files for arg in ("-f", name)]
        return ["docker-compose", "-p", self.project, *files, *args]

    def container(self, service: str) -> str:
        return run(self.compose("ps", "-q", service), env=self.env).stdout.strip()


HEALTHY_WITHIN_SECONDS = 180


@contextmanager
def compose_stack(*files: str, env: Mapping[str, str] | None = None) -> Iterator[ComposeStack]:
    """`docker-compose up -d` a fresh project on free ports, wait until executor and agent are
    healthy, and always tear it down: `down -v`, then the workspace containers and volumes its
    executor made on the host engine (compose does not know them)."""
    project = "fbe2e" + secrets.token_hex(3)
    agent_port, executor_port = free_port(), free_port()
    stack_env = {
        **(env or {}),
        "FIREBOX_AGENT_PORT": str(agent_port),
        "FIREBOX_EXECUTOR_PORT": str(executor_port),
    }
    stack = ComposeStack(project, files, f"127.0.0.1:{agent_port}", f"127.0.0.1:{executor_port}", stack_env)
    try:
        run(stack.compose("up", "-d"), env=stack_env, timeout=300)
        wait_healthy(
            [stack.container("executor"), stack.container("agent")],
            within=HEALTHY_WITHIN_SECONDS,
            describe=f"compose stack {' + '.join(files)}",
        )
        yield stack
    finally:
        # The executor's instance id owns its workspaces; read it from the state volume, which
        # outlives a crashed container.
        found = run(
            [
                "docker",
                "run",
                "--rm",
                "-v",
                f"{project}_executor-state:/s",
                "--entrypoint",
                "cat",
                SERVICE_IMAGE,
                "/s/instance-id",
            ],
            check=False,
        )
        run(
            stack.compose("down", "-v", "--remove-orphans", "-t", "10"),
            env=stack_env,
            check=False,
            timeout=180,
        )
        remove_workspaces_of(found.stdout.split())


# -- Swarm -------------------------------------------------------------------------------------


def swarm_state() -> str:
    return run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"]).stdout.strip()


@contextmanager
def joined_swarm() -> Iterator[bool]:
    """A single-node swarm (`docker swarm init --advertise-addr 127.0.0.1` when the engine is in
    none); left again afterwards if this made it. Yields whether it did."""
    made = False
    if swarm_state() != "active":
        run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"])
        made = True
    try:
        yield made
    finally:
        if made:
            run(["docker", "swarm", "leave", "--force"], check=False, timeout=60)


def bridge_gateway(network: str = "docker_gwbridge") -> str:
    """The host's address on a Docker bridge network: what containers dial to reach a server on
    the host (Swarm tasks on an overlay network route out through docker_gwbridge)."""
    return run(
        ["docker", "network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", network]
    ).stdout.strip()


@dataclass(frozen=True)
class SwarmStack:
    name: str

    def containers(self, service: str) -> list[str]:
        return run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.name}_{service}"]
        ).stdout.split()

    def slot_of(self, container: str) -> str:
        task = run(
            [
                "docker",
                "inspect",
                "--format",
                '{{index .Config.Labels "com.docker.swarm.task.name"}}',
                container,
            ]
        ).stdout.strip()
        return task.rsplit(".", 2)[1]

    def instance_id(self, container: str) -> str:
        """An executor replica's instance id (the owner label of the workspaces it makes)."""
        slot = self.slot_of(container)
        return run(
            ["docker", "exec", container, "cat", f"/var/lib/firebox/executor/slot-{slot}/instance-id"]
        ).stdout.strip()

    def host_port(self, container: str, target: int) -> int:
        """The host port a task publishes `target` on (host mode)."""
        ports = json.loads(
            run(["docker", "inspect", "--format", "{{json .NetworkSettings.Ports}}", container]).stdout
        )
        return int(ports[f"{target}/tcp"][0]["HostPort"])

    def wait_for_replicas(self, service: str, count: int, within: float) -> list[str]:
        deadline = time.monotonic() + within
        while True:
            containers = self.containers(service)
            if len(containers) == count:
                return containers
            if time.monotonic() > deadline:
                tasks = run(["docker", "service", "ps", "--no-trunc", f"{self.name}_{service}"], check=False)
                raise AssertionError(
                    f"{service}: {len(containers)} of {count} replicas running\n{tasks.stdout}"
                )
            time.sleep(1)


@contextmanager
def swarm_stack(
    prefix: str,
    replicas: Mapping[str, int],
    *,
    env: Mapping[str, str],
    overlays: Sequence[str] = (),
    volumes: Sequence[str] = ("executor-state", "agent-state"),
    within: float = 240,
) -> Iterator[SwarmStack]:
    """Deploy compose.yaml (and `overlays`, with -c) as a stack with scripts/stack-deploy.sh on
    the swarm this engine is in, wait until `replicas` (service -> count) run and are healthy,
    and always remove it: `docker stack rm`, its containers gone, the workspace containers its
    executors made, its volumes."""
    stack = SwarmStack(prefix + secrets.token_hex(3))
    owners: list[str] = []
    argv = ["bash", "scripts/stack-deploy.sh", stack.name]
    for overlay in overlays:
        argv += ["-c", overlay]
    try:
        run(argv, env=env, timeout=180)
        running = [
            c for service, count in replicas.items() for c in stack.wait_for_replicas(service, count, within)
        ]
        wait_healthy(running, within=within, describe=f"swarm stack {stack.name}")
        if "executor" in replicas:
            owners.extend(stack.instance_id(c) for c in stack.containers("executor"))
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
        for volume in volumes:
            run(["docker", "volume", "rm", "-f", f"{stack.name}_{volume}"], check=False)
