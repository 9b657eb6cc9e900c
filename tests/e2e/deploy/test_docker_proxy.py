"""The narrower Docker access (compose.socket-proxy.yaml): firebox.deploy.docker_proxy in front of
the engine's socket passes the calls the executor needs and refuses those that make a host root."""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import time
from collections.abc import Iterator

import docker
import docker.errors
import pytest
from docker.types import Mount

from tests.support.deploy import (
    SERVICE_IMAGE,
    ComposeStack,
    compose_stack,
    free_port,
    grpcurl,
    have_tools,
    prepare_images,
    run,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

WORKSPACE_IMAGE = "firebox-busybox:latest"


def _wait_for_ping(port: int, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/_ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the proxy on port {port} did not answer /_ping within {within:.0f} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def proxy_port() -> Iterator[int]:
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    prepare_images()
    name = "fbproxy" + secrets.token_hex(3)
    port = free_port()
    run(
        ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:2375",
         "-v", "/var/run/docker.sock:/var/run/docker.sock", SERVICE_IMAGE, "docker-proxy"]
    )  # fmt: skip
    try:
        _wait_for_ping(port, within=30)
        yield port
    finally:
        run(["docker", "rm", "-f", name], check=False)


@pytest.fixture
def via_proxy(proxy_port: int) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{proxy_port}", timeout=30)
    client.made = []  # type: ignore[attr-defined]
    volume = "fbproxy-ws-" + secrets.token_hex(4)
    client.volume_name = volume  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        for container_id in client.made:  # type: ignore[attr-defined]
            run(["docker", "rm", "-f", container_id], check=False)
        run(["docker", "volume", "rm", "-f", volume], check=False)
        client.close()


def _create(client: docker.DockerClient, **kwargs: object) -> str:
    container = client.containers.create(WORKSPACE_IMAGE, ["sleep", "60"], **kwargs)
    client.made.append(container.id)  # type: ignore[attr-defined]
    return container.id


def test_proxy_passes_what_the_executor_does(via_proxy: docker.DockerClient) -> None:
    volume = via_proxy.volume_name  # type: ignore[attr-defined]
    container_id = _create(
        via_proxy,
        mounts=[Mount("/workspace", volume, type="volume")],
        cap_drop=["ALL"],
        network_mode="none",
        labels={"dev.firebox.test": "proxy"},
        init=True,
    )
    container = via_proxy.containers.get(container_id)
    container.start()
    assert any(
        c.id == container_id for c in via_proxy.containers.list(filters={"label": "dev.firebox.test=proxy"})
    )
    exec_id = via_proxy.api.exec_create(container_id, ["sh", "-c", "cat; echo done"], stdin=True)["Id"]
    stream = via_proxy.api.exec_start(exec_id, socket=True)._sock
    stream.sendall(b"through the tunnel\n")
    stream.shutdown(socket.SHUT_WR)  # end of stdin must reach the process: cat then ends
    stream.settimeout(10)
    received = b""
    while chunk := stream.recv(65536):
        received += chunk
    assert b"through the tunnel\n" in received and b"done\n" in received
    assert via_proxy.api.exec_inspect(exec_id)["ExitCode"] == 0
    container.stop(timeout=1)
    container.remove(force=True)
    via_proxy.volumes.get(volume).remove(force=True)


@pytest.mark.parametrize(
    ("what", "kwargs"),
    [
        ("privileged", {"privileged": True}),
        ("host root bind", {"volumes": {"/": {"bind": "/host", "mode": "rw"}}}),
        ("bind mount", {"mounts": [Mount("/host", "/", type="bind")]}),
        ("host pid namespace", {"pid_mode": "host"}),
        ("host network", {"network_mode": "host"}),
        ("SYS_ADMIN", {"cap_add": ["SYS_ADMIN"]}),
        ("devices", {"devices": ["/dev/sda:/dev/sda:rwm"]}),
        ("unconfined seccomp", {"security_opt": ["seccomp=unconfined"]}),
    ],
)
def test_proxy_refuses_containers_that_would_reach_the_host(
    via_proxy: docker.DockerClient, what: str, kwargs: dict
) -> None:
    with pytest.raises(docker.errors.APIError) as refused:
        _create(via_proxy, **kwargs)
    assert refused.value.status_code == 403, what


@pytest.mark.parametrize(
    "host_config",
    [
        '{"\\u0050rivileged": true}',
        '{"privileged": false, "PRIVILEGED": true}',
        '{"Bind\u017f": ["/:/host"]}',
    ],
    ids=["escaped key", "repeated key in other case", "long s folds to s"],
)
def test_proxy_refuses_keys_spelled_to_slip_past_a_check(proxy_port: int, host_config: str) -> None:
    # The engine's JSON decoder undoes escapes, matches keys case-insensitively and keeps the last
    # of repeated keys: the proxy must judge what the engine will read, not the spelling.
    body = f'{{"Image": "{WORKSPACE_IMAGE}", "HostConfig": {host_config}}}'.encode()
    connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    connection.request("POST", "/v1.41/containers/create", body, {"Content-Type": "application/json"})
    assert connection.getresponse().status == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1.41/info"),
        ("GET", "/v1.41/networks"),
        ("GET", "/v1.41/swarm"),
        ("GET", "/v1.41/secrets"),
        ("POST", "/v1.41/build"),
        ("GET", "/v1.41/containers/x/archive?path=/etc"),
        ("PUT", "/v1.41/containers/x/archive?path=/"),
        ("POST", "/v1.41/containers/x/commit"),
        ("GET", "/v1.41/events"),
    ],
)
def test_proxy_refuses_every_other_call(proxy_port: int, method: str, path: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    connection.request(method, path, b"" if method != "GET" else None)
    assert connection.getresponse().status == 403


@pytest.fixture(scope="module")
def proxied_stack(proxy_port: int) -> Iterator[ComposeStack]:
    with compose_stack("compose.yaml", "compose.socket-proxy.yaml") as deployed:
        yield deployed


def test_executor_behind_the_proxy_holds_no_socket_and_is_not_root(proxied_stack: ComposeStack) -> None:
    executor = proxied_stack.container("executor")
    assert (
        run(["docker", "exec", executor, "test", "-S", "/var/run/docker.sock"], check=False).returncode != 0
    )
    assert run(["docker", "exec", executor, "id", "-u"]).stdout.strip() == "10001"


def test_executor_behind_the_proxy_creates_workspaces(proxied_stack: ComposeStack) -> None:
    created = json.loads(
        grpcurl(
            proxied_stack.executor,
            "firebox.executor.v1.ExecutorService/CreateWorkspace",
            data='{"name": "behind-proxy"}',
        )
    )
    assert created["workspace"]["status"] == "WORKSPACE_STATUS_RUNNING"
    proxy_log = run(["docker", "logs", proxied_stack.container("docker-proxy")]).stderr
    assert "POST /v1.41/containers/create" in proxy_log
    assert "refused" not in proxy_log
