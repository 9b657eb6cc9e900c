"""The Docker API proxy's policy, without an engine: which calls pass and which are refused."""

from __future__ import annotations

import json

import pytest

from firebox.deploy.docker_proxy import Refused, check_request


def _create(host_config: dict) -> bytes:
    return json.dumps({"Image": "firebox-busybox:latest", "HostConfig": host_config}).encode()


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/_ping"),
        ("HEAD", "/_ping"),
        ("GET", "/v1.41/version"),
        ("GET", "/v1.41/containers/json?all=1&filters=%7B%7D"),
        ("GET", "/v1.41/containers/firebox-ws_1/json"),
        ("POST", "/v1.41/containers/abc123/start"),
        ("POST", "/v1.41/containers/abc123/exec"),
        ("POST", "/v1.41/exec/0123abcd/start"),
        ("GET", "/v1.41/exec/0123abcd/json"),
        ("DELETE", "/v1.41/containers/abc123?force=True"),
        ("GET", "/v1.41/volumes?filters=%7B%7D"),
        ("DELETE", "/v1.41/volumes/firebox-ws-1"),
        ("GET", "/v1.41/images/firebox-busybox:latest/json"),
        ("POST", "/v1.41/containers/firebox-ws_1/attach?stdout=1&stderr=1&stream=1"),
        ("POST", "/v1.41/containers/firebox-ws_1/pause"),
        ("POST", "/v1.41/containers/firebox-ws_1/unpause"),
        ("POST", "/v1.41/commit?container=abc&repo=firebox-snapshot&tag=sn_1&pause=0"),
        ("GET", "/v1.41/images/json?filters=%7B%7D"),
        ("DELETE", "/v1.41/images/firebox-snapshot:sn_1?force=1"),
        ("POST", "/v1.41/volumes/create"),
        ("POST", "/v1.41/images/create?fromImage=busybox&tag=latest"),
    ],
)
def test_calls_the_executor_makes_pass(method: str, target: str) -> None:
    check_request(method, target, b"")


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/v1.41/info"),
        ("POST", "/v1.41/build"),
        ("PUT", "/v1.41/containers/abc/archive?path=/"),
        ("GET", "/v1.41/containers/abc/archive?path=/etc"),
        ("POST", "/v1.41/networks/create"),
        ("POST", "/v1.41/swarm/init"),
        ("GET", "/v1.41/secrets"),
        ("POST", "/v1.41/plugins/pull"),
        ("GET", "/v1.41/containers/../info"),
        ("GET", "/v1.41/containers/../volumes/x/json"),
        ("GET", "/v1.41/containers/%2e%2e/json"),
        ("GET", "/v1.41//containers/x/json"),
        ("DELETE", "/v1.41/images/busybox"),
        ("POST", "/v1.41/commit?container=abc&repo=busybox&tag=latest"),
        ("POST", "/v1.41/commit?container=abc"),
    ],
)
def test_other_calls_are_refused(method: str, target: str) -> None:
    with pytest.raises(Refused):
        check_request(method, target, b"")


def test_a_workspace_like_container_passes() -> None:
    body = _create(
        {
            "CapDrop": ["ALL"],
            "CapAdd": ["CHOWN"],
            "NetworkMode": "none",
            "Mounts": [{"Type": "volume", "Source": "firebox-ws-1", "Target": "/workspace"}],
            "Tmpfs": {"/tmp": "rw,size=64m"},
            "Init": True,
        }
    )
    check_request("POST", "/v1.41/containers/create?name=firebox-ws_1", body)


@pytest.mark.parametrize(
    "host_config",
    [
        {"Privileged": True},
        {"privileged": True},
        {"PidMode": "host"},
        {"IpcMode": "host"},
        {"UsernsMode": "host"},
        {"NetworkMode": "host"},
        {"NetworkMode": "container:other"},
        {"Binds": ["/:/host"]},
        {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]},
        {"Devices": [{"PathOnHost": "/dev/sda"}]},
        {"CapAdd": ["SYS_ADMIN"]},
        {"CapAdd": ["cap_sys_ptrace"]},
        {"SecurityOpt": ["seccomp=unconfined"]},
        {"VolumesFrom": ["other"]},
    ],
)
def test_container_creates_that_reach_the_host_are_refused(host_config: dict) -> None:
    with pytest.raises(Refused):
        check_request("POST", "/v1.41/containers/create", _create(host_config))


@pytest.mark.parametrize(
    "body",
    [
        b'{"HostConfig": {"\\u0050rivileged": true}}',
        b'{"HostConfig": {"privileged": false, "Privileged": true}}',
        '{"HostConfig": {"Bind\u017f": ["/:/host"]}}'.encode(),
        b'{"HostConfig": {"Privileged": true',
    ],
    ids=["escaped key", "repeated key", "non-ascii key", "not json"],
)
def test_spellings_that_could_slip_past_are_refused(body: bytes) -> None:
    with pytest.raises(Refused):
        check_request("POST", "/v1.41/containers/create", body)
