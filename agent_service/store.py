"""Where sessions, messages, runs and run events are kept: an interface, SQLite behind it by
default, PostgreSQL (agent_service/pg_store.py) when several agent replicas share one database.

Records are the agent's proto messages (Session, Message, Run, RunEvent), stored as serialized
blobs next to the few columns queries need, so a field added to a proto needs no migration. The
schema is defined once in agent_service/schema.py; SQLite keeps its version in
`PRAGMA user_version` and is taken forward in place when an older agent's file is opened.

SQLite calls block, so every call runs on one dedicated thread that owns the connection; the
event loop only awaits. One thread also serializes writes, which SQLite wants anyway.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from agent_service.schema import SCHEMA_VERSION, Table, migration
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import Aborted, InvalidArgument

T = TypeVar("T")

# Run states that mean "was going on" when the agent stopped.
_LIVE_RUN_STATES = (agent_pb2.RUN_STATUS_RUNNING, agent_pb2.RUN_STATUS_QUEUED)

# Notice channels between replicas (PostgreSQL LISTEN/NOTIFY); payloads are run ids only, the
# rows are the truth (a notice is at most 8000 bytes, and one may be missed on a reconnect).
EVENTS_CHANNEL = "firebox_run_events"
CONTROL_CHANNEL = "firebox_run_control"

RESTART_REASON = "the agent stopped while the run was going"


def interrupted(data: bytes, end_time_ns: int, reason: str, final_index: int) -> agent_pb2.Run:
    """A stored run, ended INTERRUPTED for `reason` by its event number `final_index`."""
    run = agent_pb2.Run.FromString(data)
    run.status = agent_pb2.RUN_STATUS_INTERRUPTED
    run.end_time.FromNanoseconds(end_time_ns)
    run.error = reason
    run.last_event_index = final_index
    return run


def taken_over(data: bytes) -> agent_pb2.Run:
    """A stored run, as a replica taking it over goes on with it."""
    run = agent_pb2.Run.FromString(data)
    run.takeovers += 1
    return run


def run_row(run: agent_pb2.Run, owner: str, lease_until_ns: int) -> tuple[object, ...]:
    """(id, session_id, create_ns, status, data, owner, lease_ns): a run as both backends insert it."""
    return (
        run.id,
        run.session_id,
        run.create_time.ToNanoseconds(),
        run.status,
        run.SerializeToString(),
        owner,
        lease_until_ns,
    )


def add_usage(total: agent_pb2.Usage, usage: agent_pb2.Usage) -> None:
    """Add one call's token counts to `total`, in place."""
    total.input_tokens += usage.input_tokens
    total.cached_input_tokens += usage.cached_input_tokens
    total.output_tokens += usage.output_tokens
    total.reasoning_tokens += usage.reasoning_tokens
    total.total_tokens += usage.total_tokens


def add_to_total(
    session: agent_pb2.Session, usage: agent_pb2.Usage, context_tokens: int | None
) -> agent_pb2.Usage:
    """Add one call's usage to the session's stored total (and set its context size); returns a
    copy of the new total."""
    total = session.usage
    add_usage(total, usage)
    if context_tokens is not None:
        session.context_tokens = context_tokens
    result = agent_pb2.Usage()
    result.CopyFrom(total)
    return result


def final_event(run_id: str, index: int, end_time_ns: int, reason: str) -> agent_pb2.RunEvent:
    """The event that ends a run its owner could not end: what StreamRun replays last."""
    event = agent_pb2.RunEvent(
        index=index, run_id=run_id, run_cancelled=agent_pb2.RunCancelled(reason=reason)
    )
    event.time.FromNanoseconds(end_time_ns)
    return event


def encode_page_token(create_ns: int, record_id: str) -> str:
    return base64.urlsafe_b64encode(f"{create_ns}:{record_id}".encode()).decode()


def decode_page_token(token: str, field: str = "page_token") -> tuple[int, str]:
    try:
        ns, _, record_id = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        return int(ns), record_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(field, "not a token from a previous response") from None


