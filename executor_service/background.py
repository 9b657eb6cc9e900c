"""Background executions (ExecuteRequest.background): commands that outlive the stream that
started them, whose output clients replay and follow by byte offset.

A `BackgroundExecution` drains its `Execution`'s events into an `OutputBuffer` (the newest
`capacity` bytes, stdout and stderr in one offset space; what falls out is counted), so the
command never blocks on a client that is gone. Clients follow it with `follow(after_offset)`:
the retained output after that offset, then live output, then the end. Any number may follow;
one is the writer (input, stop, resize): the latest that attached without `read_only`.

Each one is recorded in `<config-dir>/executions/<id>.json` when it starts and when it ends.
A background command runs in a shell the executor drives, so it cannot outlive the executor:
a new executor finds records still marked running and reports them finished ("the executor
restarted"), never as running ghosts. Finished ones stay listed until newer ones push them out.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import contextlib
import datetime as dt
import json
import os
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from executor_service.execution import EndReason, Execution, Finished, Output, Started, quote_argv
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.background")

DEFAULT_BUFFER_BYTES = 1024 * 1024
# Per workspace: background executions running at once, and finished ones kept listed.
MAX_RUNNING_PER_WORKSPACE = 32
MAX_FINISHED_PER_WORKSPACE = 16
# Largest piece of output one follow step hands out (one gRPC message's worth).
FOLLOW_CHUNK = 256 * 1024
RESTARTED = (
    "the executor restarted: the execution's processes ended with its shell and its output was not kept"
)


class OutputBuffer:
    """The newest `capacity` bytes of a command's output, addressed by absolute offset."""

    def __init__(self, capacity: int, start: int = 0) -> None:
        self.capacity = capacity
        # (offset, stream, data), oldest first, contiguous.
        self._chunks: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self.start = start  # offset of the oldest retained byte (= bytes dropped so far)
        self.end = start  # offset just past the newest byte
        self._size = 0

    def append(self, stream: int, data: bytes) -> None:
        if not data:
            return
        self._chunks.append((self.end, stream, data))
        self.end += len(data)
        self._size += len(data)
        while self._size > self.capacity:
            offset, first_stream, first = self._chunks[0]
            excess = self._size - self.capacity
            if len(first) <= excess:
                self._chunks.popleft()
                self._size -= len(first)
                self.start = offset + len(first)
            else:
                self._chunks[0] = (offset + excess, first_stream, first[excess:])
                self._size -= excess
                self.start = offset + excess

    def after(self, offset: int, limit: int = FOLLOW_CHUNK) -> tuple[int, list[tuple[int, bytes]], int]:
        """(bytes skipped because they were dropped, [(stream, data)...] up to `limit` bytes,
        the offset just past what is returned)."""
        skipped = max(0, self.start - offset)
        offset = max(offset, self.start)
        pieces: list[tuple[int, bytes]] = []
        size = 0
        for chunk_offset, stream, data in self._chunks:
            chunk_end = chunk_offset + len(data)
            if chunk_end <= offset:
                continue
            piece = data[max(0, offset - chunk_offset) :][: limit - size]
            pieces.append((stream, piece))
            size += len(piece)
            offset += len(piece)
            if size >= limit:
                break
        return skipped, pieces, offset


@dataclass(frozen=True)
class FollowOutput:
    """Output after the follower's offset; `offset` is just past it."""

    stdout: bytes
    stderr: bytes
    offset: int
    skipped: int = 0


class Attachment:
    """One client following an execution."""

    def __init__(self, read_only: bool) -> None:
        self.read_only = read_only


