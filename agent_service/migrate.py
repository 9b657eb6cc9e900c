"""`firebox-agent migrate --from URL --to URL`: copy every table of one store into another.

Typically an embedded SQLite file into the PostgreSQL that several replicas will share. Rows go
across as stored (serialized protos and their keys, message order included), page by page so
memory stays bounded; the target must be empty, so nothing is merged or overwritten. After the
copy every table's row count is compared, and a difference is an error. Stop the agent that
uses the source first: rows written during the copy may be missed (the counts would say so).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from agent_service.schema import TABLES
from agent_service.store import Store, redact_url
from agent_service.stores import open_store
from firebox.common.errors import FireboxError

# Rows per page read from the source and written to the target in one transaction.
PAGE_ROWS = 500


class MigrationError(Exception):
    pass


async def copy_store(source: Store, target: Store, page_rows: int = PAGE_ROWS) -> dict[str, int]:
    """Copy every table; returns the rows copied per table."""
    for table in TABLES:
        if await target.count_rows(table):
            raise MigrationError(
                f"the target already has rows in {table.name}; migrate into an empty database"
            )
    copied: dict[str, int] = {}
    for table in TABLES:
        after: tuple[object, ...] | None = None
        count = 0
        while True:
            rows = await source.export_page(table, after, page_rows)
            if not rows:
                break
            await target.import_rows(table, rows)
            count += len(rows)
            key_at = [table.columns.index(name) for name in table.key]
            after = tuple(rows[-1][i] for i in key_at)
        copied[table.name] = count
    for table in TABLES:
        have, want = await target.count_rows(table), await source.count_rows(table)
        if have != want:
            raise MigrationError(
                f"{table.name}: the target has {have} rows, the source {want} (was the source in use?)"
            )
    return copied


async def _migrate(source_url: str, target_url: str) -> dict[str, int]:
    source = await open_store(source_url)
    try:
        target = await open_store(target_url)
        try:
            return await copy_store(source, target)
        finally:
            await target.close()
    finally:
        await source.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="firebox-agent migrate",
        description=(
            "Copy sessions, messages, runs, run events and workspace owners from one agent database to "
            "another (empty) one, e.g. sqlite:///var/lib/firebox/agent.db to postgresql://…. Both are "
            "brought to the current schema first. Stop the agent using the source before copying."
        ),
    )
    parser.add_argument("--from", dest="source", required=True, help="sqlite:///PATH or postgresql://…")
    parser.add_argument("--to", dest="target", required=True, help="sqlite:///PATH or postgresql://…")
    args = parser.parse_args(argv)
    if args.source == args.target:
        parser.error("--from and --to name the same database")
    try:
        copied = asyncio.run(_migrate(args.source, args.target))
    except (MigrationError, FireboxError) as exc:
        print(f"firebox-agent migrate: {exc}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{count} {name}" for name, count in copied.items())
    print(f"copied {summary} from {redact_url(args.source)} to {redact_url(args.target)}")
    return 0
