"""CreateWorkspace from a devcontainer.json on a real Docker engine: image or a Dockerfile build
(args, target, context, cached by content), env, user and the lifecycle commands are honoured;
keys Firebox does not act on are refused, listed."""

from __future__ import annotations

import io
import secrets
import tarfile
from pathlib import Path

import docker
import grpc
import pytest

from firebox.client import devcontainer as devcontainer_folder
from firebox.common.jsonc import strip_jsonc
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
        ('{"image": "x", "dockerFile": "Dockerfile"}', ["dockerFile", "build.dockerfile"]),
        ('{"build": {"dockerfile": "Dockerfile", "cacheFrom": "x"}}', ["devcontainer.build", "cacheFrom"]),
        ('{"image": "x", "build": {"dockerfile": "Dockerfile"}}', ["image or build"]),
        ('{"build": {"context": "."}}', ["build.dockerfile", "required"]),
        ('{"build": {"dockerfile": "../Dockerfile"}}', ["build.dockerfile", "inside the build context"]),
        ('{"build": {"dockerfile": "Dockerfile"}}', ["devcontainer.context", "required with build"]),
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


# A project as editors lay it out: the Dockerfile beside devcontainer.json, the context one up.
DOCKERFILE = """\
FROM firebox-busybox:latest AS base
ARG GREETING=none
RUN mkdir -p /opt/tool && echo "$GREETING" > /opt/tool/greeting
COPY app.txt /opt/tool/app.txt

FROM base AS tool
RUN echo tool-stage > /opt/tool/stage

FROM base AS broken
RUN echo the broken stage ran; exit 3
"""


def project(root: Path, target: str = "tool") -> Path:
    (root / ".devcontainer").mkdir(parents=True)
    (root / ".devcontainer" / "Dockerfile").write_text(DOCKERFILE)
    (root / "app.txt").write_text("app v1\n")
    # In the context only: each run's project is new to the executor's image cache.
    (root / "nonce").write_text(secrets.token_hex(8))
    (root / ".devcontainer" / "devcontainer.json").write_text(
        f"""{{
  // build.* are relative to this folder
  "build": {{ "dockerfile": "Dockerfile", "context": "..", "args": {{ "GREETING": "hi" }}, "target": "{target}" }},
  "postCreateCommand": "cat /opt/tool/greeting /opt/tool/app.txt /opt/tool/stage",
}}"""
    )
    return root


async def create_from(stub, folder: Path) -> pb.CreateWorkspaceResponse:
    request = pb.CreateWorkspaceRequest(devcontainer=devcontainer_folder.load(folder))
    return await stub.CreateWorkspace(request, timeout=300)


@pytest.fixture
def built_images():
    """Removes the images the test built (the executor keeps 16 as its cache)."""
    before = {image.id for image in docker.from_env().images.list(name="firebox-devcontainer")}
    yield
    client = docker.from_env()
    for image in client.images.list(name="firebox-devcontainer"):
        if image.id not in before:
            client.images.remove(image.id, force=True)
    client.close()


async def test_a_dockerfile_is_built_with_its_args_target_and_context_then_taken_from_the_cache(
    stub, tmp_path, built_images
):
    folder = project(tmp_path / "proj")
    first = await create_from(stub, folder)
    second = await create_from(stub, folder)
    (folder / "app.txt").write_text("app v2\n")
    changed = await create_from(stub, folder)
    try:
        build, post = first.setup
        assert build.name == "build" and build.exit_code == 0
        assert "Successfully built" in build.stdout and "the broken stage ran" not in build.stdout
        assert post.exit_code == 0 and post.stdout == "hi\napp v1\ntool-stage\n", post
        assert first.workspace.image.startswith("firebox-devcontainer:")
        # The same files, Dockerfile, args and target: the image built before, nothing rebuilt.
        assert second.workspace.image == first.workspace.image
        assert second.setup[0].stdout.startswith("using the cached image")
        # Another context is another image.
        assert changed.workspace.image != first.workspace.image
        assert changed.setup[1].stdout == "hi\napp v2\ntool-stage\n"
        out = await execute(stub, second.workspace.id, "cat /opt/tool/app.txt; id -u")
        assert out.stdout == b"app v1\n1000\n"
    finally:
        for response in (first, second, changed):
            await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=response.workspace.id))


