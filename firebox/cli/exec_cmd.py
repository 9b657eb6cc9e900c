"""`firebox exec`: run a command in a workspace with live output, stdin forwarding, Ctrl-C as a stop,
and the command's exit status as firebox's own."""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shlex
import signal
import sys
import termios
import threading
import tty
from types import FrameType
from typing import Any

import grpc

from firebox.cli import exit_codes, output
from firebox.cli.app import App, CliError, describe
from firebox.client import FireboxClient, FireboxRpcError, SyncExecCall
from firebox.client.aio import Service
from firebox.executor.v1 import executor_pb2 as ex

DEFAULT_WORKSPACE = "default"
STDIN_CHUNK = 64 * 1024


def add_parser(subparsers: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "exec",
        parents=parents,
        help="run a command in a workspace",
        description=(
            "Run a command in a workspace, streaming its output live and exiting with its status. "
            "Piped stdin is forwarded. Ctrl-C interrupts the command; a second Ctrl-C kills it. "
            "With -t the command runs on a terminal in the workspace and this terminal is "
            "connected to it (keys, Ctrl-C and window size go through), like `docker exec -it`."
        ),
        epilog=(
            "exit status: the command's own; 128+N when signal N ended it; 124 when it ran past "
            "its timeout; 137 when its memory limit killed it; 125 when firebox could not run it."
        ),
    )
    parser.add_argument(
        "-w",
        "--workspace",
        help=f"workspace id or name (default: the workspace named {DEFAULT_WORKSPACE!r}, created on first use)",
    )
    parser.add_argument("-s", "--session", default="", help="shell session id: keeps cwd and variables")
    parser.add_argument("--timeout", type=float, help="seconds before the command is killed")
    parser.add_argument(
        "-t",
        "--tty",
        action="store_true",
        help="run the command on a terminal (for interactive programs: shells, editors, top)",
    )
    parser.add_argument("-C", "--directory", default="", help="working directory (relative to /workspace)")
    parser.add_argument(
        "-e", "--env", action="append", default=[], metavar="NAME=VALUE", help="set a variable (repeatable)"
    )
    parser.add_argument(
        "--via",
        choices=("executor", "agent"),
        default="executor",
        help="send the stream to the executor directly (default) or through the agent",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--shell",
        action="store_true",
        help="join CMD with spaces and run it as shell text, so pipes, globs and variables work",
    )
    mode.add_argument(
        "--argv",
        action="store_true",
        help="run the program directly, without a shell (in a session, nothing it does persists)",
    )
    parser.add_argument("--known-id", default="", help="cell id for the training log (RunMe's known_id)")
    parser.add_argument("--known-name", default="", help="cell name for the training log")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- CMD", help="the command and arguments"
    )
    parser.set_defaults(handler=run)


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--env takes NAME=VALUE, got {pair!r}", exit_codes.USAGE)
        env[name] = value
    return env


def resolve_workspace(client: FireboxClient, wanted: str | None, via: Service = "executor") -> ex.Workspace:
    """The workspace to run in: the one named or with this id, or the default one, which is
    created (and started) when needed, asking the executor or (`via="agent"`) the agent."""
    if wanted:
        workspace = client.find_workspace(wanted, via=via)
        if workspace is None:
            raise CliError(
                f"no workspace with id or name {wanted!r} on the executor at {client.target('executor')}. "
                f"List them with `firebox workspaces list` or create one with `firebox workspaces create {wanted}`.",
                exit_codes.NOT_FOUND,
            )
        return workspace
    workspace = client.find_workspace(DEFAULT_WORKSPACE, via=via)
    if workspace is None:
        try:
            with output.progress(f"creating workspace {DEFAULT_WORKSPACE!r}"):
                workspace = client.create_workspace(DEFAULT_WORKSPACE, via=via)
            output.note(f"created workspace {DEFAULT_WORKSPACE!r} ({workspace.id})")
        except FireboxRpcError as error:
            # Another firebox may have created it a moment ago.
            if error.code != grpc.StatusCode.ALREADY_EXISTS:
                raise
            workspace = client.find_workspace(DEFAULT_WORKSPACE, via=via)
            if workspace is None:
                raise
    if workspace.status != ex.WORKSPACE_STATUS_RUNNING and via == "agent":
        raise CliError(
            f"workspace {DEFAULT_WORKSPACE!r} ({workspace.id}) is {output.enum_word(ex.WorkspaceStatus.Name(workspace.status), 'WORKSPACE_STATUS_')}"
            " and the agent cannot start it; start it on its executor (`firebox workspaces start`) or "
            "pass another with --workspace",
            exit_codes.CONFLICT,
        )
    if workspace.status != ex.WORKSPACE_STATUS_RUNNING:
        with output.progress(f"starting workspace {DEFAULT_WORKSPACE!r}"):
            workspace = client.start_workspace(workspace.id)
    return workspace


