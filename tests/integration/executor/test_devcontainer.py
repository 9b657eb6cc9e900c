"""CreateWorkspace from a devcontainer.json on a real Docker engine: image, env, user and the
lifecycle commands are honoured; keys Firebox does not act on are refused, listed."""

from __future__ import annotations

import grpc
import pytest

from executor_service.devcontainer import strip_jsonc
from firebox.executor.v1 import executor_pb2 as pb
from tests.support.executor_client import execute
from tests.support.stock_images import stock_image

pytestmark = pytest.mark.docker


def devcontainer_json(image: str, extra: str = "") -> str:
    return f"""{{
  // As an editor writes it: comments, trailing commas.
  "name": "toolchain",
  "image": "{image}",
  "containerEnv": {{ "TOOL_HOME": "/workspace/.tool", }},
  "remoteEnv": {{ "GREETING": "hello, world" }},
  "remoteUser": "1000",
  "workspaceFolder": "/workspace",
  /* run once */
  "onCreateCommand": "mkdir -p $TOOL_HOME && echo made > $TOOL_HOME/state && echo on-create-ran",
  "postCreateCommand": ["sh", "-c", "echo $GREETING > greeting; echo post >&2"],
  "customizations": {{ "vscode": {{ "extensions": ["ms-python.python"] }} }},
  {extra}
}}"""


async def test_workspace_from_a_devcontainer_runs_its_commands_once_with_output(stub):
    text = devcontainer_json(stock_image("debian"))
    response = await stub.CreateWorkspace(
        pb.CreateWorkspaceRequest(name="devc", devcontainer=pb.Devcontainer(json=text)), timeout=120
    )
    ws = response.workspace
    try:
        assert ws.image == stock_image("debian") and ws.policy.user == "1000"
        assert [c.name for c in response.setup] == ["onCreateCommand", "postCreateCommand"]
        on_create, post_create = response.setup
        assert on_create.exit_code == 0 and on_create.stdout == "on-create-ran\n"
        assert post_create.exit_code == 0 and post_create.stderr == "post\n"
        out = await execute(stub, ws.id, 'cat .tool/state greeting; echo "$TOOL_HOME"; id -u')
        assert out.stdout == b"made\nhello, world\n/workspace/.tool\n1000\n"
        # Not again on a restart.
        await stub.StopWorkspace(pb.StopWorkspaceRequest(workspace_id=ws.id))
        await stub.StartWorkspace(pb.StartWorkspaceRequest(workspace_id=ws.id))
        assert (await execute(stub, ws.id, "cat .tool/state")).stdout == b"made\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_a_failing_lifecycle_command_ends_the_list_and_keeps_the_workspace(stub):
    text = '{"image": "firebox-busybox:latest", "onCreateCommand": "echo broken >&2; exit 3", "postCreateCommand": "true"}'
    response = await stub.CreateWorkspace(pb.CreateWorkspaceRequest(devcontainer=pb.Devcontainer(json=text)))
    try:
        assert [(c.name, c.exit_code, c.stderr) for c in response.setup] == [
            ("onCreateCommand", 3, "broken\n")
        ]
        assert response.workspace.status == pb.WORKSPACE_STATUS_RUNNING
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=response.workspace.id))


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            '{"image": "x", "features": {}, "forwardPorts": [3000], "mounts": [], "runArgs": ["--privileged"]}',
            ["features", "forwardPorts", "mounts", "runArgs"],
        ),
        ('{"build": {"dockerfile": "Dockerfile"}}', ["build", "not supported yet"]),
        ('{"image": "x", "workspaceFolder": "/src"}', ["workspaceFolder", "/workspace"]),
        ('{"image": "x", "postCreateCommand": {"a": "b"}}', ["postCreateCommand", "object form"]),
        ('{"containerEnv": {}}', ["image", "required"]),
        ("[1, 2]", ["object"]),
        ("{not json", ["JSON"]),
    ],
)
async def test_what_firebox_does_not_support_is_invalid_argument_listing_it(stub, text, needles):
    before = len((await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(devcontainer=pb.Devcontainer(json=text)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for needle in needles:
        assert needle in info.value.details()
    assert len((await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces) == before


def test_comments_and_trailing_commas_go_but_strings_stay_whole():
    text = '{"a": "x//y /* z */", // c\n "b": [1, 2,], /* d */ "c": "e,}",\n}'
    assert strip_jsonc(text).replace(" ", "").replace("\n", "") == '{"a":"x//y/*z*/","b":[1,2],"c":"e,}"}'
