"""What an Execute asks for, checked once: the first ExecuteRequest turned into the domain's
`ExecuteSpec`, for Execute itself, for background executions, for Step's rendered tools and for
devcontainer lifecycle commands alike; and an execution's end as the proto's final response.

Sizes are checked before any of this, at the edge (firebox.common.limits).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from executor_service import execution as ex
from executor_service import metrics
from executor_service.backend import BWRAP, DOCKER, WorkspaceInfo
from executor_service.records import ExecutionRecorder
from executor_service.workspaces import validate_env
from firebox.common import errors
from firebox.common.secrets import SecretPolicy
from firebox.executor.v1 import executor_pb2 as pb

BACKENDS = {DOCKER: pb.BACKEND_DOCKER, BWRAP: pb.BACKEND_BWRAP}
STATUSES = {
    "created": pb.WORKSPACE_STATUS_CREATED,
    "restarting": pb.WORKSPACE_STATUS_RESTARTING,
    "running": pb.WORKSPACE_STATUS_RUNNING,
    "removing": pb.WORKSPACE_STATUS_REMOVING,
    "paused": pb.WORKSPACE_STATUS_PAUSED,
    "exited": pb.WORKSPACE_STATUS_EXITED,
    "dead": pb.WORKSPACE_STATUS_DEAD,
}
# Fields of later messages only (the first describes the program).
LATER_ONLY = ("input_data", "close_input", "stop")
# google.protobuf.Duration's range: about 10,000 years.
_MAX_DURATION_SECONDS = 315_576_000_000


def execute_spec(
    first: pb.ExecuteRequest,
    secret_policy: SecretPolicy,
    default_timeout: float | None,
    names: Mapping[str, str] | None = None,
) -> ex.ExecuteSpec:
    """Check the first Execute message and turn it into the domain's spec. `names` renames
    fields in error messages, for requests made from another (Step: directory is action.work_dir)."""

    def invalid(field: str, message: str) -> errors.InvalidArgument:
        return errors.InvalidArgument((names or {}).get(field, field), message)

    for name in LATER_ONLY:
        if getattr(first, name):
            raise invalid(
                name, "not allowed in the first message, which describes the program; send it in a later one"
            )
    if not first.workspace_id:
        raise invalid("workspace_id", "required in the first message")
    if first.script and first.argv:
        raise invalid("script", "give either script or argv, not both")
    if not first.script and not first.argv:
        raise invalid("script", "missing program: give script (shell text) or argv")
    if first.argv and not first.argv[0]:
        raise invalid("argv", "argv[0] (the program) is empty")
    for field, value in (("script", first.script), ("directory", first.directory)):
        if "\x00" in value:
            raise invalid(field, "contains a NUL byte")
    if any("\x00" in part for part in first.argv):
        raise invalid("argv", "contains a NUL byte")
    validate_env(first.env, (names or {}).get("env", "env"), secret_policy)
    timeout = default_timeout
    seconds = timeout_seconds(first, (names or {}).get("timeout", "timeout"))
    if seconds > 0:
        timeout = seconds
    return ex.ExecuteSpec(
        workspace_id=first.workspace_id,
        session_id=first.session_id or None,
        script=first.script or None,
        argv=list(first.argv) or None,
        directory=first.directory or None,
        env=dict(first.env),
        timeout=timeout,
        tty=first.tty,
        rows=first.winsize.rows or ex.DEFAULT_ROWS,
        cols=first.winsize.cols or ex.DEFAULT_COLS,
    )


def recorder_for(request: pb.ExecuteRequest, workspace: WorkspaceInfo, version: str) -> ExecutionRecorder:
    """The training-log recorder of an execution of `request` in `workspace`."""
    return ExecutionRecorder(
        request,
        BACKENDS.get(workspace.backend, pb.BACKEND_UNSPECIFIED),
        workspace.isolation,
        version,
        parent_snapshot_id=workspace.parent_snapshot_id,
    )


def timeout_seconds(message: Any, field: str) -> float:
    """A request's `timeout` Duration in seconds; 0 when unset."""
    if not message.HasField("timeout"):
        return 0.0
    seconds = duration_seconds(message.timeout, field)
    if seconds < 0:
        raise errors.InvalidArgument(field, f"must not be negative, got {seconds:g}s")
    return seconds


def duration_seconds(duration: Any, field: str) -> float:
    """A Duration in seconds, refused when outside Duration's rules (range, one sign): such a value
    overflows timedelta and cannot be written to the training log."""
    if (
        abs(duration.seconds) > _MAX_DURATION_SECONDS
        or abs(duration.nanos) >= 1_000_000_000
        or duration.seconds > 0 > duration.nanos
        or duration.seconds < 0 < duration.nanos
    ):
        raise errors.InvalidArgument(field, f"not a valid Duration ({duration.seconds}s {duration.nanos}ns)")
    result: float = duration.seconds + duration.nanos / 1e9
    return result


_END_REASONS = {
    ex.EndReason.EXITED: pb.END_REASON_EXITED,
    ex.EndReason.SIGNALED: pb.END_REASON_SIGNALED,
    ex.EndReason.TIMED_OUT: pb.END_REASON_TIMED_OUT,
    ex.EndReason.STOPPED: pb.END_REASON_STOPPED,
    ex.EndReason.CANCELLED: pb.END_REASON_CANCELLED,
    ex.EndReason.OUT_OF_MEMORY: pb.END_REASON_OUT_OF_MEMORY,
    ex.EndReason.SHUTDOWN: pb.END_REASON_SHUTDOWN,
}


def final_to_proto(event: ex.Finished) -> pb.ExecuteResponse:
    """An execution's end as Execute's final response (counted in the executions metric)."""
    metrics.EXECUTIONS.labels(event.reason.value).inc()
    response = pb.ExecuteResponse(
        end_reason=_END_REASONS.get(event.reason, pb.END_REASON_UNSPECIFIED),
        output_truncated=event.output_truncated,
        session_ended=event.session_ended,
        message=event.message,
    )
    if event.exit_code is not None:
        response.exit_code.value = event.exit_code
    response.duration.FromTimedelta(dt.timedelta(seconds=event.duration))
    return response
