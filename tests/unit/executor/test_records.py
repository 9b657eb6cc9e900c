"""The training-log record of an Execute: bounded samples, the request as sent, secrets redacted."""

from __future__ import annotations

from executor_service.records import SAMPLE_BYTES, ExecutionRecorder
from firebox.common.secrets import REDACTED, redactor
from firebox.executor.v1 import executor_pb2 as pb


def test_head_and_tail_are_bounded_and_counts_exact():
    recorder = ExecutionRecorder(
        pb.ExecuteRequest(workspace_id="ws_1", script="yes"), pb.BACKEND_DOCKER, "iso", "1"
    )
    for i in range(1000):
        recorder.stdout.add(f"{i:05d}\n".encode())
    final = pb.ExecuteResponse(end_reason=pb.END_REASON_EXITED)
    final.exit_code.value = 0
    record = recorder.record(final)
    assert record.stdout_bytes == 6000
    assert len(record.stdout_head) == SAMPLE_BYTES and record.stdout_head.startswith("00000\n")
    assert len(record.stdout_tail) == SAMPLE_BYTES and record.stdout_tail.endswith("00999\n")
    assert record.exit_code == 0 and record.end_reason == pb.END_REASON_EXITED


def test_invalid_utf8_is_replaced_not_fatal():
    recorder = ExecutionRecorder(
        pb.ExecuteRequest(workspace_id="ws_1", script="x"), pb.BACKEND_DOCKER, "", "1"
    )
    recorder.stderr.add(b"ok \xff\xfe end")
    assert recorder.record(None).stderr_head == "ok \ufffd\ufffd end"


def test_secret_values_are_redacted_but_the_request_is_otherwise_as_sent():
    redactor.add_value("hunter2-very-secret")
    request = pb.ExecuteRequest(
        workspace_id="ws_1",
        script="echo hunter2-very-secret",
        env={"GITHUB_TOKEN": "ghp_abc", "COLOR": "blue"},
        known_id="cell-1",
    )
    recorder = ExecutionRecorder(request, pb.BACKEND_DOCKER, "", "1")
    recorder.stdout.add(b"hunter2-very-secret\n")
    record = recorder.record(None)
    assert record.request.env["GITHUB_TOKEN"] == REDACTED and record.request.env["COLOR"] == "blue"
    assert "hunter2" not in record.request.script and "hunter2" not in record.stdout_head
    assert record.request.known_id == "cell-1"
    # The original request is untouched.
    assert request.env["GITHUB_TOKEN"] == "ghp_abc"
    assert record.end_reason == pb.END_REASON_CANCELLED


def test_allowed_secret_values_are_hidden_in_output_samples():
    request = pb.ExecuteRequest(
        workspace_id="ws_1", script='echo "$NPM_TOKEN"', env={"NPM_TOKEN": "npm_zzz999"}
    )
    recorder = ExecutionRecorder(request, pb.BACKEND_DOCKER, "", "1", secret_values=("ws-level-secret",))
    recorder.stdout.add(b"npm_zzz999 and ws-level-secret\n")
    record = recorder.record(None)
    assert record.stdout_head == f"{REDACTED} and {REDACTED}\n"
    assert record.request.env["NPM_TOKEN"] == REDACTED
