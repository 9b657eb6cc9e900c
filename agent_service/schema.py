"""The agent's database schema: one definition, versioned migrations, rendered for SQLite or PostgreSQL.

Each migration is written once with a few type placeholders that differ between the two
databases; everything else (tables, keys, indexes, ON CONFLICT upserts, row-value comparisons)
is SQL both accept. A migration only ever adds: a released version is never edited, so a file
or database created by an older agent is taken forward in place, step by step.

How each backend records its version and keeps concurrent starts safe is its own business
(SQLite: `PRAGMA user_version` under `BEGIN IMMEDIATE`; PostgreSQL: a version table under a
transaction-scoped advisory lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dialect = Literal["sqlite", "postgresql"]

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {
        "blob": "BLOB",
        "bigint": "INTEGER",
        "serial_pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
    },
    "postgresql": {
        "blob": "BYTEA",
        "bigint": "BIGINT",
        # Plain BIGSERIAL (not GENERATED ALWAYS) so `firebox-agent migrate` can copy seq values
        # and keep the conversation order exactly.
        "serial_pk": "BIGSERIAL PRIMARY KEY",
    },
}

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        create_ns {bigint} NOT NULL,
        data {blob} NOT NULL
    );
    CREATE INDEX sessions_by_time ON sessions (create_ns DESC, id DESC);
    CREATE TABLE messages (
        seq {serial_pk},
        id TEXT NOT NULL UNIQUE,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        status INTEGER NOT NULL,
        data {blob} NOT NULL
    );
    CREATE INDEX messages_by_session ON messages (session_id, seq);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        create_ns {bigint} NOT NULL,
        status INTEGER NOT NULL,
        data {blob} NOT NULL
    );
    CREATE INDEX runs_by_session ON runs (session_id, create_ns DESC, id DESC);
    """,
    # Which executor replica owns each workspace the agent has routed (by instance id, which
    # survives a replica's restart; the address is where it was last seen).
    2: """
    CREATE TABLE workspace_owners (
        workspace_id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        address TEXT NOT NULL,
        update_ns {bigint} NOT NULL
    );
    """,
    # Each run's events, by index: what StreamRun replays after a run has left memory, and what
    # `firebox-agent migrate` copies. No foreign key to runs: a run's first events may be written
    # before its row; deleting a session deletes its runs' events explicitly.
    3: """
    CREATE TABLE events (
        run_id TEXT NOT NULL,
        idx {bigint} NOT NULL,
        data {blob} NOT NULL,
        PRIMARY KEY (run_id, idx)
    );
    """,
    # Several replicas: each live run has an owner replica holding a lease it renews; another
    # replica takes over runs whose lease has run out. A cancel asked of another replica is
    # recorded on the run; an approval decision sent to another replica waits in
    # approval_requests until the owner takes it. At most one RUNNING run per session, enforced
    # by the database whichever replica claims it.
    4: """
    ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN lease_ns {bigint} NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
    CREATE UNIQUE INDEX runs_one_running_per_session ON runs (session_id) WHERE status = 2;
    CREATE INDEX runs_by_status ON runs (status, lease_ns);
    CREATE TABLE approval_requests (
        run_id TEXT NOT NULL,
        tool_call_id TEXT NOT NULL,
        data {blob} NOT NULL,
        outcome TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, tool_call_id)
    );
    """,
}

SCHEMA_VERSION = max(_MIGRATIONS)


def migration(version: int, dialect: Dialect) -> list[str]:
    """The statements that take a database from `version - 1` to `version`."""
    text = _MIGRATIONS[version].format(**_TYPES[dialect])
    return [statement.strip() for statement in text.split(";") if statement.strip()]


@dataclass(frozen=True)
class Table:
    """A table as `firebox-agent migrate` copies it: its columns, and the key it pages by."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


# In an order that satisfies the foreign keys.
TABLES: tuple[Table, ...] = (
    Table("sessions", ("id", "create_ns", "data"), ("id",)),
    Table("messages", ("seq", "id", "session_id", "status", "data"), ("seq",)),
    Table(
        "runs",
        ("id", "session_id", "create_ns", "status", "data", "owner", "lease_ns", "cancel_reason"),
        ("id",),
    ),
    Table("events", ("run_id", "idx", "data"), ("run_id", "idx")),
    Table("workspace_owners", ("workspace_id", "instance_id", "address", "update_ns"), ("workspace_id",)),
    Table("approval_requests", ("run_id", "tool_call_id", "data", "outcome"), ("run_id", "tool_call_id")),
)
