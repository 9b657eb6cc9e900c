"""The training log: one proto-JSON line per record, one file stream per record kind.

Format (a contract with training pipelines; `buf breaking` in WIRE_JSON mode guards the names):
each line is `json_format.MessageToDict(record, always_print_fields_with_no_presence=True)`
serialized as compact JSON — camelCase keys (the protos' JSON names, exactly what WIRE_JSON
checks), every field present even when empty, int64 as strings, bytes as base64, enums by name,
timestamps RFC 3339. Parse a line back with `json_format.Parse(line, RecordType())`.

Files live in `<config-dir>/logs/` as `<kind>-YYYYMMDD.jsonl`: a new file each UTC day, and a
numbered one (`<kind>-YYYYMMDD.N.jsonl`) whenever the next line would take the current file past
`max_file_bytes`.

The records are written by a logger of their own — a writer process, not a `logging` handler —
so no logging level (console or file) can filter them out; only `enabled=False` turns it off.

Writing never blocks the caller: `write()` serializes the record to protobuf bytes (about a
microsecond) and puts them in a bounded queue. A thread hands the queue over in batches to the
writer process (firebox.common.trainlog_writer), which converts to JSON, redacts secrets, rotates
and writes — on another core, never holding this process's GIL. When the queue is full the record
is dropped and counted; new drops are reported in an error log line (at most every few seconds,
and at close) and `dropped` feeds the services' status. A record is handed over within
`batch_interval` (0.1 s) and the writer fsyncs within `flush_interval` (0.4 s) of receiving it:
on disk within half a second of `write()`. If this process crashes, even by `kill -9`, the writer
still writes everything already handed over (it stops at end of input), so a crash loses at most
the last fraction of a second.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from google.protobuf.message import Message

import firebox
from firebox.common.logging import get_logger
from firebox.common.secrets import Redactor, redactor
from firebox.common.trainlog_writer import (
    EXECUTIONS,
    FEEDBACK,
    FLUSH,
    FRAME,
    GENERATIONS,
    KINDS,
    REDACTION,
    TOOL_CALLS,
    record_to_line,
)

__all__ = ["EXECUTIONS", "FEEDBACK", "GENERATIONS", "KINDS", "TOOL_CALLS", "TrainingLog", "record_to_line"]

LOGGER_NAME = "firebox.trainlog"
# Drop reports must reach the service log whatever level someone sets on the "firebox" parents.
logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)
log = get_logger(LOGGER_NAME)

DEFAULT_MAX_QUEUE = 10_000
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
# The hand-over thread sleeps DEFAULT_BATCH_INTERVAL after each batch, so it and the writer wake at
# most ~10 times a second however busy the service is: each wake-up takes the GIL from the event
# loop, and costs the writer ~0.2 ms of CPU before its first record (cold caches on a busy machine).
# At 50 wake-ups a second the writer spent 22-27 µs a record under load, at 10 about 18.
# With the writer's flush interval, a record is fsynced within half a second of write().
DEFAULT_BATCH_INTERVAL = 0.1
DEFAULT_FLUSH_INTERVAL = 0.4
_DROP_REPORT_INTERVAL = 5.0
_MAX_BATCH = 5_000
_KIND_INDEX = {kind: i for i, kind in enumerate(KINDS)}
_PACKAGE_ROOT = str(Path(firebox.__file__).resolve().parents[1])

_STOP = object()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _FlushRequest:
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


@dataclass
class _Child:
    """One writer process and what it has reported."""

    proc: subprocess.Popen[bytes]
    written: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    pending: dict[int, _FlushRequest] = field(default_factory=dict)
    reader: threading.Thread | None = None


class TrainingLog:
    """Writes training records to `<directory>/<kind>-YYYYMMDD[.N].jsonl` through a writer process.

    `write()` is safe to call from the event loop and from any thread. `clock` is read when a
    record is written and decides its file's (UTC) day; it exists so tests can move time.
    Secrets are redacted by the writer with `redact`'s policy and registered values.
    """

    def __init__(
        self,
        directory: Path,
        enabled: bool = True,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        clock: Callable[[], dt.datetime] = _utc_now,
        redact: Redactor = redactor,
        batch_interval: float = DEFAULT_BATCH_INTERVAL,
    ) -> None:
        self.directory = directory
        self.enabled = enabled
        self._max_file_bytes = max_file_bytes
        self._flush_interval = flush_interval
        self._batch_interval = batch_interval
        self._clock = clock
        self._redact = redact
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._queue_dropped: Counter[str] = Counter()
        self._lost: Counter[str] = Counter()  # handed to a writer process that died
        self._done_written: Counter[str] = Counter()  # reported by writer processes that ended
        self._done_failed: Counter[str] = Counter()
        self._reported_dropped = 0
        self._redaction_sent: tuple[object, ...] | None = None
        self._next_token = 0
        self._closed = False
        self._child: _Child | None = None
        self._thread: threading.Thread | None = None
        if enabled:
            directory.mkdir(parents=True, exist_ok=True)
            self._child = self._spawn()
            self._thread = threading.Thread(target=self._run, name="firebox-trainlog", daemon=True)
            self._thread.start()

    # -- what the services call ---------------------------------------------------------------

    def write(self, kind: str, record: Message) -> bool:
        """Queue one record; never blocks. Returns False when it was dropped (or the log is off)."""
        if kind not in _KIND_INDEX:
            raise ValueError(f"unknown training log record kind {kind!r}; expected one of {KINDS}")
        if not self.enabled:
            return False
        if not self._closed:
            when_ns = int(self._clock().timestamp() * 1e9)
            try:
                self._queue.put_nowait((_KIND_INDEX[kind], when_ns, record.SerializeToString()))
                return True
            except queue.Full:
                pass
        with self._lock:
            self._queue_dropped[kind] += 1
        return False

    @property
    def queued(self) -> int:
        """Records handed over and not yet taken by the writer."""
        return self._queue.qsize()

    @property
    def dropped(self) -> int:
        """Records lost: queue overflow, writes after close, and records the writer could not write."""
        return sum(self.dropped_by_kind.values())

    @property
    def dropped_by_kind(self) -> Counter[str]:
        with self._lock:
            total = self._queue_dropped + self._lost + self._done_failed
            if self._child is not None:
                total += self._child.failed
            return total

    @property
    def written(self) -> int:
        """Records the writer has written, as of its last answer (after `flush()` or `close()`: all)."""
        return sum(self.written_by_kind.values())

    @property
    def written_by_kind(self) -> Counter[str]:
        with self._lock:
            return self._done_written + (self._child.written if self._child is not None else Counter())

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid (None when the log is off or closed)."""
        child = self._child
        return child.proc.pid if child is not None else None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued before this call is written and fsynced; False on timeout."""
        if self._thread is None:
            return True
        request = _FlushRequest()
        try:
            self._queue.put(request, timeout=timeout)
        except queue.Full:
            return False
        return request.done.wait(timeout) and request.ok

    def close(self, timeout: float = 10.0) -> None:
        """Hand over everything queued, let the writer write and fsync it, and stop; report drops."""
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("training_log_close_timed_out", queued=self._queue.qsize())
        thread.join(timeout)
        self._report_drops()

    # -- the hand-over thread -----------------------------------------------------------------

    def _spawn(self) -> _Child:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "firebox.common.trainlog_writer",
                str(self.directory),
                "--max-file-bytes",
                str(self._max_file_bytes),
                "--flush-interval",
                str(self._flush_interval),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Its own session: a Ctrl-C at the terminal must not stop it before the service has.
            start_new_session=True,
        )
        child = _Child(proc)
        child.reader = threading.Thread(
            target=self._read_answers, args=(child,), name="firebox-trainlog-answers", daemon=True
        )
        child.reader.start()
        self._redaction_sent = None
        return child

    def _read_answers(self, child: _Child) -> None:
        stdout: IO[bytes] | None = child.proc.stdout
        assert stdout is not None
        for raw in stdout:
            try:
                answer = json.loads(raw)
            except ValueError:
                continue
            with self._lock:
                child.written = Counter(answer.get("written", {}))
                child.failed = Counter(answer.get("failed", {}))
            if "error" in answer:
                log.error("training_log_write_failed", kind=answer.get("kind"), error=answer["error"])
            if "flushed" in answer:
                request = child.pending.pop(answer["flushed"], None)
                if request is not None:
                    request.ok = True
                    request.done.set()
        for request in list(child.pending.values()):  # the writer died before answering
            request.done.set()
        child.pending.clear()

    def _run(self) -> None:
        last_drop_check = time.monotonic()
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=_DROP_REPORT_INTERVAL)
            except queue.Empty:
                first = None
            items = [] if first is None else [first]
            while len(items) < _MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in items)
            if items:
                self._hand_over([item for item in items if item is not _STOP])
            now = time.monotonic()
            if now - last_drop_check >= _DROP_REPORT_INTERVAL:
                last_drop_check = now
                self._report_drops()
            if not stop and items:
                time.sleep(self._batch_interval)
        self._stop_child()

    def _hand_over(self, items: list[object]) -> None:
        child = self._child
        if child is None or child.proc.poll() is not None:
            if child is not None:
                self._retire(child)
                log.error("training_log_writer_died", exit_code=child.proc.returncode)
            child = self._child = self._spawn()
        frames = bytearray(self._redaction_frame())
        counts: Counter[str] = Counter()
        flushes: list[_FlushRequest] = []
        for item in items:
            if isinstance(item, _FlushRequest):
                self._next_token += 1
                child.pending[self._next_token] = item
                flushes.append(item)
                frames += FRAME.pack(FLUSH, self._next_token, 0)
            else:
                index, when_ns, payload = cast(tuple[int, int, bytes], item)
                counts[KINDS[index]] += 1
                frames += FRAME.pack(index, when_ns, len(payload))
                frames += payload
        stdin = child.proc.stdin
        assert stdin is not None
        try:
            stdin.write(frames)
            stdin.flush()
        except OSError as exc:  # the writer died mid-batch: these records are lost, the next batch respawns
            with self._lock:
                self._lost += counts
            log.error("training_log_writer_died", error=repr(exc), lost=sum(counts.values()))
            for request in flushes:
                request.done.set()

    def _redaction_frame(self) -> bytes:
        """The redaction settings, when they changed since the writer last got them."""
        settings = self._redact.settings()
        key = tuple(tuple(settings[name]) for name in sorted(settings))
        if key == self._redaction_sent:
            return b""
        self._redaction_sent = key
        payload = json.dumps(settings).encode()
        return FRAME.pack(REDACTION, 0, len(payload)) + payload

    def _stop_child(self) -> None:
        child = self._child
        if child is None:
            return
        try:
            assert child.proc.stdin is not None
            child.proc.stdin.close()  # end of input: the writer writes the rest, fsyncs and exits
        except OSError:
            pass
        try:
            child.proc.wait(30)
        except subprocess.TimeoutExpired:
            log.error("training_log_writer_stuck", pid=child.proc.pid)
            child.proc.kill()
            child.proc.wait()
        self._retire(child)
        self._child = None

    def _retire(self, child: _Child) -> None:
        if child.reader is not None:
            child.reader.join(5)
        with self._lock:
            self._done_written += child.written
            self._done_failed += child.failed
            child.written, child.failed = Counter(), Counter()

    def _report_drops(self) -> None:
        by_kind = self.dropped_by_kind
        dropped = sum(by_kind.values())
        if dropped > self._reported_dropped:
            log.error(
                "training_log_dropped_records",
                dropped_total=dropped,
                dropped_since_last_report=dropped - self._reported_dropped,
                dropped_by_kind=dict(by_kind),
                queue_size=self._queue.maxsize,
            )
            self._reported_dropped = dropped
