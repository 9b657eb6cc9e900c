"""The Store in PostgreSQL, for several agent replicas sharing one database.

psycopg 3's async connections from a bounded psycopg_pool pool; every statement awaits on the
event loop (no threads). The schema is agent_service/schema.py, rendered for PostgreSQL; its
version lives in `firebox_schema_version`, and migrations run in one transaction under a
transaction-scoped advisory lock, so replicas starting together apply each step exactly once
(the others wait on the lock, then find nothing left to do). DDL is transactional here, so a
failed step leaves the database as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from agent_service.schema import SCHEMA_VERSION, Table, migration
from agent_service.store import (
    _LIVE_RUN_STATES,
    CONTROL_CHANNEL,
    EVENTS_CHANNEL,
    RESTART_REASON,
    Store,
    add_to_total,
    decode_page_token,
    encode_page_token,
    final_event,
    interrupted,
    redact_url,
    run_row,
    taken_over,
)
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import Aborted, Unavailable
from firebox.common.logging import get_logger

log = get_logger("firebox.agent.pg_store")

# pg_advisory_xact_lock key of schema migrations: any fixed 64-bit number other tools won't use.
MIGRATION_LOCK_KEY = 0x46697265626F78  # "Firebox"
# Connections one replica holds at most; a call waits for a free one up to POOL_TIMEOUT seconds.
POOL_MAX_SIZE = 10
POOL_TIMEOUT = 30.0
# The listening connection, when lost, is opened again after this long.
LISTEN_RETRY_SECONDS = 1.0


class PostgresStore(Store):
    """The Store in a PostgreSQL database reached by a libpq URL."""

    def __init__(self, url: str, pool: AsyncConnectionPool) -> None:
        self.url = url
        self._pool = pool
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, max_size: int = POOL_MAX_SIZE) -> PostgresStore:
        pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=POOL_TIMEOUT,
            kwargs={"autocommit": True},
            open=False,
            name="firebox-agent",
        )
        try:
            await pool.open(wait=True, timeout=POOL_TIMEOUT)
        except psycopg.OperationalError as exc:
            await pool.close()
            raise Unavailable(f"PostgreSQL at {redact_url(url)} is not reachable: {exc}") from exc
        except BaseException:
            await pool.close()
            raise
        store = cls(url, pool)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            await conn.execute("CREATE TABLE IF NOT EXISTS firebox_schema_version (version INTEGER NOT NULL)")
            row = await (await conn.execute("SELECT version FROM firebox_schema_version")).fetchone()
            version = row[0] if row else 0
            if row is None:
                await conn.execute("INSERT INTO firebox_schema_version (version) VALUES (0)")
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database has schema version {version}, newer than this agent's {SCHEMA_VERSION}"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in migration(target, "postgresql"):
                    await conn.execute(statement)
            await conn.execute("UPDATE firebox_schema_version SET version = %s", (SCHEMA_VERSION,))

    async def schema_version(self) -> int:
        row = await self._one("SELECT version FROM firebox_schema_version")
        return int(row[0]) if row else 0

    async def _one(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        async with self._pool.connection() as conn:
            return await (await conn.execute(sql, args)).fetchone()

    async def _all(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        async with self._pool.connection() as conn:
            return await (await conn.execute(sql, args)).fetchall()

    async def _run(self, sql: str, args: Sequence[object] = ()) -> int:
        async with self._pool.connection() as conn:
            return (await conn.execute(sql, args)).rowcount

    # -- sessions --------------------------------------------------------------------------

    _SESSION_COLUMNS = (
        "s.id, s.create_ns, s.data, (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id)"
    )

    @staticmethod
    def _session(row: tuple[Any, ...]) -> agent_pb2.Session:
        session = agent_pb2.Session.FromString(row[2])
        session.message_count = row[3]
        return session

    async def create_session(self, session: agent_pb2.Session) -> None:
        await self._run(
            "INSERT INTO sessions (id, create_ns, data) VALUES (%s, %s, %s)",
            (session.id, session.create_time.ToNanoseconds(), session.SerializeToString()),
        )

    async def get_session(self, session_id: str) -> agent_pb2.Session | None:
        row = await self._one(
            f"SELECT {self._SESSION_COLUMNS} FROM sessions s WHERE s.id = %s", (session_id,)
        )
        return self._session(row) if row else None

    async def update_session(self, session: agent_pb2.Session) -> None:
        stored = agent_pb2.Session()
        stored.CopyFrom(session)
        stored.ClearField("active_run_id")
        stored.message_count = 0
        await self._run(
            "UPDATE sessions SET data = %s WHERE id = %s", (stored.SerializeToString(), session.id)
        )

    async def add_usage(
        self, session_id: str, usage: agent_pb2.Usage, context_tokens: int | None = None
    ) -> agent_pb2.Usage:
        async with self._pool.connection() as conn, conn.transaction():
            # FOR UPDATE: replicas adding usage to one session at once queue here instead of
            # each reading the old total and one of the additions being lost.
            row = await (
                await conn.execute("SELECT data FROM sessions WHERE id = %s FOR UPDATE", (session_id,))
            ).fetchone()
            if row is None:
                return agent_pb2.Usage()
            session = agent_pb2.Session.FromString(row[0])
            result = add_to_total(session, usage, context_tokens)
            await conn.execute(
                "UPDATE sessions SET data = %s WHERE id = %s", (session.SerializeToString(), session_id)
            )
        return result

    async def list_sessions(self, page_size: int, page_token: str) -> tuple[list[agent_pb2.Session], str]:
        cursor = decode_page_token(page_token) if page_token else None
        if cursor is None:
            rows = await self._all(
                f"SELECT {self._SESSION_COLUMNS} FROM sessions s ORDER BY s.create_ns DESC, s.id DESC LIMIT %s",
                (page_size + 1,),
            )
        else:
            rows = await self._all(
                f"SELECT {self._SESSION_COLUMNS} FROM sessions s WHERE (s.create_ns, s.id) < (%s, %s) "
                "ORDER BY s.create_ns DESC, s.id DESC LIMIT %s",
                (cursor[0], cursor[1], page_size + 1),
            )
        page = rows[:page_size]
        token = encode_page_token(page[-1][1], page[-1][0]) if len(rows) > page_size else ""
        return [self._session(row) for row in page], token

    async def delete_session(self, session_id: str) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE session_id = %s)",
                (session_id,),
            )
            return (await conn.execute("DELETE FROM sessions WHERE id = %s", (session_id,))).rowcount > 0

    # -- messages --------------------------------------------------------------------------

    async def put_message(self, session_id: str, message: agent_pb2.Message) -> None:
        # Upsert keeps the row (and so its place in the conversation) when a message is updated.
        await self._run(
            "INSERT INTO messages (id, session_id, status, data) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data",
            (message.id, session_id, message.status, message.SerializeToString()),
        )

    async def list_messages(self, session_id: str) -> list[agent_pb2.Message]:
        rows = await self._all("SELECT data FROM messages WHERE session_id = %s ORDER BY seq", (session_id,))
        return [agent_pb2.Message.FromString(row[0]) for row in rows]

    async def get_message(self, session_id: str, message_id: str) -> agent_pb2.Message | None:
        row = await self._one(
            "SELECT data FROM messages WHERE session_id = %s AND id = %s", (session_id, message_id)
        )
        return agent_pb2.Message.FromString(row[0]) if row else None

    async def find_message(self, message_id: str) -> tuple[str, agent_pb2.Message] | None:
        row = await self._one("SELECT session_id, data FROM messages WHERE id = %s", (message_id,))
        return (row[0], agent_pb2.Message.FromString(row[1])) if row else None

    async def clear_conversation(self, session_id: str, update_time_ns: int) -> tuple[int, int] | None:
        async with self._pool.connection() as conn, conn.transaction():
            # FOR UPDATE: a claim of a new run for this session (claim_run) waits for the clear.
            row = await (
                await conn.execute("SELECT data FROM sessions WHERE id = %s FOR UPDATE", (session_id,))
            ).fetchone()
            if row is None:
                return None
            running = await (
                await conn.execute(
                    "SELECT id FROM runs WHERE session_id = %s AND status = %s LIMIT 1",
                    (session_id, agent_pb2.RUN_STATUS_RUNNING),
                )
            ).fetchone()
            if running is not None:
                raise Aborted(
                    f"session {session_id} has a running run {running[0]}; cancel it and clear again"
                )
            messages = (
                await conn.execute("DELETE FROM messages WHERE session_id = %s", (session_id,))
            ).rowcount
            # Queued runs keep their rows: they start after the clear, in the cleared session.
            ended = "SELECT id FROM runs WHERE session_id = %s AND status != %s"
            args = (session_id, agent_pb2.RUN_STATUS_QUEUED)
            await conn.execute(f"DELETE FROM events WHERE run_id IN ({ended})", args)
            runs = (
                await conn.execute("DELETE FROM runs WHERE session_id = %s AND status != %s", args)
            ).rowcount
            session = agent_pb2.Session.FromString(row[0])
            session.context_tokens = 0
            session.update_time.FromNanoseconds(update_time_ns)
            await conn.execute(
                "UPDATE sessions SET data = %s WHERE id = %s", (session.SerializeToString(), session_id)
            )
        return messages, runs

    async def rewind(self, session_id: str, message: agent_pb2.Message) -> int:
        async with self._pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT seq FROM messages WHERE session_id = %s AND id = %s FOR UPDATE",
                    (session_id, message.id),
                )
            ).fetchone()
            if row is None:
                return 0
            await conn.execute(
                "UPDATE messages SET status = %s, data = %s WHERE seq = %s",
                (message.status, message.SerializeToString(), row[0]),
            )
            return (
                await conn.execute(
                    "DELETE FROM messages WHERE session_id = %s AND seq > %s", (session_id, row[0])
                )
            ).rowcount

    # -- runs ------------------------------------------------------------------------------

    async def put_run(
        self, run: agent_pb2.Run, owner: str = "", lease_until_ns: int = 0, only_owner: str = ""
    ) -> None:
        await self._run(
            "INSERT INTO runs (id, session_id, create_ns, status, data, owner, lease_ns) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data "
            "WHERE %s = '' OR runs.owner = %s",
            (*run_row(run, owner, lease_until_ns), only_owner, only_owner),
        )

    async def claim_run(self, run: agent_pb2.Run, owner: str, lease_until_ns: int) -> str:
        args = run_row(run, owner, lease_until_ns)
        async with self._pool.connection() as conn:
            for _attempt in range(5):
                try:
                    # The partial unique index (one RUNNING run per session) decides between
                    # replicas claiming at once: exactly one insert or update succeeds.
                    await conn.execute(
                        "INSERT INTO runs (id, session_id, create_ns, status, data, owner, lease_ns) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                        "status = excluded.status, data = excluded.data, owner = excluded.owner, "
                        "lease_ns = excluded.lease_ns",
                        args,
                    )
                    return ""
                except psycopg.errors.UniqueViolation:
                    row = await (
                        await conn.execute(
                            "SELECT id FROM runs WHERE session_id = %s AND status = %s AND id != %s",
                            (run.session_id, agent_pb2.RUN_STATUS_RUNNING, run.id),
                        )
                    ).fetchone()
                    if row is not None:
                        return str(row[0])
                    # It ended between the two statements: try again.
            raise Unavailable(f"session {run.session_id} changed too often to start a run; try again")

    async def running_run_id(self, session_id: str) -> str:
        row = await self._one(
            "SELECT id FROM runs WHERE session_id = %s AND status = %s",
            (session_id, agent_pb2.RUN_STATUS_RUNNING),
        )
        return str(row[0]) if row else ""

    async def renew_leases(self, owner: str, lease_until_ns: int) -> dict[str, str]:
        async with self._pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "UPDATE runs SET lease_ns = %s WHERE owner = %s AND status = ANY(%s) "
                    "RETURNING id, cancel_reason",
                    (lease_until_ns, owner, list(_LIVE_RUN_STATES)),
                )
            ).fetchall()
        return {row[0]: row[1] for row in rows}

    async def request_cancel(self, run_id: str, reason: str) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            changed = (
                await conn.execute(
                    "UPDATE runs SET cancel_reason = %s WHERE id = %s AND status = ANY(%s)",
                    (reason or "cancelled", run_id, list(_LIVE_RUN_STATES)),
                )
            ).rowcount
            if changed:
                await conn.execute("SELECT pg_notify(%s, %s)", (CONTROL_CHANNEL, run_id))
        return changed > 0

    async def _interrupt_where(
        self, where: str, args: tuple[Any, ...], end_time_ns: int, reason: str, all_streaming: bool
    ) -> list[str]:
        changed: list[str] = []
        async with self._pool.connection() as conn, conn.transaction():
            # SKIP LOCKED: a run another replica is taking over right now is its to take.
            rows = await (
                await conn.execute(
                    f"SELECT id, session_id, data FROM runs WHERE status = ANY(%s) AND {where} "
                    "FOR UPDATE SKIP LOCKED",
                    (list(_LIVE_RUN_STATES), *args),
                )
            ).fetchall()
            for run_id, _session, data in rows:
                last = await (
                    await conn.execute(
                        "SELECT COALESCE(MAX(idx), 0) FROM events WHERE run_id = %s", (run_id,)
                    )
                ).fetchone()
                final_index = (last[0] if last else 0) + 1
                run = interrupted(data, end_time_ns, reason, final_index)
                await conn.execute(
                    "UPDATE runs SET status = %s, data = %s WHERE id = %s",
                    (run.status, run.SerializeToString(), run_id),
                )
                event = final_event(run_id, final_index, end_time_ns, reason)
                await conn.execute(
                    "INSERT INTO events (run_id, idx, data) VALUES (%s, %s, %s)",
                    (run_id, event.index, event.SerializeToString()),
                )
                await conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, run_id))
                changed.append(run_id)
            streaming = (
                await (
                    await conn.execute(
                        "SELECT seq, data FROM messages WHERE status = %s FOR UPDATE",
                        (agent_pb2.MESSAGE_STATUS_STREAMING,),
                    )
                ).fetchall()
                if all_streaming
                else []
            )
            for seq, data in streaming:
                message = agent_pb2.Message.FromString(data)
                message.status = agent_pb2.MESSAGE_STATUS_INTERRUPTED
                await conn.execute(
                    "UPDATE messages SET status = %s, data = %s WHERE seq = %s",
                    (message.status, message.SerializeToString(), seq),
                )
        return changed

    async def interrupt_expired(self, now_ns: int, reason: str) -> list[str]:
        return await self._interrupt_where(
            "status = %s AND lease_ns < %s", (agent_pb2.RUN_STATUS_QUEUED, now_ns), now_ns, reason, False
        )

    async def claim_expired(
        self, now_ns: int, owner: str, lease_until_ns: int, limit: int
    ) -> list[agent_pb2.Run]:
        claimed: list[agent_pb2.Run] = []
        async with self._pool.connection() as conn, conn.transaction():
            # SKIP LOCKED: a run another replica is taking over (or whose owner is writing its
            # events right now) is left for this time.
            rows = await (
                await conn.execute(
                    "SELECT id, data FROM runs WHERE status = %s AND lease_ns < %s "
                    "ORDER BY lease_ns LIMIT %s FOR UPDATE SKIP LOCKED",
                    (agent_pb2.RUN_STATUS_RUNNING, now_ns, limit),
                )
            ).fetchall()
            for run_id, data in rows:
                run = taken_over(data)
                last = await (
                    await conn.execute(
                        "SELECT COALESCE(MAX(idx), 0) FROM events WHERE run_id = %s", (run_id,)
                    )
                ).fetchone()
                run.last_event_index = last[0] if last else 0
                await conn.execute(
                    "UPDATE runs SET owner = %s, lease_ns = %s, data = %s WHERE id = %s",
                    (owner, lease_until_ns, run.SerializeToString(), run_id),
                )
                claimed.append(run)
        return claimed

    async def get_run(self, run_id: str) -> agent_pb2.Run | None:
        row = await self._one("SELECT data FROM runs WHERE id = %s", (run_id,))
        return agent_pb2.Run.FromString(row[0]) if row else None

    async def list_runs(
        self, session_id: str, page_size: int, page_token: str
    ) -> tuple[list[agent_pb2.Run], str]:
        cursor = decode_page_token(page_token) if page_token else None
        if cursor is None:
            rows = await self._all(
                "SELECT id, create_ns, data FROM runs WHERE session_id = %s "
                "ORDER BY create_ns DESC, id DESC LIMIT %s",
                (session_id, page_size + 1),
            )
        else:
            rows = await self._all(
                "SELECT id, create_ns, data FROM runs WHERE session_id = %s AND (create_ns, id) < (%s, %s) "
                "ORDER BY create_ns DESC, id DESC LIMIT %s",
                (session_id, cursor[0], cursor[1], page_size + 1),
            )
        page = rows[:page_size]
        token = encode_page_token(page[-1][1], page[-1][0]) if len(rows) > page_size else ""
        return [agent_pb2.Run.FromString(row[2]) for row in page], token

    async def interrupt_unfinished(self, end_time_ns: int) -> list[str]:
        return await self._interrupt_where("TRUE", (), end_time_ns, RESTART_REASON, True)

    # -- workspace owners ------------------------------------------------------------------

    async def put_workspace_owner(self, workspace_id: str, instance_id: str, address: str) -> None:
        await self._run(
            "INSERT INTO workspace_owners (workspace_id, instance_id, address, update_ns) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (workspace_id) DO UPDATE SET "
            "instance_id = excluded.instance_id, address = excluded.address, update_ns = excluded.update_ns",
            (workspace_id, instance_id, address, time.time_ns()),
        )

    async def get_workspace_owner(self, workspace_id: str) -> tuple[str, str] | None:
        row = await self._one(
            "SELECT instance_id, address FROM workspace_owners WHERE workspace_id = %s", (workspace_id,)
        )
        return (row[0], row[1]) if row else None

    async def delete_workspace_owner(self, workspace_id: str) -> None:
        await self._run("DELETE FROM workspace_owners WHERE workspace_id = %s", (workspace_id,))

    # -- events ----------------------------------------------------------------------------

    async def append_events(self, run_id: str, events: Sequence[agent_pb2.RunEvent], owner: str = "") -> bool:
        if not events:
            return True
        async with self._pool.connection() as conn, conn.transaction():
            if owner:
                # FOR SHARE: a takeover (FOR UPDATE) waits for these rows, or these wait for it
                # and then see the new owner; either way the taker reads every row written.
                row = await (
                    await conn.execute("SELECT owner FROM runs WHERE id = %s FOR SHARE", (run_id,))
                ).fetchone()
                if row is not None and row[0] != owner:
                    return False
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO events (run_id, idx, data) VALUES (%s, %s, %s)",
                    [(run_id, event.index, event.SerializeToString()) for event in events],
                )
            # Delivered at commit, so a follower woken by it finds the rows.
            await conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, run_id))
        return True

    async def list_events(self, run_id: str, after_index: int, limit: int) -> list[agent_pb2.RunEvent]:
        rows = await self._all(
            "SELECT data FROM events WHERE run_id = %s AND idx > %s ORDER BY idx LIMIT %s",
            (run_id, after_index, limit),
        )
        return [agent_pb2.RunEvent.FromString(row[0]) for row in rows]

    async def delete_events(self, run_id: str) -> None:
        await self._run("DELETE FROM events WHERE run_id = %s", (run_id,))

    # -- between replicas ------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        return True

    async def watch(self, on_notice: Callable[[str, str], None]) -> None:
        if self._listener is None:
            ready = asyncio.get_running_loop().create_future()
            self._listener = asyncio.create_task(self._listen(on_notice, ready), name="pg listen")
            await ready

    async def _listen(self, on_notice: Callable[[str, str], None], ready: asyncio.Future[None]) -> None:
        """LISTEN on a connection of its own (a pooled one would be handed to others)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    await conn.execute(f"LISTEN {CONTROL_CHANNEL}")
                    if not ready.done():
                        ready.set_result(None)
                    async for notice in conn.notifies():
                        on_notice(notice.channel, notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Notices sent meanwhile are lost; followers and owners also poll, more slowly.
                log.warning("pg_listen_lost", error=repr(exc))
                if not ready.done():
                    ready.set_result(None)
                await asyncio.sleep(LISTEN_RETRY_SECONDS)

    async def put_approval_request(self, run_id: str, tool_call_id: str, data: bytes) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO approval_requests (run_id, tool_call_id, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (run_id, tool_call_id) DO UPDATE SET data = excluded.data, outcome = ''",
                (run_id, tool_call_id, data),
            )
            await conn.execute("SELECT pg_notify(%s, %s)", (CONTROL_CHANNEL, run_id))

    async def approval_requests(self, run_id: str) -> list[tuple[str, bytes]]:
        rows = await self._all(
            "SELECT tool_call_id, data FROM approval_requests WHERE run_id = %s AND outcome = ''", (run_id,)
        )
        return [(row[0], row[1]) for row in rows]

    async def finish_approval_request(self, run_id: str, tool_call_id: str, outcome: str) -> None:
        if outcome:
            await self._run(
                "UPDATE approval_requests SET outcome = %s WHERE run_id = %s AND tool_call_id = %s",
                (outcome, run_id, tool_call_id),
            )
        else:
            await self._run(
                "DELETE FROM approval_requests WHERE run_id = %s AND tool_call_id = %s",
                (run_id, tool_call_id),
            )

    async def approval_request_outcome(self, run_id: str, tool_call_id: str) -> str | None:
        row = await self._one(
            "SELECT outcome FROM approval_requests WHERE run_id = %s AND tool_call_id = %s",
            (run_id, tool_call_id),
        )
        if row is None:
            return None
        if row[0]:
            await self.finish_approval_request(run_id, tool_call_id, "")
        return str(row[0])

    # -- copying ---------------------------------------------------------------------------

    async def export_page(
        self, table: Table, after: tuple[object, ...] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        columns, key = ", ".join(table.columns), ", ".join(table.key)
        where = f"WHERE ({key}) > ({', '.join('%s' for _ in table.key)}) " if after is not None else ""
        rows = await self._all(
            f"SELECT {columns} FROM {table.name} {where}ORDER BY {key} LIMIT %s", (*(after or ()), limit)
        )
        return [tuple(row) for row in rows]

    async def import_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        sql = (
            f"INSERT INTO {table.name} ({', '.join(table.columns)}) "
            f"VALUES ({', '.join('%s' for _ in table.columns)})"
        )
        async with self._pool.connection() as conn, conn.transaction():
            async with conn.cursor() as cursor:
                await cursor.executemany(sql, rows)
            if "seq" in table.columns:
                # Rows came with their seq; the sequence must continue after the highest.
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'seq'), "
                    f"(SELECT MAX(seq) FROM {table.name}))"
                )

    async def count_rows(self, table: Table) -> int:
        row = await self._one(f"SELECT COUNT(*) FROM {table.name}")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._pool.close()