def ensure_shell_session(client: FireboxClient, workspace_id: str, session_id: str) -> None:
    """Create the named shell session on first use, so `--session NAME` just works."""
    if any(session.id == session_id for session in client.list_shell_sessions(workspace_id)):
        return
    try:
        client.create_shell_session(workspace_id, session_id)
        output.note(f"created shell session {session_id}")
    except FireboxRpcError as error:
        if error.code != grpc.StatusCode.ALREADY_EXISTS:  # another firebox just created it
            raise


def exit_status(final: ex.ExecuteResponse) -> int:
    """The shell-style exit status of a finished execution (see the epilog)."""
    reason = final.end_reason
    code = final.exit_code.value if final.HasField("exit_code") else None
    if reason == ex.END_REASON_TIMED_OUT:
        return exit_codes.EXEC_TIMED_OUT
    if reason == ex.END_REASON_OUT_OF_MEMORY:
        return 128 + signal.SIGKILL
    if code is not None and code < 0:
        # A raw wait status: killed by signal -code.
        return 128 + min(-code, 127)
    if code is not None:
        return code if 0 <= code <= 255 else code & 0xFF
    defaults = {
        ex.END_REASON_STOPPED: 128 + signal.SIGINT,
        ex.END_REASON_CANCELLED: 128 + signal.SIGINT,
        ex.END_REASON_SHUTDOWN: 128 + signal.SIGTERM,
        ex.END_REASON_SIGNALED: 128 + signal.SIGKILL,
    }
    return defaults.get(reason, exit_codes.FAILURE)


class _Interrupts:
    """SIGINT while the command runs: the first asks it to stop, later ones kill it."""

    def __init__(self, execution: SyncExecCall) -> None:
        self._execution = execution
        self.count = 0
        self._previous: signal.Handlers | None = None

    def __enter__(self) -> _Interrupts:
        self._previous = signal.signal(signal.SIGINT, self._handle)  # type: ignore[assignment]
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        kill = self.count > 1
        # os.write: a signal handler must not re-enter sys.stderr's buffered writer.
        message = (
            b"\nfirebox: killing the command\n" if kill else b"\nfirebox: stopping (Ctrl-C again to kill)\n"
        )
        os.write(2, message)
        self._execution.stop_soon(kill=kill)


def _forward_stdin(execution: SyncExecCall) -> None:
    """Copy our stdin to the command until EOF, then send end of input."""
    try:
        while True:
            try:
                data = os.read(0, STDIN_CHUNK)
            except OSError:
                data = b""
            if not data:
                break
            if not execution.send_input(data):
                return
        execution.close_input()
    except (FireboxRpcError, RuntimeError, concurrent.futures.CancelledError):
        # The call's own failure is reported by the reader; once the command has ended and
        # firebox is exiting, the client's loop may already be closed under this thread.
        pass


def _stdin_is_pipe() -> bool:
    try:
        return not os.isatty(0)
    except OSError:
        return False


