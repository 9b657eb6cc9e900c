"""Commands run to their end with their output collected: a Step's named tool, and a
devcontainer's lifecycle commands at CreateWorkspace. Each is checked like an Execute (one
validation, requests.execute_spec), has no input (it reads end of file at once: `cat -`, a
prompt never waits for its timeout), and is written to the training log like an Execute.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import Callable, Mapping

from google.protobuf import json_format

from executor_service.backend import OutputSink, WorkspaceInfo
from executor_service.devcontainer import Command
from executor_service.engine import ExecutionEngine
from executor_service.requests import (
    STATUSES,
    execute_spec,
    final_to_proto,
    recorder_for,
    timeout_seconds,
)
from executor_service.tools import StepResult, ToolRegistry, collect
from executor_service.workspaces import WorkspaceManager
from firebox.common import errors
from firebox.common.logging import get_logger
from firebox.common.secrets import SecretPolicy
from firebox.common.trainlog import EXECUTIONS, TrainingLog
from firebox.executor.v1 import executor_pb2 as pb

log = get_logger("executor.steps")

# Output a devcontainer lifecycle command returns in the CreateWorkspace response, per stream.
SETUP_OUTPUT_BYTES = 64 * 1024
# Setup output waiting for a slow CreateWorkspaceWithProgress client, at most.
PROGRESS_BYTES = 1024 * 1024
# A Step's request names its fields differently from the Execute request made of it.
_STEP_NAMES = {"directory": "action.work_dir", "argv": "action.args"}


class OneShot:
    """Runs one command to its end, no input, output collected and the run recorded."""

    def __init__(
        self,
        engine: ExecutionEngine,
        training_log: TrainingLog,
        secret_policy: SecretPolicy,
        default_timeout: float,
        version: str,
    ) -> None:
        self.engine = engine
        self.training_log = training_log
        self.secret_policy = secret_policy
        self.default_timeout = default_timeout
        self.version = version

    async def run(
        self,
        workspace: WorkspaceInfo,
        execute: pb.ExecuteRequest,
        output_bytes: int,
        *,
        action: pb.Action | None = None,
        names: Mapping[str, str] | None = None,
        on_output: Callable[[bytes, bytes], None] | None = None,
    ) -> tuple[StepResult, pb.ExecuteResponse]:
        """Run what `execute` describes in `workspace`; its training-log record carries `action`
        (a Step's); `on_output(stdout, stderr)` sees the output as it comes. Returns the
        collected output and the final response."""
        spec = execute_spec(execute, self.secret_policy, self.default_timeout, names)
        recorder = recorder_for(execute, workspace, self.version)
        execution = await self.engine.start(workspace, spec)
        recorder.execution_id = execution.id
        await execution.close_input()

        def observe(out: bytes, err: bytes) -> None:
            recorder.stdout.add(out)
            recorder.stderr.add(err)
            if on_output is not None:
                on_output(out, err)

        final: pb.ExecuteResponse | None = None
        try:
            result = await collect(execution, output_bytes, observe)
            final = final_to_proto(result.finished)
        finally:
            record = recorder.record(final)
            if action is not None:
                record.action.CopyFrom(action)
            self.training_log.write(EXECUTIONS, record)
        return result, final


class SetupProgress:
    """Setup output on its way to a CreateWorkspaceWithProgress client, as SetupOutput messages.
    Bounded: at most PROGRESS_BYTES wait to be sent; output past that is left out and counted in
    the step's next message (the step's SetupCommand keeps its tail all the same)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._waiting: collections.deque[pb.SetupOutput] = collections.deque()
        self._bytes = 0
        self._skipped: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._ended = False

    def add(self, name: str, stdout: bytes, stderr: bytes) -> None:
        """Output of step `name` (on the event loop's thread)."""
        size = len(stdout) + len(stderr)
        if not size:
            return
        if self._bytes + size > PROGRESS_BYTES:
            self._skipped[name] = self._skipped.get(name, 0) + size
            return
        self._bytes += size
        message = pb.SetupOutput(
            name=name, stdout=stdout, stderr=stderr, skipped_bytes=self._skipped.pop(name, 0)
        )
        self._waiting.append(message)
        self._wake.set()

    def sink(self, name: str) -> OutputSink:
        """A thread-safe sink of step `name`'s output (an image build's, from its worker thread)."""

        def sink(data: bytes) -> None:
            self._loop.call_soon_threadsafe(self.add, name, data, b"")

        return sink

    def end(self) -> None:
        """Nothing more will be added; output left out with no message after it is reported now."""
        for name, skipped in self._skipped.items():
            self._waiting.append(pb.SetupOutput(name=name, skipped_bytes=skipped))
        self._skipped.clear()
        self._ended = True
        self._wake.set()

    async def next(self) -> pb.SetupOutput | None:
        """The next message; None once the output has ended and all of it was taken."""
        while not self._waiting:
            if self._ended:
                return None
            self._wake.clear()
            await self._wake.wait()
        message = self._waiting.popleft()
        self._bytes -= len(message.stdout) + len(message.stderr)
        return message


