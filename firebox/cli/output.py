"""Terminal output: consoles for stdout and stderr, proto-JSON for scripts, tables and progress."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def to_json(message: Message, *, compact: bool = False) -> str:
    """Proto-JSON as grpcurl prints it (lowerCamelCase names), with every field present so the
    key set is stable for scripts."""
    return json_format.MessageToJson(
        message,
        always_print_fields_with_no_presence=True,
        indent=None if compact else 2,
        sort_keys=False,
    )


def print_json(message: Message | dict[str, Any], *, compact: bool = False) -> None:
    if isinstance(message, Message):
        text = to_json(message, compact=compact)
    else:
        text = json.dumps(message, indent=None if compact else 2)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def proto_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def when(timestamp: Timestamp) -> str:
    """A timestamp for people: local time, to the second; '-' when unset."""
    if not timestamp.seconds and not timestamp.nanos:
        return "-"
    moment = timestamp.ToDatetime(tzinfo=dt.UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def enum_word(name: str, prefix: str) -> str:
    """WORKSPACE_STATUS_RUNNING -> running, END_REASON_TIMED_OUT -> timed out."""
    word = name.removeprefix(prefix).lower().replace("_", " ")
    return "-" if word == "unspecified" else word


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table on a terminal; tab-separated lines with a header when piped, for `cut` and `awk`."""
    if not out.is_terminal:
        sys.stdout.write("\t".join(columns) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(row) + "\n")
        sys.stdout.flush()
        return
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    out.print(grid)


def details(pairs: Sequence[tuple[str, str]]) -> None:
    """Key-value lines for `show` commands."""
    width = max((len(key) for key, _ in pairs), default=0)
    for key, value in pairs:
        out.print(f"[bold]{key.ljust(width)}[/bold]  ", end="")
        out.print(value, markup=False)


@contextlib.contextmanager
def progress(text: str) -> Iterator[None]:
    """A spinner on stderr while a long call runs, when stderr is a terminal; nothing otherwise."""
    if not err.is_terminal:
        yield
        return
    with err.status(text):
        yield


def note(text: str) -> None:
    """A dim line on stderr for what happens around the output (ids, hints)."""
    err.print(text, style="dim", markup=False)


def warn(text: str) -> None:
    err.print(f"firebox: {text}", style="yellow", markup=False)
