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
from typing import Any

import grpc

from firebox.agent.v1 import agent_pb2 as ag
from firebox.cli import approvals, exit_codes, output
from firebox.cli.app import App, CliError, describe
from firebox.cli.approvals import Approver
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
APPROVAL_POLICIES = {
    "never": ag.APPROVAL_POLICY_NEVER,
    "on-request": ag.APPROVAL_POLICY_ON_REQUEST,
    "always": ag.APPROVAL_POLICY_ALWAYS,
    "model-review": ag.APPROVAL_POLICY_MODEL_REVIEW,
}
SANDBOX_MODES = {
    "read-only": ag.SANDBOX_MODE_READ_ONLY,
    "workspace-write": ag.SANDBOX_MODE_WORKSPACE_WRITE,
    "full": ag.SANDBOX_MODE_FULL,
}


def add_policy_flags(parser: argparse.ArgumentParser) -> None:
    """--approval and --sandbox, the settings of a new session."""
    parser.add_argument(
        "--approval",
        choices=list(APPROVAL_POLICIES),
        help="which tool calls wait for your approval: never, on-request (all but read-only commands) "
        "or always (default: the agent's, usually never)",
    )
    parser.add_argument(
        "--sandbox",
        choices=list(SANDBOX_MODES),
        help="what the session's workspace allows: read-only, workspace-write (the default) or "
        "full (network on); fixed when the workspace is created",
    )
    parser.add_argument(
        "--writable",
        action="append",
        default=[],
        metavar="PATH",
        help="a directory under /workspace the session may write without asking (repeatable); the rest "
        "of /workspace is then read-only (default: all of it writable)",
    )


def add_connection_flags(parser: argparse.ArgumentParser, whose: str = "") -> None:
    """--connection and --model (`firebox status` lists the agent's connections)."""
    parser.add_argument(
        "--connection",
        default="",
        metavar="NAME",
        help=f"provider connection {whose}(default: the agent's first; `firebox status` lists them)",
    )
    parser.add_argument("--model", default="", help=f"model {whose}(default: the connection's default model)")


def session_settings(args: argparse.Namespace) -> ag.SessionSettings:
    """The settings of a new session from --connection, --model, --system, --approval, --sandbox
    and --writable."""
    return ag.SessionSettings(
        connection=args.connection,
        model=args.model,
        system_prompt=args.system,
        approval_policy=APPROVAL_POLICIES.get(args.approval or "", ag.APPROVAL_POLICY_UNSPECIFIED),
        sandbox_mode=SANDBOX_MODES.get(args.sandbox or "", ag.SANDBOX_MODE_UNSPECIFIED),
        writable_paths=args.writable,
    )


def add_parsers(subparsers: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "chat",
        parents=parents,
        help="talk to the agent",
        description=(
            "Chat with the agent in a session: a new one unless SESSION is given. With -m, send one "
            "message and exit when its run ends; otherwise prompt for messages (Ctrl-D or /exit quits). "
            "Ctrl-C cancels the run in progress. A run already in progress in the session is followed first. "
            "Tool calls that need approval are asked about on the terminal (approve, deny, edit); without "
            "one they are denied unless --approve-all is given."
        ),
    )
    parser.add_argument("session", nargs="?", help="session id to continue (default: a new session)")
    parser.add_argument("-m", "--message", help="send this message, follow its run, and exit")
    parser.add_argument("--title", default="", help="title of a new session")
    add_connection_flags(parser, "of a new session ")
    parser.add_argument("--system", default="", help="system prompt of a new session")
    add_policy_flags(parser)
    approvals.add_flags(parser)
    parser.add_argument(
        "--on-conflict",
        choices=sorted(_CONFLICT_POLICIES),
        default="reject",
        help="when the session already has an active run: refuse (default), queue behind it, or interrupt it",
    )
    parser.add_argument("--json", action="store_true", help="print run events as proto-JSON lines")
    parser.set_defaults(handler=chat)


