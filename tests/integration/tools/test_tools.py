"""Named tools over gRPC: ListTools, Step's Observation, precise errors, arguments passed as
literal argv elements, and the training-log record of each step."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from executor_service.tools import ToolsFileError, load_tools_file
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import execute
from tests.support.executor_server import running_executor_handle

TOOLS_TOML = r"""
[[tools]]
name = "grep"
description = "Search files under a directory for a pattern"
command = ["grep", "-rn", "--", "{pattern}", "{path}"]
read_only = true
timeout_seconds = 30
[tools.args_schema]
type = "object"
required = ["pattern"]
additionalProperties = false
properties.pattern = { type = "string", minLength = 1 }
properties.path = { type = "string", default = "." }

[[tools]]
name = "echo_words"
description = "Print each word on its own line, then the count when given"
command = ["printf", '%s\n', "{words}", "count={count}"]
[tools.args_schema]
type = "object"
required = ["words"]
properties.words = { type = "array", items = { type = "string" } }
properties.count = { type = "integer", minimum = 1 }

[[tools]]
name = "bad name"
description = "skipped: the name has a space"
command = ["true"]

[[tools]]
name = "unknown_placeholder"
description = "skipped: {nope} is not an argument"
command = ["echo", "{nope}"]
"""

BACKENDS = [
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param(
        "bwrap",
        marks=[
            pytest.mark.bwrap,
            pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
        ],
    ),
]


class Env:
    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceStub, ws: pb.Workspace, log_dir: Path) -> None:
        self.stub = stub
        self.ws = ws
        self.log_dir = log_dir


@pytest.fixture(scope="module", params=BACKENDS)
async def env(request, tmp_path_factory) -> AsyncIterator[Env]:
    config_dir = tmp_path_factory.mktemp(f"tools-{request.param}")
    tools_file = config_dir / "tools.toml"
    tools_file.write_text(TOOLS_TOML)
    async with running_executor_handle(config_dir, backend=request.param, tools_file=tools_file) as running:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            ws = (await stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="tools"))).workspace
            yield Env(stub, ws, config_dir / "logs")
            for left in (await stub.ListWorkspaces(pb.ListWorkspacesRequest())).workspaces:
                await stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=left.id))


def step_request(ws_id: str, tool: str, args: dict, **fields: object) -> pb.StepRequest:
    struct = struct_pb2.Struct()
    struct.update(args)
    return pb.StepRequest(workspace_id=ws_id, action=pb.Action(tool_name=tool, args=struct), **fields)


async def step_error(env: Env, request: pb.StepRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.stub.Step(request)
    return caught.value


async def test_list_tools_returns_the_declared_tools_and_skips_bad_ones(env):
    tools = {t.name: t for t in (await env.stub.ListTools(pb.ListToolsRequest())).tools}
    assert set(tools) == {"grep", "echo_words"}
    grep = tools["grep"]
    assert grep.description == "Search files under a directory for a pattern"
    assert grep.read_only and grep.timeout.seconds == 30
    assert list(grep.command) == ["grep", "-rn", "--", "{pattern}", "{path}"]
    schema = json.loads(grep.args_schema_json)
    assert schema["required"] == ["pattern"] and schema["properties"]["pattern"]["minLength"] == 1


async def test_step_runs_a_tool_and_returns_its_observation(env):
    await execute(env.stub, env.ws.id, "mkdir -p src && printf 'a\\nTODO: x\\n' > src/f.txt")
    response = await env.stub.Step(
        step_request(
            env.ws.id, "grep", {"pattern": "TODO", "path": "src"}, tool_call_id="call_7", run_id="run_7"
        )
    )
    output = response.observation.tool_output
    assert output.exit_status == 0 and output.end_reason == pb.END_REASON_EXITED
    assert output.stdout == "src/f.txt:2:TODO: x\n" and output.stderr == ""
    assert not output.truncated
    info = response.observation.environment_info
    assert info.workspace_status == pb.WORKSPACE_STATUS_RUNNING
    assert env.ws.id in info.info and "grep" in info.info
    # No match: grep's own status comes back, not an error.
    miss = await env.stub.Step(step_request(env.ws.id, "grep", {"pattern": "absent", "path": "src"}))
    assert miss.observation.tool_output.exit_status == 1


async def test_step_honours_work_dir_and_schema_defaults(env):
    await execute(env.stub, env.ws.id, "mkdir -p wd/inner && echo needle > wd/inner/n.txt")
    struct = struct_pb2.Struct()
    struct.update({"pattern": "needle"})  # path left out: its schema default "." fills it
    response = await env.stub.Step(
        pb.StepRequest(
            workspace_id=env.ws.id, action=pb.Action(tool_name="grep", args=struct, work_dir="wd/inner")
        )
    )
    assert response.observation.tool_output.stdout == "./n.txt:1:needle\n"


async def test_shell_metacharacters_in_arguments_are_passed_literally(env):
    words = [
        "; touch /workspace/pwned",
        "$(touch /workspace/pwned2)",
        "`touch /workspace/pwned3`",
        "a b  c",
        "'\"",
    ]
    response = await env.stub.Step(step_request(env.ws.id, "echo_words", {"words": words, "count": 2}))
    output = response.observation.tool_output
    assert output.exit_status == 0, output.stderr
    assert output.stdout == "".join(w + "\n" for w in words) + "count=2\n"
    check = await execute(env.stub, env.ws.id, "ls /workspace | grep pwned || echo none")
    assert check.stdout == b"none\n"


async def test_optional_argument_left_out_drops_its_element(env):
    response = await env.stub.Step(step_request(env.ws.id, "echo_words", {"words": ["x"]}))
    assert response.observation.tool_output.stdout == "x\n"


async def test_unknown_tool_is_not_found(env):
    error = await step_error(env, step_request(env.ws.id, "rm_everything", {}))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "rm_everything" in error.details() and "grep" in error.details()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"pattern": 5, "path": "."}, "action.args.pattern"),
        ({"pattern": "", "path": "."}, "action.args.pattern"),
        ({"path": "."}, "action.args"),
        ({"pattern": "x", "path": ".", "extra": 1}, "action.args"),
    ],
)
async def test_args_failing_the_schema_are_invalid_and_name_the_argument(env, args, field):
    error = await step_error(env, step_request(env.ws.id, "grep", args))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field), error.details()


async def test_args_failing_the_schema_inside_an_array_name_the_item(env):
    error = await step_error(env, step_request(env.ws.id, "echo_words", {"words": ["ok", 3]}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("action.args.words[1]"), error.details()
    fraction = await step_error(env, step_request(env.ws.id, "echo_words", {"words": [], "count": 1.5}))
    assert fraction.details().startswith("action.args.count")


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
async def test_args_with_a_number_json_cannot_hold_are_invalid(env, number):
    """A Struct may carry Infinity or NaN on the wire; JSON can't, so the tool never sees them."""
    error = await step_error(env, step_request(env.ws.id, "echo_words", {"words": ["x"], "count": number}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("action.args"), error.details()


@pytest.mark.parametrize(("field", "value"), [("work_dir", "/tmp\x00x"), ("timeout", -1)])
async def test_step_is_checked_like_an_execute_naming_its_own_fields(env, field, value):
    """A Step's rendered command goes through Execute's one validation; errors name the Step's
    fields (action.work_dir, timeout), not those of the Execute request made of it."""
    request = step_request(env.ws.id, "echo_words", {"words": ["x"]})
    if field == "work_dir":
        request.action.work_dir = value
    else:
        request.timeout.seconds = value
    error = await step_error(env, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("action.work_dir" if field == "work_dir" else "timeout"), (
        error.details()
    )


async def test_a_tool_reading_standard_input_reads_end_of_file_at_once(env):
    """A Step has no input: `grep -- x -` (a path of "-" is stdin) ends with no match instead of
    waiting out its timeout on a stdin nobody can write to."""
    request = step_request(env.ws.id, "grep", {"pattern": "x", "path": "-"})
    request.timeout.FromSeconds(5)
    output = (await env.stub.Step(request)).observation.tool_output
    assert output.end_reason == pb.END_REASON_EXITED, output
    assert output.exit_status == 1, output


async def test_step_in_a_stopped_workspace_is_a_failed_precondition(env):
    ws = (await env.stub.CreateWorkspace(pb.CreateWorkspaceRequest(name="stopped"))).workspace
    try:
        await env.stub.StopWorkspace(pb.StopWorkspaceRequest(workspace_id=ws.id))
        error = await step_error(env, step_request(ws.id, "grep", {"pattern": "x", "path": "."}))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "StartWorkspace" in error.details()
    finally:
        await env.stub.DeleteWorkspace(pb.DeleteWorkspaceRequest(workspace_id=ws.id))


async def test_each_step_writes_a_training_record_with_its_action(env):
    response = await env.stub.Step(
        step_request(
            env.ws.id, "echo_words", {"words": ["logged"]}, tool_call_id="call_log", run_id="run_log"
        )
    )
    execution_id = response.execution_id
    deadline = asyncio.get_running_loop().time() + 10
    record = None
    while record is None:
        for path in sorted(env.log_dir.glob("executions-*.jsonl")):
            for line in path.read_text().splitlines():
                if line and json.loads(line).get("executionId") == execution_id:
                    record = json.loads(line)
        if record is None:
            assert asyncio.get_running_loop().time() < deadline, "no training record for the step"
            await asyncio.sleep(0.1)
    assert record["action"]["toolName"] == "echo_words"
    assert record["action"]["args"] == {"words": ["logged"]}
    assert record["request"]["argv"] == ["printf", "%s\\n", "logged"]
    assert record["request"]["toolCallId"] == "call_log" and record["request"]["runId"] == "run_log"
    # Proto-JSON leaves out zero values: no exitCode means 0.
    assert record["stdoutHead"] == "logged\n" and record.get("exitCode", 0) == 0


def test_unusable_tools_file_refuses_start_up(tmp_path):
    broken = tmp_path / "tools.json"
    broken.write_text("{not json")
    with pytest.raises(ToolsFileError, match="not valid JSON"):
        load_tools_file(broken)
    with pytest.raises(ToolsFileError, match="cannot read"):
        load_tools_file(tmp_path / "missing.toml")
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ToolsFileError, match="top-level list"):
        load_tools_file(tmp_path / "empty.json")


def test_bad_tools_are_skipped_and_the_good_ones_kept(tmp_path):
    path = tmp_path / "tools.json"
    good = {"name": "ok", "description": "fine", "command": ["true"]}
    path.write_text(
        json.dumps(
            {
                "tools": [
                    good,
                    {**good, "name": "ok"},
                    {
                        "name": "prog",
                        "description": "program from an argument",
                        "command": ["{p}"],
                        "args_schema": {"type": "object", "properties": {"p": {"type": "string"}}},
                    },
                    {
                        "name": "schema",
                        "description": "bad schema",
                        "command": ["true"],
                        "args_schema": {"type": "object", "properties": {"p": {"type": 5}}},
                    },
                ]
            }
        )
    )
    assert [t.name for t in load_tools_file(path)] == ["ok"]
