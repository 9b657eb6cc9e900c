"""`firebox`: the command line for the Firebox agent and executor.

Every failure ends as one line on stderr and an exit code from `firebox.cli.exit_codes`; a
traceback is never shown (set FIREBOX_DEBUG=1 to see one)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from firebox import __version__
from firebox.cli import chat, exec_cmd, exit_codes, mcp_cmd, output, port_forward, resources
from firebox.cli.app import App, CliError, describe, exit_code_for
from firebox.client import ConnectionSettings, FireboxRpcError, SettingsError
from firebox.client.settings import (
    DEFAULT_AGENT,
    DEFAULT_EXECUTOR,
    ENV_AGENT,
    ENV_EXECUTOR,
    ENV_TLS_CA,
    ENV_TLS_CERT,
    ENV_TLS_KEY,
    ENV_TLS_SERVER_NAME,
    ENV_TOKEN,
)


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line and exit code 2 like every other failure."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{message} (see `{self.prog} --help`)", exit_codes.USAGE)


def _connection_flags(suppress: bool) -> argparse.ArgumentParser:
    """The connection flags, accepted before and after the subcommand. After it, defaults are
    suppressed so they do not overwrite a value given before it."""
    parser = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--agent", default=default, help=f"agent address (${ENV_AGENT}, default {DEFAULT_AGENT})"
    )
    group.add_argument(
        "--executor", default=default, help=f"executor address (${ENV_EXECUTOR}, default {DEFAULT_EXECUTOR})"
    )
    group.add_argument("--token", default=default, help=f"bearer token (${ENV_TOKEN})")
    group.add_argument(
        "--tls-ca",
        default=default,
        metavar="FILE",
        help=f"CA to verify servers with, turns TLS on (${ENV_TLS_CA})",
    )
    group.add_argument(
        "--tls-cert", default=default, metavar="FILE", help=f"client certificate (${ENV_TLS_CERT})"
    )
    group.add_argument("--tls-key", default=default, metavar="FILE", help=f"client key (${ENV_TLS_KEY})")
    group.add_argument(
        "--tls-server-name",
        default=default,
        metavar="NAME",
        help=f"name to check in the server's certificate when dialling an IP (${ENV_TLS_SERVER_NAME})",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="firebox",
        description="Run commands in Firebox workspaces and chat with the Firebox agent.",
        epilog="exit codes: 0 ok, 1 failure, 2 usage or bad input, 3 not found, 4 unavailable, "
        "5 unauthenticated, 6 conflict, 7 resource exhausted, 130 interrupted; "
        "`exec` exits with the command's own status (125 when firebox could not run it). See docs/cli.md.",
        parents=[_connection_flags(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"firebox {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parents = [_connection_flags(suppress=True)]
    exec_cmd.add_parser(subparsers, parents)
    port_forward.add_parser(subparsers, parents)
    chat.add_parsers(subparsers, parents)
    resources.add_session_parsers(subparsers, parents)
    resources.add_workspace_parsers(subparsers, parents)
    resources.add_run_parsers(subparsers, parents)
    resources.add_status_parser(subparsers, parents)
    mcp_cmd.add_parser(subparsers, parents)
    _add_dataset_parser(subparsers, parents)
    return parser


def _add_dataset_parser(
    subparsers: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]
) -> None:
    try:
        from firebox.cli import dataset
    except ImportError:  # the exporter is not part of this build
        return
    dataset.add_parsers(subparsers, parents)


def _settings(args: argparse.Namespace) -> ConnectionSettings:
    return ConnectionSettings.from_env(
        agent=args.agent,
        executor=args.executor,
        token=args.token,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_server_name=args.tls_server_name,
    )


def run(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the command, and return the exit code."""
    app: App | None = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return exit_codes.USAGE
        app = App(_settings(args))
        app.settings.channel_credentials()  # refuse unusable TLS settings before any call
        result: int = handler(app, args)
        return result
    except CliError as error:
        _fail(error.message)
        return error.exit_code
    except SettingsError as error:
        _fail(str(error))
        return exit_codes.USAGE
    except FireboxRpcError as error:
        _fail(describe(error))
        return exit_code_for(error)
    except KeyboardInterrupt:
        output.err.print()
        return exit_codes.INTERRUPTED
    except BrokenPipeError:
        return exit_codes.FAILURE
    except Exception as error:  # a bug in firebox itself: still one line, unless debugging
        if os.environ.get("FIREBOX_DEBUG"):
            raise
        _fail(f"internal error: {type(error).__name__}: {error} (set FIREBOX_DEBUG=1 for a traceback)")
        return exit_codes.FAILURE
    finally:
        if app is not None:
            app.close()


def _fail(message: str) -> None:
    output.err.print(f"firebox: {message}", style="red" if output.err.is_terminal else None, markup=False)


def main() -> None:
    # asyncio reports gRPC's internal tasks still pending when a reconnecting stream is dropped
    # ("Task was destroyed but it is pending!"): nothing a user can act on, and stderr is theirs.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.exit(run())


if __name__ == "__main__":
    main()
