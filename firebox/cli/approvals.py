"""Answering a run's approval requests: a prompt on a terminal (approve / deny with a reason /
edit the command), a standing answer from `--approve-all` / `--deny-all`, or, with no terminal
to ask on, a denial (fail closed) that says how to allow it."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from firebox.agent.v1 import agent_pb2 as ag
from firebox.cli import output
from firebox.cli.app import describe
from firebox.cli.events import describe_request
from firebox.client import FireboxClient, FireboxRpcError

# What the model is told when no one could be asked.
NO_TERMINAL_REASON = "no one to ask: firebox ran without a terminal and without --approve-all"
_SHELL = "shell"


def add_flags(parser: argparse.ArgumentParser) -> None:
    """--approve-all / --deny-all, for commands that follow a run."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--approve-all",
        dest="approvals",
        action="store_const",
        const="approve",
        help="approve every tool call the agent asks about, without asking",
    )
    group.add_argument(
        "--deny-all",
        dest="approvals",
        action="store_const",
        const="deny",
        help="deny every tool call the agent asks about, without asking",
    )
    parser.set_defaults(approvals=None)


@dataclass(frozen=True)
class Answer:
    """A decision for one request. `cancel` means: cancel the run instead (Ctrl-C at the prompt)."""

    decision: ag.ApprovalDecision = ag.APPROVAL_DECISION_UNSPECIFIED
    reason: str = ""
    edited_command: str = ""
    cancel: bool = False
    always_allow_paths: bool = False


class Approver:
    """Decides approval requests for a run being followed and sends the answers.

    `mode` is "approve" or "deny" for a standing answer, or None to ask on the terminal when stdin
    is one, and to deny (fail closed) when it is not."""

    def __init__(
        self,
        client: FireboxClient,
        mode: str | None = None,
        *,
        interactive: bool | None = None,
        ask: Callable[[str, str], str] | None = None,
    ) -> None:
        self._client = client
        self.mode = mode
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self._ask = ask or ask_line
        self.denied_without_terminal = 0

    def answer(self, request: ag.ApprovalRequested) -> Answer:
        """The decision for `request`: the standing one, the person's, or a fail-closed denial."""
        if self.mode == "approve":
            output.note(f"approved (--approve-all): {describe_request(request)}")
            return Answer(ag.APPROVAL_DECISION_APPROVE)
        if self.mode == "deny":
            output.note(f"denied (--deny-all): {describe_request(request)}")
            return Answer(ag.APPROVAL_DECISION_DENY, reason="denied by --deny-all")
        if not self.interactive:
            self.denied_without_terminal += 1
            output.warn(
                f"denied {describe_request(request)}: approval needs a terminal to ask on (stdin is not "
                "one). Pass --approve-all to allow such calls, or --deny-all to deny them quietly."
            )
            return Answer(ag.APPROVAL_DECISION_DENY, reason=NO_TERMINAL_REASON)
        return self._prompt(request)

    def _prompt(self, request: ag.ApprovalRequested) -> Answer:
        is_shell = request.tool_call.name in (_SHELL, "")
        edit_label = "edit the command" if is_shell else "edit the arguments"
        # Writes outside the session's writable paths can be allowed for good.
        always = " / [p]aths: yes, and always allow writing there" if request.paths else ""
        if request.paths:
            output.note(f"writes outside the writable paths: {', '.join(request.paths)}")
        try:
            with _interruptible():
                while True:
                    choice = (
                        self._ask(f"approve? [y]es / [n]o / [e]dit ({edit_label}){always} > ", "")
                        .strip()
                        .lower()
                    )
                    if choice in ("y", "yes", "a", "approve"):
                        return Answer(ag.APPROVAL_DECISION_APPROVE)
                    if request.paths and choice in ("p", "paths"):
                        return Answer(ag.APPROVAL_DECISION_APPROVE, always_allow_paths=True)
                    if choice in ("n", "no", "d", "deny"):
                        reason = self._ask("reason (told to the model; Enter for none) > ", "").strip()
                        return Answer(ag.APPROVAL_DECISION_DENY, reason=reason)
                    if choice in ("e", "edit"):
                        edited = self._edit(request, is_shell)
                        if edited is not None:
                            return Answer(ag.APPROVAL_DECISION_APPROVE_EDITED, edited_command=edited)
                        continue
                    output.warn("answer y (approve), n (deny) or e (edit); Ctrl-C cancels the run")
        except EOFError:
            output.warn("no answer (end of input): denied")
            return Answer(ag.APPROVAL_DECISION_DENY, reason="no answer")
        except KeyboardInterrupt:
            return Answer(cancel=True)

    def _edit(self, request: ag.ApprovalRequested, is_shell: bool) -> str | None:
        """The edited command (or JSON arguments), or None to ask again."""
        current = request.command if is_shell else (request.tool_call.arguments or request.command)
        edited = self._ask("command > " if is_shell else "arguments (JSON) > ", current).strip()
        if not edited:
            output.warn("empty: not changed")
            return None
        if not is_shell:
            try:
                if not isinstance(json.loads(edited), dict):
                    raise ValueError("not an object")
            except ValueError as error:
                output.warn(f"the arguments must be a JSON object ({error}); try again")
                return None
        return edited

    def resolve(self, run_id: str, request: ag.ApprovalRequested, on_cancel: Callable[[], None]) -> None:
        """Answer `request` of run `run_id` and send the answer. A request answered meanwhile (by
        someone else, or by the agent's timeout) is noted, not an error."""
        answer = self.answer(request)
        if answer.cancel:
            on_cancel()
            return
        try:
            self._client.resolve_approval(
                run_id,
                request.tool_call.id,
                answer.decision,
                reason=answer.reason,
                edited_command=answer.edited_command,
                always_allow_paths=answer.always_allow_paths,
            )
        except FireboxRpcError as error:
            if error.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            output.warn(f"{describe(error)} (it was answered already, or timed out)")


def ask_line(prompt: str, prefill: str) -> str:
    """One line from the terminal, `prefill` already typed (editable) when readline is there. The
    prompt goes to stderr when stdout is not the terminal, so piped --json output stays clean."""
    hook_set = False
    if prefill:
        try:
            import readline

            readline.set_startup_hook(lambda: readline.insert_text(prefill))
            hook_set = True
        except ImportError:
            prompt = f"{prompt}(was: {prefill}) "
    try:
        if sys.stdout.isatty():
            return input(prompt)
        sys.stderr.write(prompt)
        sys.stderr.flush()
        return input()
    finally:
        if hook_set:
            import readline

            readline.set_startup_hook(None)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C at a prompt raises KeyboardInterrupt at once (the run follower's handler would
    otherwise only cancel in the background and leave the prompt waiting)."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