@dataclass
class BackgroundExecution:
    """One background execution as ListExecutions shows it."""

    id: str
    workspace_id: str
    session_id: str
    command: str
    tty: bool
    started: dt.datetime
    buffer: OutputBuffer
    execution: Execution | None = None
    pid: int = 0
    finished: Finished | None = None
    finished_at: dt.datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)
    writer: Attachment | None = None
    _tick: asyncio.Event = field(default_factory=asyncio.Event)
    _started: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    def attach(self, read_only: bool) -> Attachment:
        attachment = Attachment(read_only)
        self.attachments.append(attachment)
        if not read_only:
            self.writer = attachment  # the latest writer takes over (an editor that reloaded)
        return attachment

    def detach(self, attachment: Attachment) -> None:
        with contextlib.suppress(ValueError):
            self.attachments.remove(attachment)
        if self.writer is attachment:
            self.writer = None

    def require_writer(self, attachment: Attachment) -> Execution | None:
        """The execution to write to (None once it has finished); FailedPrecondition unless
        `attachment` is the writer."""
        if self.writer is not attachment:
            why = "it attached read_only" if attachment.read_only else "a later client took over writing"
            raise errors.FailedPrecondition(
                f"this client may not send input, stops or resizes to execution {self.id}: {why}"
            )
        return self.execution if self.finished is None else None

    async def follow(self, after_offset: int) -> AsyncGenerator[FollowOutput | Finished, None]:
        """Retained output after `after_offset`, then live output, then the Finished event."""
        offset = after_offset
        first = True
        while True:
            tick = self._tick
            skipped, pieces, end = self.buffer.after(offset)
            if pieces or (first and skipped):
                out = b"".join(data for stream, data in pieces if stream != 2)
                err = b"".join(data for stream, data in pieces if stream == 2)
                yield FollowOutput(out, err, end, skipped if first else 0)
                first = False
                offset = end
                continue
            if self.finished is not None and offset >= self.buffer.end:
                yield self.finished
                return
            await tick.wait()

    def record(self) -> dict[str, object]:
        finished = self.finished
        return {
            "id": self.id,
            "workspace_id": self.workspace_id,
            "session_id": self.session_id,
            "command": self.command,
            "tty": self.tty,
            "started": self.started.isoformat(),
            "pid": self.pid,
            "output_bytes": self.buffer.end,
            "finished": self.finished_at.isoformat() if self.finished_at else None,
            "exit_code": finished.exit_code if finished else None,
            "reason": finished.reason.value if finished else None,
            "message": finished.message if finished else "",
        }


