"""`firebox dataset export`: training examples from the training log, with progress on a terminal."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from firebox.cli import exit_codes, output
from firebox.cli.app import App, CliError
from firebox.dataset import export


def add_parsers(subparsers: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("dataset", parents=parents, help="turn training logs into datasets")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    exporting = commands.add_parser(
        "export",
        parents=parents,
        help="write chat-format training examples from the training logs",
        description="Join generations, executions and feedback from the training logs under --logs and "
        "write one chat-format example per suggestion to --out (JSON lines), labelled accepted, "
        "edited, rejected or not_executed. Failed executions are left out unless --include-failed.",
    )
    exporting.add_argument(
        "--logs", required=True, type=Path, metavar="DIR", help="a logs directory (searched recursively)"
    )
    exporting.add_argument(
        "--out", required=True, type=Path, metavar="FILE.jsonl", help="where to write the examples"
    )
    exporting.add_argument("--include-failed", action="store_true", help="keep examples whose command failed")
    exporting.add_argument("--json", action="store_true", help="print the summary as JSON")
    exporting.set_defaults(handler=export_dataset)


def export_dataset(_app: App, args: argparse.Namespace) -> int:
    if not args.logs.is_dir():
        raise CliError(
            f"no logs directory at {args.logs}; pass the services' <config-dir>/logs", exit_codes.NOT_FOUND
        )
    try:
        if output.err.is_terminal:
            columns = (TextColumn("reading logs"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
            with Progress(*columns, console=output.err, transient=True) as bar:
                task = bar.add_task("read", total=None)

                def advance(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                summary = export(args.logs, args.out, include_failed=args.include_failed, progress=advance)
        else:
            summary = export(args.logs, args.out, include_failed=args.include_failed)
    except OSError as error:
        raise CliError(f"cannot export the dataset: {error}", exit_codes.FAILURE) from None
    if args.json:
        output.print_json(summary.as_dict())
    else:
        output.out.print(str(summary), markup=False)
    return exit_codes.OK
