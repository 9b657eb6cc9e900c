"""Opening the store a database URL names: the one module that knows every store kind (so
neither store module imports the other)."""

from __future__ import annotations

from pathlib import Path

from agent_service.store import SqliteStore, Store
from firebox.common.errors import InvalidArgument


async def open_store(url: str) -> Store:
    """The store a database URL names: `sqlite:///PATH` (PATH as written after `sqlite://`, so
    `sqlite:///tmp/a.db` is /tmp/a.db) or `postgresql://…` (libpq's URL form)."""
    if url.startswith(("postgresql://", "postgres://")):
        # Imported only here: an agent on SQLite never loads psycopg and libpq.
        from agent_service.pg_store import PostgresStore

        return await PostgresStore.open(url)
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if not path:
            raise InvalidArgument("database_url", "sqlite:// needs a path, e.g. sqlite:///var/lib/agent.db")
        return await SqliteStore.open(Path(path))
    raise InvalidArgument("database_url", "expected sqlite:///PATH or postgresql://…")