class BackgroundExecutions:
    """Every background execution of this executor, by id."""

    def __init__(self, state_dir: Path | None, buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        self.state_dir = state_dir
        self.buffer_bytes = buffer_bytes
        self._all: dict[str, BackgroundExecution] = {}
        self._pumps: set[asyncio.Task[None]] = set()

    # ---- start-up ----------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the records of the previous executor: what it left running has ended with it."""
        if self.state_dir is None:
            return
        for item in await asyncio.to_thread(self._read_records):
            try:
                bg = _from_record(item)
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("execution_record_unreadable", error=repr(exc))
                continue
            if bg.finished is None:
                bg.finished = Finished(None, EndReason.SHUTDOWN, message=RESTARTED)
                bg.finished_at = dt.datetime.now(dt.UTC)
                await asyncio.to_thread(self._write, bg)
                log.info("background_execution_ended_by_restart", execution_id=bg.id)
            self._all[bg.id] = bg

    # ---- running -----------------------------------------------------------------------------

    def check_room(self, workspace_id: str) -> None:
        running = sum(1 for b in self._all.values() if b.workspace_id == workspace_id and b.finished is None)
        if running >= MAX_RUNNING_PER_WORKSPACE:
            raise errors.ResourceExhausted(
                f"workspace {workspace_id!r} already runs {MAX_RUNNING_PER_WORKSPACE} background executions; "
                "stop some (StopExecution) first"
            )

    async def adopt(
        self,
        execution: Execution,
        workspace_id: str,
        *,
        observe: Callable[[bytes, bytes], None] | None = None,
        on_finished: Callable[[Finished], None] | None = None,
    ) -> BackgroundExecution:
        """Take `execution` (just started) into the background: drain it from now on."""
        spec = execution.spec
        bg = BackgroundExecution(
            id=execution.id,
            workspace_id=workspace_id,
            session_id=spec.session_id or "",
            command=spec.script if spec.script is not None else quote_argv(spec.argv or []),
            tty=spec.tty,
            started=dt.datetime.now(dt.UTC),
            buffer=OutputBuffer(self.buffer_bytes),
            execution=execution,
        )
        self._all[bg.id] = bg
        await asyncio.to_thread(self._write, bg)
        task = asyncio.create_task(self._drain(bg, observe, on_finished))
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)
        await bg._started.wait()
        return bg

    async def _drain(
        self,
        bg: BackgroundExecution,
        observe: Callable[[bytes, bytes], None] | None,
        on_finished: Callable[[Finished], None] | None,
    ) -> None:
        assert bg.execution is not None
        finished: Finished | None = None
        try:
            async for event in bg.execution.events():
                if isinstance(event, Started):
                    bg.pid = event.pid
                    bg._started.set()
                elif isinstance(event, Output):
                    bg.buffer.append(1, event.stdout)
                    bg.buffer.append(2, event.stderr)
                    if observe is not None:
                        observe(event.stdout, event.stderr)
                elif isinstance(event, Finished):
                    finished = event
                bg.changed()
        finally:
            bg._started.set()
            bg.finished = finished or Finished(
                None, EndReason.SHUTDOWN, message="the executor stopped following it"
            )
            bg.finished_at = dt.datetime.now(dt.UTC)
            bg.execution = None
            bg.changed()
            if on_finished is not None:
                on_finished(bg.finished)
            await asyncio.to_thread(self._write, bg)
            await self._evict(bg.workspace_id)

    # ---- queries -------------------------------------------------------------------------------

    def get(self, execution_id: str) -> BackgroundExecution:
        bg = self._all.get(execution_id)
        if bg is None:
            raise errors.NotFound(f"no background execution {execution_id[:100]!r}")
        return bg

    def list(self, workspace_id: str) -> list[BackgroundExecution]:
        return sorted(
            (b for b in self._all.values() if b.workspace_id == workspace_id), key=lambda b: b.started
        )

    async def stop(self, execution_id: str, kill: bool) -> BackgroundExecution:
        bg = self.get(execution_id)
        if bg.execution is not None:
            await bg.execution.stop(kill=kill)
        return bg

    async def forget_workspace(self, workspace_id: str) -> None:
        """The workspace is gone: so are its records (its commands ended with it)."""
        for bg in [
            b for b in self._all.values() if b.workspace_id == workspace_id and b.finished is not None
        ]:
            self._all.pop(bg.id, None)
            await asyncio.to_thread(self._remove, bg.id)

    # ---- internals -------------------------------------------------------------------------------

    async def _evict(self, workspace_id: str) -> None:
        finished = [b for b in self.list(workspace_id) if b.finished is not None]
        for old in finished[: max(0, len(finished) - MAX_FINISHED_PER_WORKSPACE)]:
            self._all.pop(old.id, None)
            await asyncio.to_thread(self._remove, old.id)

    def _write(self, bg: BackgroundExecution) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / f"{bg.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(bg.record(), sort_keys=True))
        os.replace(tmp, path)

    def _remove(self, execution_id: str) -> None:
        if self.state_dir is not None:
            (self.state_dir / f"{execution_id}.json").unlink(missing_ok=True)

    def _read_records(self) -> builtins.list[dict[str, object]]:
        assert self.state_dir is not None
        if not self.state_dir.is_dir():
            return []
        records = []
        for path in self.state_dir.glob("*.json"):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:
                log.warning("execution_record_unreadable", path=str(path), error=repr(exc))
        return records


def _from_record(item: dict[str, object]) -> BackgroundExecution:
    output_bytes = int(item.get("output_bytes") or 0)  # type: ignore[call-overload]
    bg = BackgroundExecution(
        id=str(item["id"]),
        workspace_id=str(item["workspace_id"]),
        session_id=str(item.get("session_id") or ""),
        command=str(item.get("command") or ""),
        tty=bool(item.get("tty")),
        started=dt.datetime.fromisoformat(str(item["started"])),
        # Nothing of its output survives a restart: all of it counts as dropped.
        buffer=OutputBuffer(0, start=output_bytes),
        pid=int(item.get("pid") or 0),  # type: ignore[call-overload]
    )
    if item.get("finished"):
        code = item.get("exit_code")
        bg.finished = Finished(
            int(code) if code is not None else None,  # type: ignore[call-overload]
            EndReason(str(item["reason"])),
            message=str(item.get("message") or ""),
        )
        bg.finished_at = dt.datetime.fromisoformat(str(item["finished"]))
    return bg