def run(app: App, args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("exec needs a command: firebox exec [OPTIONS] -- CMD [ARGS...]", exit_codes.USAGE)
    env = parse_env(args.env)
    client = app.client
    try:
        if args.via == "agent" and args.workspace:
            # Through the agent, a workspace id goes as it is: the executor may not be reachable from here.
            workspace_id = args.workspace
        else:
            workspace_id = resolve_workspace(client, args.workspace, args.via).id
            if args.session:
                ensure_shell_session(client, workspace_id, args.session)
        program = _program(command, args)
        execution = client.exec(
            workspace_id,
            session_id=args.session,
            directory=args.directory,
            env=env,
            timeout=args.timeout,
            known_id=args.known_id,
            known_name=args.known_name,
            via=args.via,
            tty=args.tty,
            winsize=_window_size() if args.tty else None,
            **program,
        )
    except FireboxRpcError as error:
        raise _exec_failure(error) from None
    except CliError as error:
        raise CliError(error.message, exit_codes.EXEC_FAILED) from None

    if args.tty:
        with _RawTerminal(execution):
            interrupted = _relay(execution)
    else:
        if _stdin_is_pipe():
            threading.Thread(target=_forward_stdin, args=(execution,), name="stdin", daemon=True).start()
        else:
            # A terminal's keystrokes are not forwarded without -t: the command sees end of input.
            execution.close_input()
        with _Interrupts(execution):
            interrupted = _relay(execution)
    if interrupted is not None:
        return interrupted
    final = execution.final
    if final is None:
        raise CliError(
            f"the {args.via} ended the stream without the command's exit status", exit_codes.EXEC_FAILED
        )
    if final.output_truncated:
        output.warn("output was truncated at the server's output cap")
    if final.end_reason not in (ex.END_REASON_EXITED, ex.END_REASON_UNSPECIFIED) and final.message:
        output.warn(final.message)
    if final.session_ended:
        output.note(f"shell session {args.session} ended; it takes no more commands")
    return exit_status(final)


def _relay(execution: SyncExecCall) -> int | None:
    """Write the command's output as it comes, until it ends; an exit status if we must stop
    early (our reader went away)."""
    stdout, stderr = sys.stdout.buffer, sys.stderr.buffer
    try:
        for response in execution:
            if response.stdout_data:
                stdout.write(response.stdout_data)
                stdout.flush()
            if response.stderr_data:
                stderr.write(response.stderr_data)
                stderr.flush()
    except FireboxRpcError as error:
        raise _exec_failure(error) from None
    except BrokenPipeError:
        # Our reader went away (`firebox exec -- yes | head`): end the command as a shell would.
        execution.cancel()
        _silence_stdout()
        return 128 + signal.SIGPIPE
    return None


def _window_size() -> tuple[int, int]:
    size = os.get_terminal_size(1) if os.isatty(1) else os.terminal_size((80, 24))
    return size.lines, size.columns


class _RawTerminal:
    """With -t: our terminal in raw mode, so every key (Ctrl-C, Ctrl-D, arrows) goes to the
    command's terminal, which does the echoing and line editing; window size changes follow."""

    def __init__(self, execution: SyncExecCall) -> None:
        self._execution = execution
        self._saved: list[Any] | None = None
        self._previous_winch: Any = None

    def __enter__(self) -> _RawTerminal:
        if os.isatty(0):
            self._saved = termios.tcgetattr(0)
            # TCSANOW: keys typed while the command was starting are kept for it.
            tty.setraw(0, termios.TCSANOW)
        self._previous_winch = signal.signal(signal.SIGWINCH, self._resized)
        threading.Thread(target=_forward_stdin, args=(self._execution,), name="stdin", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGWINCH, self._previous_winch or signal.SIG_DFL)
        if self._saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, self._saved)

    def _resized(self, _signum: int, _frame: FrameType | None) -> None:
        self._execution.resize_soon(*_window_size())


def _program(command: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """By default the arguments are quoted into shell text for the workspace's shell: they mean
    what they mean as argv, and builtins like `cd` and `export` act on a session's shell."""
    if args.argv:
        return {"argv": command}
    if args.shell:
        return {"script": " ".join(command)}
    return {"script": shlex.join(command)}


def _exec_failure(error: FireboxRpcError) -> CliError:
    return CliError(describe(error), exit_codes.EXEC_FAILED)


def _silence_stdout() -> None:
    # Python flushes stdout at exit; pointing it at /dev/null keeps that from failing again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