def add_attach_parser(runs: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
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
    approvals.add_flags(parser)
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
        self.cancel_now()

    def cancel_now(self) -> None:
        """Cancel the run (as the first Ctrl-C does); a later Ctrl-C stops following."""
        self._count = max(self._count, 1)
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
    approver: Approver | None = None,
) -> int:
    """Render a run's events until it ends, reconnecting with StreamRun after the last index seen
    when the stream breaks, and answer its approval requests with `approver`. Returns the exit
    code for how the run ended."""
    last, attempt = after, 0
    interrupts = _CancelOnInterrupt(client)
    # Approval requests not yet resolved, by tool call id. In a replay a request is followed by
    # its resolution, so requests are only answered once the replay has caught up (`caught_up`:
    # the run's last event index when following began).
    waiting: dict[str, ag.ApprovalRequested] = {}
    caught_up = 0
    if run_id:
        interrupts.know_run(run_id)
        caught_up = _last_index(client, run_id) if approver is not None else 0

    def answer_waiting() -> None:
        # Each request leaves `waiting` once answered, so one whose answer could not be sent
        # (the agent unreachable) is answered again after reconnecting.
        assert approver is not None
        for tool_call_id, request in list(waiting.items()):
            approver.resolve(run_id, request, interrupts.cancel_now)
            waiting.pop(tool_call_id, None)

    try:
        with interrupts:
            while True:
                try:
                    if approver is not None and waiting and last >= caught_up:
                        answer_waiting()  # after reconnecting, with nothing newer to replay
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
                        if approver is not None:
                            _track_approvals(event, waiting)
                            if waiting and event.index >= caught_up:
                                answer_waiting()
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
                if approver is not None:
                    caught_up = _last_index(client, run_id)
                events = client.stream_run(run_id, last)
    except KeyboardInterrupt:
        renderer.end_line()
        hint = f" Follow it again with `firebox runs attach {run_id} --after {last}`." if run_id else ""
        output.warn(f"stopped following the run.{hint}")
        return exit_codes.INTERRUPTED


def _last_index(client: FireboxClient, run_id: str) -> int:
    """The run's last event index now (0 when it cannot be told: then requests are asked at once,
    and one answered meanwhile is reported as such)."""
    try:
        return client.get_run(run_id).last_event_index
    except FireboxRpcError:
        return 0


def _track_approvals(event: ag.RunEvent, waiting: dict[str, ag.ApprovalRequested]) -> None:
    if event.HasField("approval_requested"):
        request = event.approval_requested
        waiting[request.tool_call.id] = request
    elif event.HasField("approval_resolved"):
        waiting.pop(event.approval_resolved.tool_call_id, None)


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
    return follow(
        client,
        events,
        _renderer(args),
        run_id=args.run_id,
        after=args.after,
        approver=Approver(client, args.approvals),
    )


def _open_session(client: FireboxClient, args: argparse.Namespace) -> ag.Session:
    if args.session:
        return client.get_session(args.session).session
    session = client.create_session(args.title, settings=session_settings(args))
    output.note(f"session {session.id} (continue it with `firebox chat {session.id}`)")
    return session


def chat(app: App, args: argparse.Namespace) -> int:
    client = app.client
    session = _open_session(client, args)
    on_conflict = _CONFLICT_POLICIES[args.on_conflict]
    approver = Approver(client, args.approvals)
    # For a session that exists already, --approval overrides its policy for each message sent
    # here, and --sandbox must match its mode (the agent refuses a different one).
    overrides: dict[str, int] = {}
    if args.session:
        if args.approval:
            overrides["approval_policy"] = APPROVAL_POLICIES[args.approval]
        if args.sandbox:
            overrides["sandbox_mode"] = SANDBOX_MODES[args.sandbox]

    def send(text: str) -> int:
        events = client.send_message(session.id, text, on_conflict, **overrides)  # type: ignore[arg-type]
        return follow(client, events, _renderer(args), approver=approver)

    if session.active_run_id and on_conflict == ag.CONFLICT_POLICY_REJECT:
        output.note(f"following run {session.active_run_id}, in progress in this session")
        code = follow(
            client,
            client.stream_run(session.active_run_id, 0),
            _renderer(args),
            run_id=session.active_run_id,
            approver=approver,
        )
        if args.message is None and code == exit_codes.INTERRUPTED:
            return code

    if args.message is not None:
        return send(args.message)

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
            code = send(text)
        except FireboxRpcError as error:
            # A refused message (an active run, say) does not end the conversation.
            output.err.print(f"firebox: {describe(error)}", markup=False)
            code = exit_codes.for_status(error.code)
