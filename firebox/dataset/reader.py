"""Reading the training log back: every `<kind>-*.jsonl` file, each line parsed into its proto."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import Message

from firebox.common.trainlog import EXECUTIONS, FEEDBACK, GENERATIONS
from firebox.trace.v1 import trace_pb2

RECORD_TYPES: dict[str, type[Message]] = {
    EXECUTIONS: trace_pb2.ExecutionRecord,
    GENERATIONS: trace_pb2.GenerationRecord,
    FEEDBACK: trace_pb2.FeedbackRecord,
}
_ID_FIELD = {EXECUTIONS: "execution_id", GENERATIONS: "generation_id", FEEDBACK: "feedback_id"}

# Progress is reported at most once per this many bytes read (and after every file).
PROGRESS_STEP = 1024 * 1024

# progress(done_bytes, total_bytes) while the logs are read.
Progress = Callable[[int, int], None]


@dataclass
class LogRecords:
    """Every record read, by kind, in file order, and what could not be used."""

    executions: list[trace_pb2.ExecutionRecord] = field(default_factory=list)
    generations: list[trace_pb2.GenerationRecord] = field(default_factory=list)
    feedback: list[trace_pb2.FeedbackRecord] = field(default_factory=list)
    files_read: int = 0
    records_read: Counter[str] = field(default_factory=Counter)
    # "corrupt_line", "truncated_line", "duplicate_record" -> count
    skipped: Counter[str] = field(default_factory=Counter)


def log_files(logs_dir: Path) -> dict[str, list[Path]]:
    """The files of each kind the dataset is built from (rotated ones and subfolders included),
    sorted. Tool-call records (MCP tools) are not part of it yet."""
    return {
        kind: sorted(p for p in logs_dir.rglob(f"{kind}-*.jsonl") if p.is_file()) for kind in RECORD_TYPES
    }


def read_logs(logs_dir: Path, progress: Progress | None = None) -> LogRecords:
    """Parse every line of every log file. Bad lines are counted, never fatal.

    A line that fails to parse is `truncated_line` when it is the last line of its file and has no
    newline (a crash cut it short), `corrupt_line` otherwise. Unknown fields are ignored so that
    logs written by a newer Firebox still read. A record without its id (`execution_id`,
    `generation_id`, `feedback_id`; e.g. a line of another kind in the wrong file) is a
    `record_without_id`; one whose id was already seen (a file copied twice) a `duplicate_record`.
    """
    if not logs_dir.is_dir():
        raise FileNotFoundError(f"logs directory {logs_dir} does not exist")
    files = log_files(logs_dir)
    total = sum(p.stat().st_size for paths in files.values() for p in paths)
    out = LogRecords()
    done = 0
    reported = 0
    for kind, paths in files.items():
        record_type = RECORD_TYPES[kind]
        target: list[Message] = getattr(out, kind)
        seen: set[str] = set()
        for path in paths:
            out.files_read += 1
            with path.open("rb") as f:
                for raw in f:
                    done += len(raw)
                    record = _parse_line(
                        raw, record_type, at_end=not raw.endswith(b"\n"), skipped=out.skipped
                    )
                    if record is not None:
                        record_id = getattr(record, _ID_FIELD[kind])
                        if not record_id:
                            out.skipped["record_without_id"] += 1
                            continue
                        if record_id in seen:
                            out.skipped["duplicate_record"] += 1
                            continue
                        seen.add(record_id)
                        out.records_read[kind] += 1
                        target.append(record)
                    if progress is not None and done - reported >= PROGRESS_STEP:
                        reported = done
                        progress(done, total)
            if progress is not None:
                reported = done
                progress(done, total)
    return out


def _parse_line(
    raw: bytes, record_type: type[Message], at_end: bool, skipped: Counter[str]
) -> Message | None:
    if not raw.strip():
        return None
    try:
        return json_format.Parse(raw.decode("utf-8"), record_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError, ValueError, RecursionError):
        skipped["truncated_line" if at_end else "corrupt_line"] += 1
        return None
