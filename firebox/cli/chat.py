"""`firebox chat` and `firebox runs attach`: send messages and follow runs live, cancel with Ctrl-C,
and reconnect to a run in progress after the last event seen."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

import grpc

from firebox.agent.v1 import agent_pb2 as ag
from firebox.cli import exit_codes, output
from firebox.cli.app import App, CliError, describe
from firebox.cli.events import JsonRenderer, RunRenderer
from firebox.client import FireboxClient, FireboxRpcError

# Reconnects after a lost stream, with this backoff between them (seconds).
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)
_LIVE_STATUSES = (ag.RUN_STATUS_RUNNING, ag.RUN_STATUS_QUEUED)
_CONFLICT_POLICIES = {
    "reject": ag.CONFLICT_POLICY_REJECT,
    "enqueue": ag.CONFLICT_POLICY_ENQUEUE,
    "interrupt": ag.CONFLICT_POLICY_INTERRUPT,
}
_EXIT_COMMANDS = {"/exit", "/quit"}


def add_parsers(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "chat",
        parents=parents,
        help="talk to the agent",
        description=(
            "Chat with the agent in a session: a new one unless SESSION is given. With -m, send one "
            "message and exit when its run ends; otherwise prompt for messages (Ctrl-D or /exit quits). "
            "Ctrl-C cancels the run in progress. A run already in progress in the session is followed first."
        ),
    )
    parser.add_argument("session", nargs="?", help="session id to continue (default: a new session)")
    parser.add_argument("-m", "--message", help="send this message, follow its run, and exit")
    parser.add_argument("--title", default="", help="title of a new session")
    parser.add_argument("--model", default="", help="model of a new session (default: the agent's)")
    parser.add_argument("--system", default="", help="system prompt of a new session")
    parser.add_argument(
        "--on-conflict",
        choices=sorted(_CONFLICT_POLICIES),
        default="reject",
        help="when the session already has an active run: refuse (default), queue behind it, or interrupt it",
    )
    parser.add_argument("--json", action="store_true", help="print run events as proto-JSON lines")
    parser.set_defaults(handler=chat)


def add_attach_parser(runs: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = runs.add_parser(
        "attach",
        parents=parents,
        help="follow a run in progress",
        description="Replay a run's events after --after, then follow it live until it ends. "
        "Ctrl-C cancels the run; a second Ctrl-C stops following.",
    )
    parser.add_argument("run_id")
    parser.add_argument("--after", type=int, default=0, help="replay events with index greater than this")
    parser.add_argument("--json", action="store_true", help="print run events as proto-JSON lines")
    parser.set_defaults(handler=attach)


class _CancelOnInterrupt:
    """SIGINT while a run is followed: the first cancels the run, a second stops following."""

    def __init__(self, client: FireboxClient) -> None:
        self._client = client
        self.run_id = ""
        self.requested = False
        self._sent = False
        self._count = 0
        self._previous: object = None

    def __enter__(self) -> _CancelOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)  # type: ignore[arg-type]

    def know_run(self, run_id: str) -> None:
        self.run_id = run_id
        if self.requested:
            self._send()

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self._count += 1
        if self._count > 1:
            raise KeyboardInterrupt
        # os.write: a signal handler must not re-enter sys.stderr's buffered writer.
        os.write(2, b"\nfirebox: cancelling the run (Ctrl-C again to stop waiting)\n")
        self.requested = True
        if self.run_id:
            self._send()

    def _send(self) -> None:
        if self._sent:
            return
        self._sent = True
        # CancelRun blocks on the network; the handler must return so the stream keeps being read.
        threading.Thread(target=self._cancel, name="cancel-run", daemon=True).start()

    def _cancel(self) -> None:
        try:
            self._client.cancel_run(self.run_id)
        except FireboxRpcError as error:
            output.warn(describe(error))


def follow(
    client: FireboxClient,
    events: Iterator[ag.RunEvent],
    renderer: RunRenderer,
    *,
    run_id: str = "",
    after: int = 0,
) -> int:
    """Render a run's events until it ends, reconnecting with StreamRun after the last index seen
    when the stream breaks. Returns the exit code for how the run ended."""
    last, attempt = after, 0
    interrupts = _CancelOnInterrupt(client)
    if run_id:
        interrupts.know_run(run_id)
    try:
        with interrupts:
            while True:
                try:
                    for event in events:
                        attempt = 0
                        if not run_id:
                            run_id = event.run_id
                            interrupts.know_run(run_id)
                        if event.index <= last:
                            continue  # a replay after reconnecting may repeat what was shown
                        last = event.index
                        renderer.render(event)
                        if renderer.outcome:
                            return _outcome_code(renderer)
                    if not run_id:
                        raise CliError("the agent ended the stream before the run started")
                    run = client.get_run(run_id)
                    if run.status not in _LIVE_STATUSES:
                        return _ended_without_event(run)
                    lost = "the agent closed the stream"
                except FireboxRpcError as error:
                    if not run_id or error.code != grpc.StatusCode.UNAVAILABLE:
                        raise
                    lost = error.reason()
                if attempt >= len(RECONNECT_DELAYS):
                    raise CliError(
                        f"lost run {run_id} after event {last} and could not reconnect ({lost}). "
                        f"Resume with `firebox runs attach {run_id} --after {last}`.",
                        exit_codes.UNAVAILABLE,
                    )
                renderer.end_line()
                output.note(f"connection lost ({lost}); reconnecting to run {run_id} after event {last}")
                time.sleep(RECONNECT_DELAYS[attempt])
                attempt += 1
                events = client.stream_run(run_id, last)
    except KeyboardInterrupt:
        renderer.end_line()
        hint = f" Follow it again with `firebox runs attach {run_id} --after {last}`." if run_id else ""
        output.warn(f"stopped following the run.{hint}")
        return exit_codes.INTERRUPTED


def _outcome_code(renderer: RunRenderer) -> int:
    """0 for a completed run, 130 for a cancelled one, and for a failed one the code of the
    status it failed with (4 when the provider was unavailable, ...), else 1."""
    if renderer.outcome == "run_completed":
        return exit_codes.OK
    if renderer.outcome == "run_cancelled":
        return exit_codes.INTERRUPTED
    failed = renderer.failure or ag.RunFailed()
    code = getattr(grpc.StatusCode, failed.code, grpc.StatusCode.UNKNOWN) if failed.code else None
    output.err.print(
        f"firebox: the run failed: {failed.message or failed.code or 'no reason given'}", markup=False
    )
    return exit_codes.for_status(code) if code is not None else exit_codes.FAILURE


def _ended_without_event(run: ag.Run) -> int:
    status = output.enum_word(ag.RunStatus.Name(run.status), "RUN_STATUS_")
    if run.status == ag.RUN_STATUS_COMPLETED:
        return exit_codes.OK
    if run.status == ag.RUN_STATUS_CANCELLED:
        return exit_codes.INTERRUPTED
    output.err.print(
        f"firebox: run {run.id} ended {status}{': ' + run.error if run.error else ''}", markup=False
    )
    return exit_codes.FAILURE


def _renderer(args: argparse.Namespace) -> RunRenderer:
    return JsonRenderer() if args.json else RunRenderer()


def attach(app: App, args: argparse.Namespace) -> int:
    if args.after < 0:
        raise CliError("--after must be 0 or more", exit_codes.USAGE)
    client = app.client
    events = client.stream_run(args.run_id, args.after)
    return follow(client, events, _renderer(args), run_id=args.run_id, after=args.after)


def _open_session(client: FireboxClient, args: argparse.Namespace) -> ag.Session:
    if args.session:
        return client.get_session(args.session).session
    settings = ag.SessionSettings(model=args.model, system_prompt=args.system)
    session = client.create_session(args.title, settings=settings)
    output.note(f"session {session.id} (continue it with `firebox chat {session.id}`)")
    return session


def chat(app: App, args: argparse.Namespace) -> int:
    client = app.client
    session = _open_session(client, args)
    on_conflict = _CONFLICT_POLICIES[args.on_conflict]
    if session.active_run_id and on_conflict == ag.CONFLICT_POLICY_REJECT:
        output.note(f"following run {session.active_run_id}, in progress in this session")
        code = follow(
            client, client.stream_run(session.active_run_id, 0), _renderer(args), run_id=session.active_run_id
        )
        if args.message is None and code == exit_codes.INTERRUPTED:
            return code

    if args.message is not None:
        return follow(client, client.send_message(session.id, args.message, on_conflict), _renderer(args))

    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    code = exit_codes.OK
    # Piped input is read as one message per line, without prompts in the output.
    prompt = "you> " if sys.stdin.isatty() else ""
    while True:
        try:
            text = input(prompt)
        except EOFError:
            if prompt:
                output.out.print()  # end the prompt's line
            return code
        except KeyboardInterrupt:
            output.out.print()
            return exit_codes.INTERRUPTED
        text = text.strip()
        if not text:
            continue
        if text in _EXIT_COMMANDS:
            return code
        try:
            code = follow(client, client.send_message(session.id, text, on_conflict), _renderer(args))
        except FireboxRpcError as error:
            # A refused message (an active run, say) does not end the conversation.
            output.err.print(f"firebox: {describe(error)}", markup=False)
            code = exit_codes.for_status(error.code)
