"""Server flags docs/executor.md documents, each shown to do what it says on a real executor:
`--step-output-bytes` (a Step's output cut there, `truncated` set) and custom `--env-deny`
patterns (they replace the defaults; matching names refused on CreateWorkspace and Execute)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle

pytestmark = pytest.mark.docker

STEP_OUTPUT_BYTES = 100
TOOLS = r"""
[[tools]]
name = "repeat"
description = "Print a character many times on stdout and on stderr"
command = ["sh", "-c", "head -c \"$1\" /dev/zero | tr '\\0' x; head -c \"$1\" /dev/zero | tr '\\0' y >&2", "sh", "{count}"]
[tools.args_schema]
type = "object"
required = ["count"]
properties.count = { type = "integer", minimum = 0 }
"""


@pytest.fixture(scope="module")
async def flagged(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[object, pb.Workspace]]:
    config_dir: Path = tmp_path_factory.mktemp("flags")
    tools = config_dir / "tools.toml"
    tools.write_text(TOOLS)
    async with running_executor_handle(
        config_dir,
        backend="docker",
        tools_file=tools,
        step_output_bytes=STEP_OUTPUT_BYTES,
        env_deny=("*FOO*", "corp_*"),
    ) as running:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="flags"))).workspace
            yield stub, ws


async def step(stub, ws: pb.Workspace, count: int) -> pb.ToolOutput:  # type: ignore[no-untyped-def]
    request = pb.StepRequest(workspace_id=ws.id, action=pb.Action(tool_name="repeat"))
    request.action.args.update({"count": count})
    return (await stub.Step(request, timeout=60)).observation.tool_output


async def test_step_output_is_cut_at_step_output_bytes(flagged):
    stub, ws = flagged
    cut = await step(stub, ws, 5000)
    assert cut.exit_status == 0
    assert cut.stdout == "x" * STEP_OUTPUT_BYTES and cut.stderr == "y" * STEP_OUTPUT_BYTES
    assert cut.truncated
    whole = await step(stub, ws, STEP_OUTPUT_BYTES)
    assert whole.stdout == "x" * STEP_OUTPUT_BYTES and not whole.truncated


@pytest.mark.parametrize("name", ["MY_FOO_VAR", "foo", "CORP_TOKEN_X"])
async def test_custom_env_deny_patterns_refuse_matching_names(flagged, name):
    stub, ws = flagged
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await execute(stub, ws.id, script="true", env={name: "v"})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and name in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="denied", env={name: "v"}))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and name in caught.value.details()


async def test_custom_env_deny_patterns_replace_the_defaults(flagged):
    # MY_API_KEY matches the default *KEY*, which these patterns replace: it runs.
    stub, ws = flagged
    result = await execute(stub, ws.id, script='printf %s "$MY_API_KEY"', env={"MY_API_KEY": "k"})
    assert result.exit_code == 0 and result.stdout == b"k"
