"""The training log's writer process: turns serialized records into proto-JSON lines on disk.

`firebox.common.trainlog.TrainingLog` starts it with `python -m firebox.common.trainlog_writer`
and feeds it frames on stdin; it answers on stdout with JSON lines. It runs as its own process so
that JSON conversion (protojson, the same output as json_format, several times faster) never competes with the
service's event loop for the GIL. It ignores SIGINT and SIGTERM and ends at end of input: when
the service exits, even by `kill -9`, everything it had handed over is still written.

Frames (big-endian): type (1 byte), a 64-bit integer, payload length (32 bits), payload.
- type 0/1/2 (executions/generations/feedback): the integer is the record's write time in ns
  since the epoch (it picks the file's UTC day), the payload the serialized record;
- type 10 (redaction): payload JSON, secrets.Redactor.settings() ({"deny", "allow", "values", "patterns"});
- type 11 (flush): write and fsync everything so far, then answer {"flushed": N} (N = the integer).
Answers also carry `written` and `failed` counts by kind; write errors are reported as
{"error": ..., "kind": ...} at most once per few seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import select
import signal
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from firebox.common import protojson
from firebox.common.secrets import Redactor
from firebox.trace.v1 import trace_pb2

EXECUTIONS = "executions"
GENERATIONS = "generations"
FEEDBACK = "feedback"
TOOL_CALLS = "tool_calls"
KINDS = (EXECUTIONS, GENERATIONS, FEEDBACK, TOOL_CALLS)
RECORD_TYPES: dict[str, type[Message]] = {
    EXECUTIONS: trace_pb2.ExecutionRecord,
    GENERATIONS: trace_pb2.GenerationRecord,
    FEEDBACK: trace_pb2.FeedbackRecord,
    TOOL_CALLS: trace_pb2.ToolCallRecord,
}

# Every record type's count of values redacted from it (redacted_values).
REDACTED_KEY = "redactedValues"
FRAME = struct.Struct(">BqI")
REDACTION = 10
FLUSH = 11
_ERROR_REPORT_INTERVAL = 5.0


def _redact_env(value: Any, redact: Redactor) -> None:
    """Hide, in place, the values of secret-named variables in every `env` map of a dict form."""
    # MessageToDict gives plain dicts and lists; exact types keep this walk cheap (ABC checks are not).
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "env" and isinstance(item, dict):
                value[key] = redact.env({str(k): str(v) for k, v in item.items()})
            elif isinstance(item, (dict, list)):
                _redact_env(item, redact)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                _redact_env(item, redact)


# Where a record type's dict form can hold an `env` map, found once per type from its descriptor:
# (json key, repeated or map?, what) with what = _ENV (hide it), _WALK (free-form JSON such as a
# Struct, or a recursive type: walk it all) or a nested plan. Most records have one env map or
# none, and walking the whole dict for it cost more than the JSON encoding.
_ENV, _WALK = "env", "walk"
_EnvPlan = tuple[tuple[str, bool, Any], ...]
_ENV_PLANS: dict[str, _EnvPlan] = {}


def _env_plan(descriptor: Descriptor, seen: frozenset[str] = frozenset()) -> _EnvPlan:
    seen = seen | {descriptor.full_name}
    plan: list[tuple[str, bool, Any]] = []
    for field in descriptor.fields:
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        target = protojson.message_type(field)
        is_map = target.GetOptions().map_entry
        if field.json_name == "env":  # as _redact_env: a map (or a message) called env is hidden whole
            listed = field.is_repeated and not is_map
            plan.append((field.json_name, listed, _WALK if listed else _ENV))
            continue
        if is_map:
            value_type = target.fields_by_name["value"].message_type
            if value_type is None:
                continue  # a map of scalars that is not called env
            target = value_type
        name = target.full_name
        if name in ("google.protobuf.Timestamp", "google.protobuf.Duration") or name in protojson.WRAPPERS:
            continue
        if name.startswith("google.protobuf.") or name in seen:
            plan.append((field.json_name, field.is_repeated, _WALK))
            continue
        nested = _env_plan(target, seen)
        if nested:
            plan.append((field.json_name, field.is_repeated, nested))
    return tuple(plan)


def _apply_env_plan(value: dict[str, Any], plan: _EnvPlan, redact: Redactor) -> None:
    for key, many, what in plan:
        item = value.get(key)
        if not item:
            continue
        if what is _ENV:
            if isinstance(item, dict):
                value[key] = redact.env({str(k): str(v) for k, v in item.items()})
            continue
        items = (item.values() if isinstance(item, dict) else item) if many else (item,)
        for one in items:
            if what is _WALK:
                _redact_env(one, redact)
            elif isinstance(one, dict):
                _apply_env_plan(one, what, redact)


def _redact_strings(value: Any, redact: Redactor) -> Any:
    if isinstance(value, dict):
        return {k: _redact_strings(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v, redact) for v in value]
    return redact.text(value) if isinstance(value, str) and value else value


def _dumps(value: dict[str, Any]) -> str:
    """Compact JSON with sorted keys and UTF-8 text (orjson: a tenth of json.dumps's time)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def record_to_line(record: Message, redact: Redactor | None = None) -> str:
    """Serialize one record exactly as it is written to the log (without the newline).

    With `redact`: secret-named variables in `env` maps are hidden, and registered secret values
    and bearer tokens anywhere in the line. The keys are the protos' own field names and are never
    redacted by name, so every line still parses into its record.
    """
    as_dict = protojson.to_dict(record)
    if redact is None:
        return _dumps(as_dict)
    descriptor = protojson.descriptor_of(record)
    plan = _ENV_PLANS.get(descriptor.full_name)
    if plan is None:
        plan = _ENV_PLANS[descriptor.full_name] = _env_plan(descriptor)
    _apply_env_plan(as_dict, plan, redact)
    line = _dumps(as_dict)
    # One pass over the whole line is far cheaper than one per string field.
    redacted, count = redact.text_counted(line)
    if not count:
        return line
    try:
        result = orjson.loads(redacted)
    except orjson.JSONDecodeError:  # a secret that spans JSON syntax: redact string by string instead
        result = _redact_strings(as_dict, redact)
    if REDACTED_KEY in result:
        # Added to what the service itself already redacted (and counted) before handing it over.
        result[REDACTED_KEY] = int(result[REDACTED_KEY] or 0) + count
    return _dumps(result)


class KindFile:
    """The open file of one record kind, rotated by day and by size."""

    def __init__(self, directory: Path, kind: str, max_bytes: int) -> None:
        self.directory, self.kind, self.max_bytes = directory, kind, max_bytes
        self.day = ""
        self.number = 0
        self.file: IO[bytes] | None = None
        self.size = 0
        self.dirty = False

    def path(self, day: str, number: int) -> Path:
        suffix = f".{number}" if number else ""
        return self.directory / f"{self.kind}-{day}{suffix}.jsonl"

    def _open(self, day: str, number: int) -> None:
        self.close()
        path = self.path(day, number)
        self.file = path.open("ab")
        self.size = path.stat().st_size
        self.day, self.number = day, number
        if self.size and not _ends_with_newline(path):
            # A crash cut the last line short; end it so the next record starts on a line of its own.
            self.file.write(b"\n")
            self.size += 1

    def _open_for_day(self, day: str) -> None:
        number = 0
        while True:
            path = self.path(day, number)
            if not path.exists() or path.stat().st_size < self.max_bytes:
                break
            number += 1
        self._open(day, number)

    def write(self, data: bytes, day: str) -> None:
        if self.file is None or day != self.day:
            self._open_for_day(day)
        elif self.size and self.size + len(data) > self.max_bytes:
            self._open(day, self.number + 1)
        assert self.file is not None
        self.file.write(data)
        self.size += len(data)
        self.dirty = True

    def flush(self) -> None:
        if self.file is not None and self.dirty:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.dirty = False

    def abandon(self) -> None:
        """Drop the file after a write error; the next record reopens it."""
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file, self.dirty = None, False

    def close(self) -> None:
        if self.file is not None:
            self.flush()
            self.file.close()
            self.file = None


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class Writer:
    """The writer process's state: open files, redaction, counts."""

    def __init__(self, directory: Path, max_file_bytes: int, answers: IO[str]) -> None:
        self.files = {kind: KindFile(directory, kind, max_file_bytes) for kind in KINDS}
        self.redact = Redactor()
        self.answers = answers
        self.written: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.last_error_report = 0.0
        self._day_second = -1
        self._day = ""

    def frame(self, kind_or_type: int, number: int, payload: bytes) -> None:
        if kind_or_type < len(KINDS):
            self.record(KINDS[kind_or_type], number, payload)
        elif kind_or_type == REDACTION:
            settings = json.loads(payload)
            self.redact = Redactor.from_settings(settings)
            for value in settings["values"]:
                # The value as it appears inside a JSON string, when it has characters JSON escapes.
                self.redact.add_value(orjson.dumps(value).decode()[1:-1])
        elif kind_or_type == FLUSH:
            self.flush()
            self.answer(flushed=number)

    def record(self, kind: str, when_ns: int, payload: bytes) -> None:
        try:
            record = RECORD_TYPES[kind].FromString(payload)
            line = record_to_line(record, self.redact)
            second = when_ns // 1_000_000_000
            if second != self._day_second:  # records come many per second: one strftime each
                self._day_second = second
                self._day = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y%m%d")
            day = self._day
            self.files[kind].write(line.encode() + b"\n", day)
            self.written[kind] += 1
        except Exception as exc:  # a full disk, a removed directory, a bad record: count, report, go on
            self.failed[kind] += 1
            self.files[kind].abandon()
            now = time.monotonic()
            if now - self.last_error_report >= _ERROR_REPORT_INTERVAL:
                self.last_error_report = now
                self.answer(error=repr(exc), kind=kind)

    def flush(self) -> None:
        for f in self.files.values():
            try:
                f.flush()
            except OSError as exc:
                self.answer(error=repr(exc), kind=f.kind)
                f.abandon()

    def close(self) -> None:
        for f in self.files.values():
            try:
                f.close()
            except OSError as exc:
                self.answer(error=repr(exc), kind=f.kind)

    def answer(self, **fields: Any) -> None:
        fields.update(written=dict(self.written), failed=dict(self.failed))
        try:
            self.answers.write(json.dumps(fields) + "\n")
            self.answers.flush()
        except OSError:  # the service is gone; the records still go to disk
            pass


def serve(
    directory: Path, max_file_bytes: int, flush_interval: float, stdin_fd: int, answers: IO[str]
) -> None:
    """Read frames until end of input; flush and fsync within `flush_interval` of each write."""
    directory.mkdir(parents=True, exist_ok=True)
    writer = Writer(directory, max_file_bytes, answers)
    buffer = bytearray()
    flush_due: float | None = None
    try:
        while True:
            wait = None if flush_due is None else max(0.0, flush_due - time.monotonic())
            ready, _, _ = select.select([stdin_fd], [], [], wait)
            if ready:
                chunk = os.read(stdin_fd, 1 << 20)
                if not chunk:
                    break
                buffer += chunk
                offset = 0
                while len(buffer) - offset >= FRAME.size:
                    kind_or_type, number, length = FRAME.unpack_from(buffer, offset)
                    end = offset + FRAME.size + length
                    if end > len(buffer):
                        break
                    writer.frame(kind_or_type, number, bytes(buffer[offset + FRAME.size : end]))
                    offset = end
                del buffer[:offset]
                if flush_due is None and any(f.dirty for f in writer.files.values()):
                    flush_due = time.monotonic() + flush_interval
            if flush_due is not None and time.monotonic() >= flush_due:
                writer.flush()
                flush_due = None
    finally:
        writer.close()
        writer.answer(closed=True)


def _batch_scheduling() -> None:
    """Run as a batch job: when a batch of records arrives, the writer waits for the next
    scheduling tick instead of preempting the service's event loop or a workspace's command
    (Linux SCHED_BATCH). Its share of the CPU is unchanged, so it keeps up all the same."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or refused: plain scheduling
        pass


def main() -> None:
    parser = argparse.ArgumentParser(
        description="The training log's writer process (started by the services)."
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--max-file-bytes", type=int, required=True)
    parser.add_argument("--flush-interval", type=float, required=True)
    args = parser.parse_args()
    # The service decides when we stop, by closing our input; signals to the group must not cut
    # the last records short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _batch_scheduling()
    serve(args.directory, args.max_file_bytes, args.flush_interval, sys.stdin.fileno(), sys.stdout)


if __name__ == "__main__":
    main()