async def test_a_failing_build_is_a_failed_precondition_with_its_output_and_makes_nothing(
    stub, tmp_path, built_images
):
    before = len((await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create_from(stub, project(tmp_path / "proj", target="broken"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "build failed" in info.value.details() and "the broken stage ran" in info.value.details()
    assert len((await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces) == before


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("context", "dockerfile", "needle"),
    [
        (b"not a tar archive at all" * 40, "", "not a tar archive"),
        (tar_of({"app.txt": b"x"}), "", "holds no Dockerfile"),
        (tar_of({"Dockerfile": b"FROM scratch\n"}), "../Dockerfile", "inside the build context"),
    ],
)
async def test_a_build_context_that_cannot_be_built_is_invalid_argument(stub, context, dockerfile, needle):
    given = pb.Devcontainer(
        json='{"build": {"dockerfile": "Dockerfile"}}', context=context, dockerfile=dockerfile
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(devcontainer=given))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in info.value.details()


async def test_a_context_without_build_is_invalid_argument(stub):
    given = pb.Devcontainer(json='{"image": "firebox-busybox:latest"}', context=tar_of({"a": b"b"}))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(devcontainer=given))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "devcontainer.context" in info.value.details()


async def progress_of(
    stub, request: pb.CreateWorkspaceRequest
) -> list[pb.CreateWorkspaceWithProgressResponse]:
    return [message async for message in stub.CreateWorkspaceWithProgress(request, timeout=300)]


async def test_progress_streams_the_build_and_the_commands_as_they_run_then_the_response(
    stub, tmp_path, built_images
):
    folder = project(tmp_path / "proj")
    (folder / ".devcontainer" / "devcontainer.json").write_text(
        '{"build": {"dockerfile": "Dockerfile", "context": "..", "args": {"GREETING": "hi"}, "target": "tool"},'
        ' "postCreateCommand": "echo first; sleep 1; echo second >&2"}'
    )
    messages = await progress_of(
        stub, pb.CreateWorkspaceRequest(devcontainer=devcontainer_folder.load(folder))
    )
    *outputs, last = messages
    try:
        assert last.HasField("done") and all(m.HasField("output") for m in outputs)
        done = last.done
        assert [c.name for c in done.setup] == ["build", "postCreateCommand"]
        build = b"".join(m.output.stdout for m in outputs if m.output.name == "build")
        # The build's output as the engine wrote it, in pieces (one per step at least)...
        assert build.decode() == done.setup[0].stdout and b"COPY app.txt" in build
        assert sum(m.output.name == "build" for m in outputs) > 3
        # ...then the command's, each piece as it was printed: "first" was sent on its own,
        # before "second" was printed a second later.
        command = [m.output for m in outputs if m.output.name == "postCreateCommand"]
        assert [(o.stdout, o.stderr) for o in command] == [(b"first\n", b""), (b"", b"second\n")]
        assert all(o.skipped_bytes == 0 for m in outputs for o in [m.output])
        out = await execute(stub, done.workspace.id, "cat /opt/tool/greeting")
        assert out.stdout == b"hi\n"
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=last.done.workspace.id))


async def test_progress_of_a_plain_workspace_is_its_response_alone(stub):
    messages = await progress_of(stub, pb.CreateWorkspaceRequest(name="plain-progress"))
    assert len(messages) == 1 and messages[0].HasField("done")
    workspace = messages[0].done.workspace
    try:
        assert workspace.name == "plain-progress" and not messages[0].done.setup
    finally:
        await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=workspace.id))


async def test_progress_ends_with_the_status_create_workspace_would_give(stub, tmp_path, built_images):
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await progress_of(stub, pb.CreateWorkspaceRequest(devcontainer=pb.Devcontainer(json='{"image": 3}')))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    folder = project(tmp_path / "proj", target="broken")
    request = pb.CreateWorkspaceRequest(devcontainer=devcontainer_folder.load(folder))
    call = stub.CreateWorkspaceWithProgress(request, timeout=300)
    seen = b""
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        async for message in call:
            seen += message.output.stdout
    # The failing build's output streamed before the status that says it failed.
    assert b"the broken stage ran" in seen
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
