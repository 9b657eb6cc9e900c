"""Idle expiry and time to live: stop a workspace nobody has used for its idle timeout, delete one
older than its time to live.

"Used" means an Execute started or still running (its stream attached, or the command going on
in the background) or a file call; the workspace manager reports each through `touch`, and the
execution engine says which workspaces have commands running, which are never idle and never
deleted. A workspace's idle timeout and ttl are what its client asked for at create (kept with
the workspace by its backend), or the server's defaults.

The last activity of each workspace and the reason the executor stopped one are kept in
`<config-dir>/expiry.json` (written atomically at most every SAVE_INTERVAL and at close), so an
executor restarted after a long pause stops what went idle meanwhile and still tells why it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from executor_service.backend import WorkspaceInfo
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.expiry")

CHECK_INTERVAL = 1.0
SAVE_INTERVAL = 5.0
STATE_FILE = "expiry.json"
# Longest idle timeout or ttl a client may ask for (a year): past that, "never" (0) is meant.
MAX_SECONDS = 366 * 24 * 3600.0


def check_seconds(field: str, value: float | None) -> float | None:
    """A requested idle timeout or ttl: None (the default), 0 (never) or a positive bound."""
    if value is None:
        return None
    if value < 0 or value > MAX_SECONDS:
        raise errors.InvalidArgument(field, f"0 (never) up to {MAX_SECONDS:.0f} seconds, got {value:g}")
    if 0 < value < 1:
        raise errors.InvalidArgument(field, f"at least 1 second (or 0 for never), got {value:g}")
    return value


def words(seconds: float) -> str:
    """12 -> "12s", 1830 -> "30m30s", 7200 -> "2h0m0s"."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class WorkspaceExpiry:
    """Tracks activity and stops or deletes workspaces when their time is up (see module docstring)."""

    def __init__(
        self,
        config_dir: Path,
        default_idle_timeout: float,
        default_ttl: float,
        *,
        running: Callable[[str], int],
        known: Callable[[], list[WorkspaceInfo]],
        stop: Callable[[str], object],
        delete: Callable[[str], object],
    ) -> None:
        self.path = config_dir / STATE_FILE
        self.default_idle_timeout = default_idle_timeout
        self.default_ttl = default_ttl
        self._running = running
        self._known = known
        self._stop = stop
        self._delete = delete
        self.last_active: dict[str, float] = {}
        self.stopped: dict[str, str] = {}
        self._dirty = False
        self._saved_at = 0.0
        self._write_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    # ---- what clients see ----

    def idle_timeout(self, info: WorkspaceInfo) -> float:
        return self.default_idle_timeout if info.idle_timeout is None else info.idle_timeout

    def ttl(self, info: WorkspaceInfo) -> float:
        return self.default_ttl if info.ttl is None else info.ttl

    def stop_time(self, info: WorkspaceInfo) -> dt.datetime | None:
        """When the workspace stops if it stays idle; None if never or not running."""
        idle = self.idle_timeout(info)
        if not idle or info.state not in ("running", "paused"):
            return None
        last = max(self.last_active.get(info.id, time.time()), time.time() if self._running(info.id) else 0)
        return dt.datetime.fromtimestamp(last + idle, dt.UTC)

    def delete_time(self, info: WorkspaceInfo) -> dt.datetime | None:
        ttl = self.ttl(info)
        return info.created + dt.timedelta(seconds=ttl) if ttl else None

    def stopped_reason(self, workspace_id: str) -> str:
        return self.stopped.get(workspace_id, "")

    # ---- what the rest of the executor reports ----

    def touch(self, workspace_id: str) -> None:
        """The workspace was used now."""
        self.last_active[workspace_id] = time.time()
        self._dirty = True

    def started(self, workspace_id: str) -> None:
        """Started (by a client): used now, and no longer stopped by expiry."""
        self.touch(workspace_id)
        self.stopped.pop(workspace_id, None)

    def forget(self, workspace_id: str) -> None:
        self.last_active.pop(workspace_id, None)
        self.stopped.pop(workspace_id, None)
        self._dirty = True

    # ---- the loop ----

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        now = time.time()
        for info in self._known():
            # Never seen (made before expiry was tracked): its idle time starts now.
            self.last_active.setdefault(info.id, now)
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._save()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                await self.check()
            except Exception:
                log.exception("expiry_check_failed")

    async def check(self, now: float | None = None) -> None:
        """One pass: stop the idle, delete the expired, save the state now and then."""
        now = time.time() if now is None else now
        for info in self._known():
            if self._running(info.id):
                self.touch(info.id)
                continue
            ttl = self.ttl(info)
            age = now - info.created.timestamp()
            if ttl and age >= ttl:
                await self._expire(info, f"older than its ttl {words(ttl)}", self._delete)
                continue
            idle_timeout = self.idle_timeout(info)
            idle = now - self.last_active.setdefault(info.id, now)
            if idle_timeout and info.state in ("running", "paused") and idle >= idle_timeout:
                reason = f"idle for {words(idle)} (idle_timeout {words(idle_timeout)})"
                # Said before the stop, so that whoever sees it stopped also sees why.
                self.stopped[info.id] = reason
                self._dirty = True
                if not await self._expire(info, reason, self._stop):
                    self.stopped.pop(info.id, None)
        if self._dirty and now - self._saved_at >= SAVE_INTERVAL:
            await self._save()

    async def _expire(self, info: WorkspaceInfo, reason: str, action: Callable[[str], object]) -> bool:
        what = "deleted" if action is self._delete else "stopped"
        try:
            await action(info.id)  # type: ignore[misc]
        except errors.NotFound:
            self.forget(info.id)
            return False
        except errors.FireboxError as exc:
            log.warning(f"workspace_not_{what}", workspace_id=info.id, reason=reason, error=str(exc))
            return False
        log.info(f"workspace_{what}_by_expiry", workspace_id=info.id, name=info.name, reason=reason)
        if action is self._delete:
            self.forget(info.id)
        return True

    # ---- the state file ----

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("expiry_state_unreadable", path=str(self.path), error=repr(exc))
            return
        self.last_active = {k: float(v) for k, v in dict(data.get("last_active", {})).items()}
        self.stopped = {k: str(v) for k, v in dict(data.get("stopped", {})).items()}

    async def _save(self) -> None:
        """What is known now (read on the event loop, where it changes), written in a thread.
        Writes never overlap: close's save may come while a cancelled loop's is still running."""
        known = {info.id for info in self._known()}
        data = {
            "last_active": {k: v for k, v in self.last_active.items() if k in known},
            "stopped": {k: v for k, v in self.stopped.items() if k in known},
        }
        await asyncio.to_thread(self._write, json.dumps(data, sort_keys=True))
        self._dirty = False
        self._saved_at = time.time()

    def _write(self, text: str) -> None:
        with self._write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)