class Store(abc.ABC):
    """Persistence of sessions, their messages and their runs. Every method is a coroutine that
    never blocks the event loop. Sessions and runs come back without live state (active run)."""

    @abc.abstractmethod
    async def create_session(self, session: agent_pb2.Session) -> None: ...

    @abc.abstractmethod
    async def get_session(self, session_id: str) -> agent_pb2.Session | None:
        """The session with its message_count filled in, or None."""

    @abc.abstractmethod
    async def update_session(self, session: agent_pb2.Session) -> None: ...

    @abc.abstractmethod
    async def add_usage(
        self, session_id: str, usage: agent_pb2.Usage, context_tokens: int | None = None
    ) -> agent_pb2.Usage:
        """Add one call's usage to the session's total (and set its context size), atomically;
        returns the new total."""

    @abc.abstractmethod
    async def get_message(self, session_id: str, message_id: str) -> agent_pb2.Message | None: ...

    @abc.abstractmethod
    async def find_message(self, message_id: str) -> tuple[str, agent_pb2.Message] | None:
        """(session id, message) of the message with this id in any session, or None."""

    @abc.abstractmethod
    async def rewind(self, session_id: str, message: agent_pb2.Message) -> int:
        """Replace `message` in place and delete every message after it, in one transaction;
        returns how many were deleted."""

    @abc.abstractmethod
    async def list_sessions(self, page_size: int, page_token: str) -> tuple[list[agent_pb2.Session], str]:
        """Newest first; returns the page and the token of the next one ("" at the end)."""

    @abc.abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Delete a session with its messages and runs; False if there was none."""

    @abc.abstractmethod
    async def clear_conversation(self, session_id: str, update_time_ns: int) -> tuple[int, int] | None:
        """Delete a session's messages (compaction checkpoints included) and its ended runs, and
        reset its context size, in one transaction that first checks no run of the session is
        recorded as running (another agent replica's). Returns (messages, runs) deleted; None if
        there is no such session; ABORTED naming the running run."""

    @abc.abstractmethod
    async def put_message(self, session_id: str, message: agent_pb2.Message) -> None:
        """Insert a message at the end of the session, or replace it (same id) in place."""

    @abc.abstractmethod
    async def list_messages(self, session_id: str) -> list[agent_pb2.Message]: ...

    @abc.abstractmethod
    async def put_run(
        self, run: agent_pb2.Run, owner: str = "", lease_until_ns: int = 0, only_owner: str = ""
    ) -> None:
        """Insert or replace a run. `owner` and its lease are recorded when the run is new. With
        `only_owner`, an existing run is replaced only while that process owns it (a replica whose
        run was taken over must not overwrite the taker's state)."""

    @abc.abstractmethod
    async def claim_run(self, run: agent_pb2.Run, owner: str, lease_until_ns: int) -> str:
        """Record `run` (status RUNNING) as its session's running run, owned by `owner`, in one
        atomic step; returns "" on success, else the id of the session's running run (unchanged)."""

    @abc.abstractmethod
    async def running_run_id(self, session_id: str) -> str:
        """The id of the session's RUNNING run, on whichever replica, or ""."""

    @abc.abstractmethod
    async def renew_leases(self, owner: str, lease_until_ns: int) -> dict[str, str]:
        """Extend the lease of every live run `owner` holds; returns them, each with the reason
        another replica asked to cancel it ("" when none). A run missing from it was taken over."""

    @abc.abstractmethod
    async def request_cancel(self, run_id: str, reason: str) -> bool:
        """Ask the run's owner to cancel it (recorded on the run, owner woken); False when the
        run is not live."""

    @abc.abstractmethod
    async def interrupt_expired(self, now_ns: int, reason: str) -> list[str]:
        """End the QUEUED runs whose owner's lease ran out before `now_ns` (their message was
        never stored, so there is nothing to go on with): each ends INTERRUPTED with `reason`
        and a final run_cancelled event. Returns their ids; two replicas never take the same run."""

    @abc.abstractmethod
    async def claim_expired(
        self, now_ns: int, owner: str, lease_until_ns: int, limit: int
    ) -> list[agent_pb2.Run]:
        """Take over at most `limit` RUNNING runs whose owner's lease ran out before `now_ns`:
        each becomes `owner`'s with a lease until `lease_until_ns`, its `takeovers` counted, and
        is returned with `last_event_index` set to its last recorded event. Its status, messages
        and events are left as they are: the new owner goes on with it. Two replicas never take
        the same run."""

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> agent_pb2.Run | None: ...

    @abc.abstractmethod
    async def list_runs(
        self, session_id: str, page_size: int, page_token: str
    ) -> tuple[list[agent_pb2.Run], str]: ...

    @abc.abstractmethod
    async def interrupt_unfinished(self, end_time_ns: int) -> list[str]:
        """After a restart of the only agent: mark runs that were running or queued INTERRUPTED
        (with a final run_cancelled event) and messages that were streaming INTERRUPTED. Returns
        the ids of the runs changed."""

    @abc.abstractmethod
    async def put_workspace_owner(self, workspace_id: str, instance_id: str, address: str) -> None:
        """Record (or move) the executor replica that owns a workspace."""

    @abc.abstractmethod
    async def get_workspace_owner(self, workspace_id: str) -> tuple[str, str] | None:
        """(instance_id, last known address) of the workspace's owner, or None when unknown."""

    @abc.abstractmethod
    async def delete_workspace_owner(self, workspace_id: str) -> None: ...

    @abc.abstractmethod
    async def append_events(self, run_id: str, events: Sequence[agent_pb2.RunEvent], owner: str = "") -> bool:
        """Record events of a run; an index recorded before is an error (never a silent repeat).
        With `owner`, nothing is recorded and False returned when another process owns the run
        now (it was taken over)."""

    @abc.abstractmethod
    async def list_events(self, run_id: str, after_index: int, limit: int) -> list[agent_pb2.RunEvent]:
        """At most `limit` recorded events of the run with an index above `after_index`, in order."""

    @abc.abstractmethod
    async def delete_events(self, run_id: str) -> None: ...

    # -- between replicas ------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def shared(self) -> bool:
        """True when other agent processes may use the same database (leases and notices matter)."""

    @abc.abstractmethod
    async def watch(self, on_notice: Callable[[str, str], None]) -> None:
        """Deliver notices from other replicas as on_notice(channel, run_id), channel
        EVENTS_CHANNEL (new events recorded) or CONTROL_CHANNEL (a cancel or an approval
        waits for the owner); until close. A backend with one process only has none to deliver."""

    @abc.abstractmethod
    async def put_approval_request(self, run_id: str, tool_call_id: str, data: bytes) -> None:
        """Leave a decision for the run's owner (replacing an earlier one) and wake it."""

    @abc.abstractmethod
    async def approval_requests(self, run_id: str) -> list[tuple[str, bytes]]:
        """(tool call id, data) of the decisions waiting for the run's owner."""

    @abc.abstractmethod
    async def finish_approval_request(self, run_id: str, tool_call_id: str, outcome: str) -> None:
        """The owner took the decision: "" removes it, anything else records why it could not."""

    @abc.abstractmethod
    async def approval_request_outcome(self, run_id: str, tool_call_id: str) -> str | None:
        """None once taken, "" while waiting, else why the owner refused it (then removed)."""

    # -- whole-table copying, for `firebox-agent migrate` ----------------------------------

    @abc.abstractmethod
    async def export_page(
        self, table: Table, after: tuple[object, ...] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Rows of `table` (its copied columns) with a key above `after`, in key order."""

    @abc.abstractmethod
    async def import_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows exported from another store, keys and all, in one transaction."""

    @abc.abstractmethod
    async def count_rows(self, table: Table) -> int: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


class SqliteStore(Store):
    """The Store in one SQLite file, WAL mode, on a dedicated thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firebox-agent-db")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        store = cls(path)
        await store._call(store._open)
        return store

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    # -- on the database thread ------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes in WAL mode; only a power cut can lose the tail.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {version}, newer than this agent's {SCHEMA_VERSION}"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in migration(target, "sqlite"):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={target}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn = conn

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is closed")
        return self._conn

    def _session_row(self, data: bytes, session_id: str) -> agent_pb2.Session:
        session = agent_pb2.Session.FromString(data)
        session.message_count = self._db.execute(
            "SELECT COUNT(*) FROM messages WHERE session_id = ?", (session_id,)
        ).fetchone()[0]
        return session

    # -- sessions --------------------------------------------------------------------------

    async def create_session(self, session: agent_pb2.Session) -> None:
        data = session.SerializeToString()
        await self._call(
            lambda: self._db.execute(
                "INSERT INTO sessions (id, create_ns, data) VALUES (?, ?, ?)",
                (session.id, session.create_time.ToNanoseconds(), data),
            )
        )

    async def get_session(self, session_id: str) -> agent_pb2.Session | None:
        def get() -> agent_pb2.Session | None:
            row = self._db.execute("SELECT data FROM sessions WHERE id = ?", (session_id,)).fetchone()
            return self._session_row(row[0], session_id) if row else None

        return await self._call(get)

    async def update_session(self, session: agent_pb2.Session) -> None:
        stored = agent_pb2.Session()
        stored.CopyFrom(session)
        stored.ClearField("active_run_id")
        stored.message_count = 0
        data = stored.SerializeToString()
        await self._call(
            lambda: self._db.execute("UPDATE sessions SET data = ? WHERE id = ?", (data, session.id))
        )

    async def add_usage(
        self, session_id: str, usage: agent_pb2.Usage, context_tokens: int | None = None
    ) -> agent_pb2.Usage:
        def add() -> agent_pb2.Usage:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT data FROM sessions WHERE id = ?", (session_id,)).fetchone()
                if row is None:
                    db.execute("ROLLBACK")
                    return agent_pb2.Usage()
                session = agent_pb2.Session.FromString(row[0])
                result = add_to_total(session, usage, context_tokens)
                db.execute(
                    "UPDATE sessions SET data = ? WHERE id = ?", (session.SerializeToString(), session_id)
                )
                db.execute("COMMIT")
                return result
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._call(add)

    async def list_sessions(self, page_size: int, page_token: str) -> tuple[list[agent_pb2.Session], str]:
        cursor = decode_page_token(page_token) if page_token else None

        def list_() -> tuple[list[agent_pb2.Session], str]:
            if cursor is None:
                rows = self._db.execute(
                    "SELECT id, create_ns, data FROM sessions ORDER BY create_ns DESC, id DESC LIMIT ?",
                    (page_size + 1,),
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT id, create_ns, data FROM sessions WHERE (create_ns, id) < (?, ?) "
                    "ORDER BY create_ns DESC, id DESC LIMIT ?",
                    (cursor[0], cursor[1], page_size + 1),
                ).fetchall()
            page = rows[:page_size]
            token = encode_page_token(page[-1][1], page[-1][0]) if len(rows) > page_size else ""
            return [self._session_row(data, sid) for sid, _ns, data in page], token

        return await self._call(list_)

    async def delete_session(self, session_id: str) -> bool:
        def delete() -> bool:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE session_id = ?)",
                    (session_id,),
                )
                deleted = db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0
                db.execute("COMMIT")
                return deleted
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._call(delete)

    async def clear_conversation(self, session_id: str, update_time_ns: int) -> tuple[int, int] | None:
        def clear() -> tuple[int, int] | None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT data FROM sessions WHERE id = ?", (session_id,)).fetchone()
                if row is None:
                    db.execute("ROLLBACK")
                    return None
                running = db.execute(
                    "SELECT id FROM runs WHERE session_id = ? AND status = ? LIMIT 1",
                    (session_id, agent_pb2.RUN_STATUS_RUNNING),
                ).fetchone()
                if running is not None:
                    db.execute("ROLLBACK")
                    raise Aborted(
                        f"session {session_id} has a running run {running[0]}; cancel it and clear again"
                    )
                messages = db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,)).rowcount
                # Queued runs keep their rows: they start after the clear, in the cleared session.
                db.execute(
                    "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE session_id = ? AND status != ?)",
                    (session_id, agent_pb2.RUN_STATUS_QUEUED),
                )
                runs = db.execute(
                    "DELETE FROM runs WHERE session_id = ? AND status != ?",
                    (session_id, agent_pb2.RUN_STATUS_QUEUED),
                ).rowcount
                session = agent_pb2.Session.FromString(row[0])
                session.context_tokens = 0
                session.update_time.FromNanoseconds(update_time_ns)
                db.execute(
                    "UPDATE sessions SET data = ? WHERE id = ?", (session.SerializeToString(), session_id)
                )
                db.execute("COMMIT")
                return messages, runs
            except Aborted:
                raise
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._call(clear)

    # -- messages --------------------------------------------------------------------------

    async def put_message(self, session_id: str, message: agent_pb2.Message) -> None:
        data = message.SerializeToString()

        def put() -> None:
            # Upsert keeps the row (and so its place in the conversation) when a message is updated.
            self._db.execute(
                "INSERT INTO messages (id, session_id, status, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data",
                (message.id, session_id, message.status, data),
            )

        await self._call(put)

    async def list_messages(self, session_id: str) -> list[agent_pb2.Message]:
        def list_() -> list[agent_pb2.Message]:
            rows = self._db.execute(
                "SELECT data FROM messages WHERE session_id = ? ORDER BY seq", (session_id,)
            ).fetchall()
            return [agent_pb2.Message.FromString(row[0]) for row in rows]

        return await self._call(list_)

    async def get_message(self, session_id: str, message_id: str) -> agent_pb2.Message | None:
        def get() -> agent_pb2.Message | None:
            row = self._db.execute(
                "SELECT data FROM messages WHERE session_id = ? AND id = ?", (session_id, message_id)
            ).fetchone()
            return agent_pb2.Message.FromString(row[0]) if row else None

        return await self._call(get)

    async def find_message(self, message_id: str) -> tuple[str, agent_pb2.Message] | None:
        row = await self._call(
            lambda: self._db.execute(
                "SELECT session_id, data FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        )
        return (row[0], agent_pb2.Message.FromString(row[1])) if row else None

    async def rewind(self, session_id: str, message: agent_pb2.Message) -> int:
        data = message.SerializeToString()

        def rewind() -> int:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT seq FROM messages WHERE session_id = ? AND id = ?", (session_id, message.id)
                ).fetchone()
                if row is None:
                    db.execute("ROLLBACK")
                    return 0
                db.execute(
                    "UPDATE messages SET status = ?, data = ? WHERE seq = ?", (message.status, data, row[0])
                )
                deleted = db.execute(
                    "DELETE FROM messages WHERE session_id = ? AND seq > ?", (session_id, row[0])
                ).rowcount
                db.execute("COMMIT")
                return deleted
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._call(rewind)

    # -- runs ------------------------------------------------------------------------------

    async def put_run(
        self, run: agent_pb2.Run, owner: str = "", lease_until_ns: int = 0, only_owner: str = ""
    ) -> None:
        # Serialized here, not on the database thread: the loop goes on changing the run.
        row = run_row(run, owner, lease_until_ns)
        await self._call(
            lambda: self._db.execute(
                "INSERT INTO runs (id, session_id, create_ns, status, data, owner, lease_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data "
                "WHERE ? = '' OR runs.owner = ?",
                (*row, only_owner, only_owner),
            )
        )

    async def claim_run(self, run: agent_pb2.Run, owner: str, lease_until_ns: int) -> str:
        # Serialized here, not on the database thread: the loop goes on changing the run.
        row = run_row(run, owner, lease_until_ns)

        def claim() -> str:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                other = db.execute(
                    "SELECT id FROM runs WHERE session_id = ? AND status = ? AND id != ?",
                    (row[1], agent_pb2.RUN_STATUS_RUNNING, row[0]),
                ).fetchone()
                if other is None:
                    db.execute(
                        "INSERT INTO runs (id, session_id, create_ns, status, data, owner, lease_ns) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                        "data = excluded.data, owner = excluded.owner, lease_ns = excluded.lease_ns",
                        row,
                    )
                db.execute("COMMIT")
                return other[0] if other else ""
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._call(claim)

    async def running_run_id(self, session_id: str) -> str:
        row = await self._call(
            lambda: self._db.execute(
                "SELECT id FROM runs WHERE session_id = ? AND status = ?",
                (session_id, agent_pb2.RUN_STATUS_RUNNING),
            ).fetchone()
        )
        return row[0] if row else ""

    async def renew_leases(self, owner: str, lease_until_ns: int) -> dict[str, str]:
        def renew() -> dict[str, str]:
            placeholders = ",".join("?" for _ in _LIVE_RUN_STATES)
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    f"UPDATE runs SET lease_ns = ? WHERE owner = ? AND status IN ({placeholders})",
                    (lease_until_ns, owner, *_LIVE_RUN_STATES),
                )
                rows = db.execute(
                    f"SELECT id, cancel_reason FROM runs WHERE owner = ? AND status IN ({placeholders})",
                    (owner, *_LIVE_RUN_STATES),
                ).fetchall()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return {row[0]: row[1] for row in rows}

        return await self._call(renew)

    async def request_cancel(self, run_id: str, reason: str) -> bool:
        def request() -> bool:
            placeholders = ",".join("?" for _ in _LIVE_RUN_STATES)
            return (
                self._db.execute(
                    f"UPDATE runs SET cancel_reason = ? WHERE id = ? AND status IN ({placeholders})",
                    (reason or "cancelled", run_id, *_LIVE_RUN_STATES),
                ).rowcount
                > 0
            )

        return await self._call(request)

    def _interrupt_where(
        self, where: str, args: tuple[Any, ...], end_time_ns: int, reason: str, all_streaming: bool
    ) -> list[str]:
        """On the database thread: end the live runs matching `where` INTERRUPTED."""
        db = self._db
        changed: list[str] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            placeholders = ",".join("?" for _ in _LIVE_RUN_STATES)
            rows = db.execute(
                f"SELECT id, session_id, data FROM runs WHERE status IN ({placeholders}) AND {where}",
                (*_LIVE_RUN_STATES, *args),
            ).fetchall()
            for run_id, _session, data in rows:
                last = (
                    db.execute("SELECT MAX(idx) FROM events WHERE run_id = ?", (run_id,)).fetchone()[0] or 0
                )
                run = interrupted(data, end_time_ns, reason, last + 1)
                db.execute(
                    "UPDATE runs SET status = ?, data = ? WHERE id = ?",
                    (run.status, run.SerializeToString(), run_id),
                )
                event = final_event(run_id, last + 1, end_time_ns, reason)
                db.execute(
                    "INSERT INTO events (run_id, idx, data) VALUES (?, ?, ?)",
                    (run_id, event.index, event.SerializeToString()),
                )
                changed.append(run_id)
            streaming = (
                db.execute(
                    "SELECT seq, data FROM messages WHERE status = ?", (agent_pb2.MESSAGE_STATUS_STREAMING,)
                ).fetchall()
                if all_streaming
                else []
            )
            for seq, data in streaming:
                message = agent_pb2.Message.FromString(data)
                message.status = agent_pb2.MESSAGE_STATUS_INTERRUPTED
                db.execute(
                    "UPDATE messages SET status = ?, data = ? WHERE seq = ?",
                    (message.status, message.SerializeToString(), seq),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return changed

    async def interrupt_expired(self, now_ns: int, reason: str) -> list[str]:
        return await self._call(
            self._interrupt_where,
            "status = ? AND lease_ns < ?",
            (agent_pb2.RUN_STATUS_QUEUED, now_ns),
            now_ns,
            reason,
            False,
        )

    async def claim_expired(
        self, now_ns: int, owner: str, lease_until_ns: int, limit: int
    ) -> list[agent_pb2.Run]:
        def claim() -> list[agent_pb2.Run]:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT id, data FROM runs WHERE status = ? AND lease_ns < ? ORDER BY lease_ns LIMIT ?",
                    (agent_pb2.RUN_STATUS_RUNNING, now_ns, limit),
                ).fetchall()
                claimed = []
                for run_id, data in rows:
                    run = taken_over(data)
                    run.last_event_index = (
                        db.execute("SELECT MAX(idx) FROM events WHERE run_id = ?", (run_id,)).fetchone()[0]
                        or 0
                    )
                    db.execute(
                        "UPDATE runs SET owner = ?, lease_ns = ?, data = ? WHERE id = ?",
                        (owner, lease_until_ns, run.SerializeToString(), run_id),
                    )
                    claimed.append(run)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return claimed

        return await self._call(claim)

    async def get_run(self, run_id: str) -> agent_pb2.Run | None:
        def get() -> agent_pb2.Run | None:
            row = self._db.execute("SELECT data FROM runs WHERE id = ?", (run_id,)).fetchone()
            return agent_pb2.Run.FromString(row[0]) if row else None

        return await self._call(get)

    async def list_runs(
        self, session_id: str, page_size: int, page_token: str
    ) -> tuple[list[agent_pb2.Run], str]:
        cursor = decode_page_token(page_token) if page_token else None

        def list_() -> tuple[list[agent_pb2.Run], str]:
            if cursor is None:
                rows = self._db.execute(
                    "SELECT id, create_ns, data FROM runs WHERE session_id = ? "
                    "ORDER BY create_ns DESC, id DESC LIMIT ?",
                    (session_id, page_size + 1),
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT id, create_ns, data FROM runs WHERE session_id = ? AND (create_ns, id) < (?, ?) "
                    "ORDER BY create_ns DESC, id DESC LIMIT ?",
                    (session_id, cursor[0], cursor[1], page_size + 1),
                ).fetchall()
            page = rows[:page_size]
            token = encode_page_token(page[-1][1], page[-1][0]) if len(rows) > page_size else ""
            return [agent_pb2.Run.FromString(data) for _id, _ns, data in page], token

        return await self._call(list_)

    async def interrupt_unfinished(self, end_time_ns: int) -> list[str]:
        return await self._call(self._interrupt_where, "1 = 1", (), end_time_ns, RESTART_REASON, True)

    # -- workspace owners ------------------------------------------------------------------

    async def put_workspace_owner(self, workspace_id: str, instance_id: str, address: str) -> None:
        await self._call(
            lambda: self._db.execute(
                "INSERT INTO workspace_owners (workspace_id, instance_id, address, update_ns) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id) DO UPDATE SET "
                "instance_id = excluded.instance_id, address = excluded.address, update_ns = excluded.update_ns",
                (workspace_id, instance_id, address, time.time_ns()),
            )
        )

    async def get_workspace_owner(self, workspace_id: str) -> tuple[str, str] | None:
        row = await self._call(
            lambda: self._db.execute(
                "SELECT instance_id, address FROM workspace_owners WHERE workspace_id = ?", (workspace_id,)
            ).fetchone()
        )
        return (row[0], row[1]) if row else None

    async def delete_workspace_owner(self, workspace_id: str) -> None:
        await self._call(
            lambda: self._db.execute("DELETE FROM workspace_owners WHERE workspace_id = ?", (workspace_id,))
        )

    # -- events --------------------------------------------------------------------------

    async def append_events(self, run_id: str, events: Sequence[agent_pb2.RunEvent], owner: str = "") -> bool:
        rows = [(run_id, event.index, event.SerializeToString()) for event in events]

        def append() -> bool:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if owner:
                    row = db.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
                    if row is not None and row[0] != owner:
                        db.execute("ROLLBACK")
                        return False
                db.executemany("INSERT INTO events (run_id, idx, data) VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return True

        return await self._call(append)

    async def list_events(self, run_id: str, after_index: int, limit: int) -> list[agent_pb2.RunEvent]:
        rows = await self._call(
            lambda: self._db.execute(
                "SELECT data FROM events WHERE run_id = ? AND idx > ? ORDER BY idx LIMIT ?",
                (run_id, after_index, limit),
            ).fetchall()
        )
        return [agent_pb2.RunEvent.FromString(row[0]) for row in rows]

    async def delete_events(self, run_id: str) -> None:
        await self._call(lambda: self._db.execute("DELETE FROM events WHERE run_id = ?", (run_id,)))

    # -- between replicas: none besides this process ---------------------------------------

    @property
    def shared(self) -> bool:
        return False

    async def watch(self, on_notice: Callable[[str, str], None]) -> None:
        return None

    async def put_approval_request(self, run_id: str, tool_call_id: str, data: bytes) -> None:
        await self._call(
            lambda: self._db.execute(
                "INSERT INTO approval_requests (run_id, tool_call_id, data) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, tool_call_id) DO UPDATE SET data = excluded.data, outcome = ''",
                (run_id, tool_call_id, data),
            )
        )

    async def approval_requests(self, run_id: str) -> list[tuple[str, bytes]]:
        rows = await self._call(
            lambda: self._db.execute(
                "SELECT tool_call_id, data FROM approval_requests WHERE run_id = ? AND outcome = ''",
                (run_id,),
            ).fetchall()
        )
        return [(row[0], row[1]) for row in rows]

    async def finish_approval_request(self, run_id: str, tool_call_id: str, outcome: str) -> None:
        args: tuple[str, ...]
        if outcome:
            sql, args = (
                "UPDATE approval_requests SET outcome = ? WHERE run_id = ? AND tool_call_id = ?",
                (outcome, run_id, tool_call_id),
            )
        else:
            sql, args = (
                "DELETE FROM approval_requests WHERE run_id = ? AND tool_call_id = ?",
                (run_id, tool_call_id),
            )
        await self._call(lambda: self._db.execute(sql, args))

    async def approval_request_outcome(self, run_id: str, tool_call_id: str) -> str | None:
        def outcome() -> str | None:
            row = self._db.execute(
                "SELECT outcome FROM approval_requests WHERE run_id = ? AND tool_call_id = ?",
                (run_id, tool_call_id),
            ).fetchone()
            if row is None:
                return None
            if row[0]:
                self._db.execute(
                    "DELETE FROM approval_requests WHERE run_id = ? AND tool_call_id = ?",
                    (run_id, tool_call_id),
                )
            result: str | None = row[0]
            return result

        return await self._call(outcome)

    # -- copying ---------------------------------------------------------------------------

    async def export_page(
        self, table: Table, after: tuple[object, ...] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        columns, key = ", ".join(table.columns), ", ".join(table.key)
        where = f"WHERE ({key}) > ({', '.join('?' for _ in table.key)}) " if after is not None else ""
        sql = f"SELECT {columns} FROM {table.name} {where}ORDER BY {key} LIMIT ?"
        args = (*(after or ()), limit)
        return await self._call(lambda: [tuple(row) for row in self._db.execute(sql, args).fetchall()])

    async def import_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        sql = (
            f"INSERT INTO {table.name} ({', '.join(table.columns)}) "
            f"VALUES ({', '.join('?' for _ in table.columns)})"
        )

        def insert() -> None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._call(insert)

    async def count_rows(self, table: Table) -> int:
        return await self._call(lambda: self._db.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()[0])

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._call(close)
        self._pool.shutdown(wait=True)
