"""The training log: one proto-JSON line per record, one file stream per record kind.

Format (a contract with training pipelines; `buf breaking` guards the names): each line is
`json_format.MessageToDict(record, always_print_fields_with_no_presence=True)` serialized as
compact JSON — camelCase keys (the protos' JSON names), every field present even when empty,
int64 as strings, bytes as base64, enums by name, timestamps RFC 3339. Parse a line back with
`json_format.Parse(line, RecordType())`.

Files live in `<config-dir>/logs/` as `<kind>-YYYYMMDD.jsonl`, a new file each UTC day and a
numbered one (`<kind>-YYYYMMDD.N.jsonl`) whenever the current file passes `max_file_bytes`.

Writing never blocks the caller: records go into a bounded queue that a writer thread drains.
When the queue is full the record is dropped and counted; the count is logged and reported in
the services' status. The writer flushes at least once a second and on close.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from pathlib import Path
from typing import IO

from google.protobuf import json_format
from google.protobuf.message import Message

from firebox.common.logging import get_logger

log = get_logger("firebox.trainlog")

EXECUTIONS = "executions"
GENERATIONS = "generations"
FEEDBACK = "feedback"
KINDS = (EXECUTIONS, GENERATIONS, FEEDBACK)

_STOP = object()


def record_to_line(record: Message) -> str:
    """Serialize one record exactly as it is written to the log (without the newline)."""
    as_dict = json_format.MessageToDict(record, always_print_fields_with_no_presence=True)
    return json.dumps(as_dict, separators=(",", ":"), ensure_ascii=False)


class _KindFile:
    """The open file of one record kind, rotated by day and size."""

    def __init__(self, directory: Path, kind: str, max_bytes: int) -> None:
        self.directory, self.kind, self.max_bytes = directory, kind, max_bytes
        self.day = ""
        self.file: IO[str] | None = None
        self.size = 0

    def _path(self, day: str, n: int) -> Path:
        suffix = f".{n}" if n else ""
        return self.directory / f"{self.kind}-{day}{suffix}.jsonl"

    def _open(self, day: str) -> None:
        if self.file is not None:
            self.file.close()
        n = 0
        while True:
            path = self._path(day, n)
            if not path.exists() or path.stat().st_size < self.max_bytes:
                break
            n += 1
        self.file = path.open("a", encoding="utf-8")
        self.size = path.stat().st_size
        self.day = day

    def write(self, line: str, day: str) -> None:
        if self.file is None or day != self.day or self.size >= self.max_bytes:
            self._open(day)
        assert self.file is not None
        self.file.write(line)
        self.file.write("\n")
        self.size += len(line.encode()) + 1

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class TrainingLog:
    """Writes training records to `<directory>/<kind>-YYYYMMDD.jsonl` from a writer thread."""

    def __init__(
        self,
        directory: Path,
        enabled: bool = True,
        max_queue: int = 10_000,
        max_file_bytes: int = 256 * 1024 * 1024,
        flush_interval: float = 0.5,
    ) -> None:
        self.directory = directory
        self.enabled = enabled
        self.dropped = 0
        self.written = 0
        self._flush_interval = flush_interval
        self._max_file_bytes = max_file_bytes
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._last_drop_report = 0.0
        if enabled:
            directory.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="firebox-trainlog", daemon=True)
            self._thread.start()

    def write(self, kind: str, record: Message) -> None:
        """Queue one record; never blocks. The record must not be changed afterwards."""
        if not self.enabled:
            return
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        try:
            self._queue.put_nowait((kind, record))
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_report > 5:
                self._last_drop_report = now
                log.warning("training_log_dropped_records", dropped_total=self.dropped, kind=kind)

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, flush and stop the writer thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        if self.dropped:
            log.warning("training_log_dropped_records", dropped_total=self.dropped)

    def _run(self) -> None:
        files = {kind: _KindFile(self.directory, kind, self._max_file_bytes) for kind in KINDS}
        dirty = False
        last_flush = time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self._flush_interval)
                except queue.Empty:
                    item = None
                if item is _STOP:
                    break
                if item is not None:
                    kind, record = item  # type: ignore[misc]
                    try:
                        line = record_to_line(record)
                    except Exception as exc:  # a record that cannot be serialized is a bug; keep going
                        log.error("training_log_bad_record", kind=kind, error=repr(exc))
                        continue
                    day = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
                    files[kind].write(line, day)
                    self.written += 1
                    dirty = True
                now = time.monotonic()
                if dirty and (item is None or now - last_flush >= self._flush_interval):
                    for f in files.values():
                        f.flush()
                    dirty = False
                    last_flush = now
        finally:
            for f in files.values():
                f.close()
