"""The training-log record of one Execute: what was asked, what ran, how it ended.

`ExecutionRecorder` watches an execution's output as it streams (keeping only byte counts and the
first and last 4 KiB of each stream) and builds one `firebox.trace.v1.ExecutionRecord` at the end.
Secret values are redacted: variables with secret-looking names, any value registered with the
process-wide redactor (e.g. an allowed secret's value echoed by the program), and credentials by
their shape (an API key typed into a command); the record counts them in redacted_values.
"""

from __future__ import annotations

import time

from firebox.common.secrets import REDACTED, redactor
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2

SAMPLE_BYTES = 4096


class _Count:
    """How many values were redacted from one record (its redacted_values)."""

    def __init__(self) -> None:
        self.value = 0


def _hide(text: str, secrets: tuple[str, ...], count: _Count) -> str:
    for secret in secrets:
        if secret in text:
            count.value += text.count(secret)
            text = text.replace(secret, REDACTED)
    text, shapes = redactor.text_counted(text)
    count.value += shapes
    return text


class _StreamSample:
    """Byte count plus the first and last SAMPLE_BYTES of one stream, in bounded memory."""

    def __init__(self, count: _Count) -> None:
        self.secrets: tuple[str, ...] = ()
        self.count = count
        self.total = 0
        self.head = bytearray()
        self.tail = bytearray()

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if len(self.head) < SAMPLE_BYTES:
            self.head += data[: SAMPLE_BYTES - len(self.head)]
        self.tail += data[-SAMPLE_BYTES:]
        if len(self.tail) > SAMPLE_BYTES:
            del self.tail[: len(self.tail) - SAMPLE_BYTES]

    def texts(self) -> tuple[str, str]:
        if not self.total:
            return "", ""
        head = _hide(bytes(self.head).decode("utf-8", errors="replace"), self.secrets, self.count)
        # When everything fit in the head, the tail would only repeat it.
        tail = (
            ""
            if self.total <= SAMPLE_BYTES
            else _hide(bytes(self.tail).decode("utf-8", errors="replace"), self.secrets, self.count)
        )
        return head, tail


def redacted_request(
    request: executor_pb2.ExecuteRequest, secrets: tuple[str, ...] = (), count: _Count | None = None
) -> executor_pb2.ExecuteRequest:
    """The first request as sent, with secret values hidden (the request itself when it has none)."""
    count = count or _Count()
    script = _hide(request.script, secrets, count) if request.script else ""
    argv = [_hide(a, secrets, count) for a in request.argv]
    if not request.env and script == request.script and argv == request.argv:
        return request
    copy = executor_pb2.ExecuteRequest()
    copy.CopyFrom(request)
    if copy.env:
        hidden = redactor.env(dict(copy.env))
        copy.env.clear()
        copy.env.update(hidden)
    copy.script = script
    del copy.argv[:]
    copy.argv.extend(argv)
    return copy


class ExecutionRecorder:
    """Collects what the training log needs about one Execute while it streams."""

    def __init__(
        self,
        request: executor_pb2.ExecuteRequest,
        backend: executor_pb2.Backend,
        isolation: str,
        version: str,
        secret_values: tuple[str, ...] = (),
        parent_snapshot_id: str = "",
    ) -> None:
        """`secret_values`: values to hide wherever they appear (allowed secrets of the workspace's
        and the request's environment), besides those of secret-named request variables."""
        self.request = request
        named = tuple(v for k, v in request.env.items() if redactor.env({k: v})[k] == REDACTED)
        # Longest first, so that a secret containing another is hidden whole. Values under 4
        # characters would hide ordinary text; the env map still hides them by name.
        self.secrets = tuple(
            sorted({v for v in (*secret_values, *named) if len(v) >= 4}, key=len, reverse=True)
        )
        self.backend = backend
        self.isolation = isolation
        self.version = version
        self.parent_snapshot_id = parent_snapshot_id
        self.start_ns = time.time_ns()
        self.execution_id = ""
        self.session_id = request.session_id
        self.redacted = _Count()
        self.stdout = _StreamSample(self.redacted)
        self.stderr = _StreamSample(self.redacted)
        self.stdout.secrets = self.stderr.secrets = self.secrets
        self.input_bytes = 0

    def record(self, final: executor_pb2.ExecuteResponse | None) -> trace_pb2.ExecutionRecord:
        """The record, given the final response (None when the stream ended without one)."""
        record = trace_pb2.ExecutionRecord(
            request=redacted_request(self.request, self.secrets, self.redacted),
            execution_id=self.execution_id,
            workspace_id=self.request.workspace_id,
            session_id=self.session_id,
            backend=self.backend,
            isolation=self.isolation,
            stdout_bytes=self.stdout.total,
            stderr_bytes=self.stderr.total,
            input_bytes=self.input_bytes,
            executor_version=self.version,
            parent_snapshot_id=self.parent_snapshot_id,
        )
        record.start_time.FromNanoseconds(self.start_ns)
        record.end_time.FromNanoseconds(time.time_ns())
        if final is not None:
            record.exit_code = final.exit_code.value if final.HasField("exit_code") else -1
            record.end_reason = final.end_reason
            record.output_truncated = final.output_truncated
        else:
            record.exit_code = -1
            record.end_reason = executor_pb2.END_REASON_CANCELLED
        record.stdout_head, record.stdout_tail = self.stdout.texts()
        record.stderr_head, record.stderr_tail = self.stderr.texts()
        record.redacted_values = self.redacted.value
        return record