async def setup_command(
    oneshot: OneShot, workspace: WorkspaceInfo, command: Command, progress: SetupProgress | None = None
) -> pb.SetupCommand:
    """Run a devcontainer lifecycle command once, to its end (it shapes what later commands see)."""
    execute = pb.ExecuteRequest(
        workspace_id=workspace.id, script=command.script, argv=list(command.argv), known_name=command.name
    )
    on_output = None if progress is None else lambda out, err: progress.add(command.name, out, err)
    result, _ = await oneshot.run(workspace, execute, SETUP_OUTPUT_BYTES, on_output=on_output)
    exit_code = result.finished.exit_code
    log.info("devcontainer_command", workspace_id=workspace.id, name=command.name, exit_code=exit_code)
    return pb.SetupCommand(
        name=command.name,
        exit_code=exit_code if exit_code is not None else -1,
        stdout=result.stdout.decode("utf-8", "replace"),
        stderr=result.stderr.decode("utf-8", "replace"),
        truncated=result.truncated,
    )


async def step(
    request: pb.StepRequest,
    oneshot: OneShot,
    tools: ToolRegistry,
    workspaces: WorkspaceManager,
    output_bytes: int,
) -> pb.StepResponse:
    """Run one named tool sessionless: an Execute of the argv its arguments render, logged with
    the action beside it, answered as an Observation of what it printed and the workspace after."""
    if not request.workspace_id:
        raise errors.InvalidArgument("workspace_id", "required")
    action = request.action
    try:
        args = json_format.MessageToDict(action.args) if action.HasField("args") else {}
    except (json_format.SerializeToJsonError, ValueError):  # NaN or Infinity: not JSON
        raise errors.InvalidArgument(
            "action.args", "holds a number JSON can't express (NaN or Infinity)"
        ) from None
    tool, argv = tools.render(action.tool_name, args)
    timeout = timeout_seconds(request, "timeout") or tool.timeout or oneshot.default_timeout
    workspace = await workspaces.require_running(request.workspace_id)
    # What ran, as an Execute of the rendered argv would have said it: the training log's shape.
    execute = pb.ExecuteRequest(
        workspace_id=request.workspace_id,
        argv=argv,
        directory=action.work_dir,
        tool_call_id=request.tool_call_id,
        run_id=request.run_id,
        agent_session_id=request.agent_session_id,
    )
    execute.timeout.FromTimedelta(dt.timedelta(seconds=timeout))
    result, final = await oneshot.run(workspace, execute, output_bytes, action=action, names=_STEP_NAMES)
    finished = result.finished
    output = pb.ToolOutput(
        exit_status=finished.exit_code if finished.exit_code is not None else -1,
        stdout=result.stdout.decode("utf-8", "replace"),
        stderr=result.stderr.decode("utf-8", "replace"),
        truncated=result.truncated,
        end_reason=final.end_reason,
        message=finished.message,
    )
    output.duration.CopyFrom(final.duration)
    directory = action.work_dir or "/workspace"
    if not directory.startswith("/"):
        directory = f"/workspace/{directory}"
    try:
        # Asked again: the status after the tool ran, not the one cached before it.
        status = STATUSES.get(
            (await workspaces.get(request.workspace_id)).state, pb.WORKSPACE_STATUS_UNSPECIFIED
        )
    except Exception as exc:  # the tool ran; an engine hiccup only leaves the status unknown
        log.warning("step_status_unknown", workspace_id=request.workspace_id, error=repr(exc))
        status = pb.WORKSPACE_STATUS_UNSPECIFIED
    info = (
        f"workspace {workspace.id}{f' ({workspace.name})' if workspace.name else ''}, "
        f"image {workspace.image}, {workspace.isolation}; tool {tool.name} ran in {directory}"
    )
    return pb.StepResponse(
        observation=pb.Observation(
            tool_output=output,
            environment_info=pb.EnvironmentInfo(info=info, workspace_status=status),
        ),
        execution_id=result.execution_id,
    )
