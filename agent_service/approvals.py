"""Approvals: which tool calls wait for a person, and the waits themselves.

Under ON_REQUEST a shell command runs at once only when it is plainly one read-only program:
its first words match an allowlisted prefix and the text holds nothing a shell would treat as
more than one simple command. Anything with control operators (`;`, `&`, `|`, newlines),
redirections (`<`, `>`), substitutions (`$(`, backquotes, `${`, `<(`), globbing of the command
word, or quoting we cannot follow waits for approval. Being wrong in the cautious direction
costs a click; the other direction costs a deleted workspace.

With writable paths set on the session, a call that would write outside them asks (under
ON_REQUEST and ALWAYS) and names the paths: a file tool's path, or the paths a shell command
names as write targets (`written_paths`: redirections, and the operands of the usual file-writing
programs, followed through `cd`). That reading is a heuristic for the request; the limit itself is
enforced by the workspace's mounts, whatever the command does.

A wait is a future keyed by (run id, tool call id). `ResolveApproval` sets it; the approval
timeout or the run's cancellation ends it otherwise. A wait past the timeout is a denial.
"""

from __future__ import annotations

import asyncio
import enum
import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FailedPrecondition, InvalidArgument, NotFound
from firebox.common.workspace_paths import WORKDIR

# Arguments that turn an allowlisted reader into a writer or a launcher.
_WRITING_ARGUMENTS = (
    "-delete",
    "-exec",
    "-execdir",
    "-ok",
    "-okdir",
    "-fprint",
    "-fprint0",
    "-fprintf",
    "-fls",
)
_WRITING_ARGUMENT_PREFIXES = ("--output", "--ext-diff")

# Characters that make a command more than one simple command, or redirect, or substitute.
_SHELL_SPECIAL = set(";&|<>`$\n\r(){}\\*?[]!#")


class Decision(enum.Enum):
    APPROVE = "approve"
    DENY = "deny"
    APPROVE_EDITED = "approve_edited"


@dataclass(frozen=True)
class Resolution:
    """What a person (or the timeout) decided about one tool call."""

    decision: Decision
    reason: str = ""
    edited_command: str = ""
    timed_out: bool = False
    # Add the call's paths outside the writable paths to the session's writable paths.
    always_allow_paths: bool = False


def is_read_only_command(command: str, prefixes: Sequence[str]) -> bool:
    """True only for a single simple command whose leading words match an allowlisted prefix."""
    text = command.strip()
    if not text or any(ch in _SHELL_SPECIAL for ch in text):
        return False
    try:
        words = shlex.split(text, posix=True)
    except ValueError:
        return False
    if not words:
        return False
    # `VAR=value cmd` would change the command's environment (e.g. PAGER, GIT_EXTERNAL_DIFF).
    if "=" in words[0]:
        return False
    if any(w in _WRITING_ARGUMENTS or w.startswith(_WRITING_ARGUMENT_PREFIXES) for w in words[1:]):
        return False
    for prefix in prefixes:
        wanted = prefix.split()
        if wanted and words[: len(wanted)] == wanted:
            return True
    return False


# Programs whose operands are all written (created, changed or removed)...
_WRITERS_ALL = frozenset({"touch", "mkdir", "rm", "rmdir", "mv", "tee", "truncate", "shred"})
# ...and those that write only their last operand.
_WRITERS_LAST = frozenset({"cp", "ln", "install", "rsync"})
_REDIRECTIONS = frozenset({">", ">>", ">|", "&>", "&>>"})
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "(", ")"})


def written_paths(command: str) -> list[str]:
    """The paths under /workspace a shell command names as write targets, normalized and
    absolute, in order: redirection targets, the operands of file-writing programs, the `of=`
    of dd, with relative paths read from /workspace as changed by `cd`. Paths elsewhere are not
    the workspace's business and are left out."""
    lexer = shlex.shlex(command.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return []
    found: list[str] = []
    cwd = WORKDIR

    def note(word: str) -> None:
        path = posixpath.normpath(posixpath.join(cwd, word))
        if (path == WORKDIR or path.startswith(WORKDIR + "/")) and path not in found:
            found.append(path)

    words: list[str] = []
    index = 0
    while index <= len(tokens):
        token = tokens[index] if index < len(tokens) else ";"
        index += 1
        if token.rstrip("0123456789") in _REDIRECTIONS or token in _REDIRECTIONS:
            if index < len(tokens):
                note(tokens[index])
                index += 1
            continue
        if token not in _SEPARATORS and not set(token) <= set(";&|()<>"):
            words.append(token)
            continue
        while words and "=" in words[0] and not words[0].startswith("="):
            words.pop(0)  # VAR=value prefixes
        if words:
            program, operands = posixpath.basename(words[0]), [w for w in words[1:] if not w.startswith("-")]
            if program == "cd" and operands:
                cwd = posixpath.normpath(posixpath.join(cwd, operands[0]))
            elif program in ("chmod", "chown"):
                for word in operands[1:]:  # the first operand is the mode or owner
                    note(word)
            elif program in _WRITERS_ALL:
                for word in operands:
                    note(word)
            elif program in _WRITERS_LAST and len(operands) > 1:
                note(operands[-1])
            elif program == "dd":
                for word in words[1:]:
                    if word.startswith("of="):
                        note(word[3:])
        words = []
    return found


POLICY_NAMES = {
    "never": agent_pb2.APPROVAL_POLICY_NEVER,
    "on-request": agent_pb2.APPROVAL_POLICY_ON_REQUEST,
    "always": agent_pb2.APPROVAL_POLICY_ALWAYS,
}


def approval_policy(session: agent_pb2.SessionSettings, override: int, default: int) -> int:
    """The policy in force for one run: the message's override, else the session's, else the
    server's default."""
    if override != agent_pb2.APPROVAL_POLICY_UNSPECIFIED:
        return override
    if session.approval_policy != agent_pb2.APPROVAL_POLICY_UNSPECIFIED:
        return session.approval_policy
    return default


class ApprovalBroker:
    """The approval waits of every run in this process."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], asyncio.Future[Resolution]] = {}

    def pending(self, run_id: str) -> list[str]:
        return [call for (run, call) in self._waiting if run == run_id]

    async def wait(self, run_id: str, tool_call_id: str, limit_seconds: float) -> Resolution:
        """Wait for a decision; a denial (timed_out) after `limit_seconds`. Cancellable."""
        key = (run_id, tool_call_id)
        future: asyncio.Future[Resolution] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            async with asyncio.timeout(limit_seconds):
                return await future
        except TimeoutError:
            return Resolution(
                Decision.DENY,
                f"no decision within {limit_seconds:g}s (the approval timed out)",
                timed_out=True,
            )
        finally:
            self._waiting.pop(key, None)

    def resolve(self, run_id: str, tool_call_id: str, resolution: Resolution, run_known: bool) -> None:
        """Hand a decision to the waiting run; NOT_FOUND / FAILED_PRECONDITION when none waits."""
        if resolution.decision is Decision.APPROVE_EDITED and not resolution.edited_command.strip():
            raise InvalidArgument("edited_command", "is required with APPROVE_EDITED")
        future = self._waiting.get((run_id, tool_call_id))
        if future is None or future.done():
            if not run_known:
                raise NotFound(f"run {run_id} not found")
            waiting = self.pending(run_id)
            raise FailedPrecondition(
                f"run {run_id} has no approval waiting for tool call {tool_call_id!r}"
                + (f"; waiting: {', '.join(waiting)}" if waiting else " (none is waiting)")
            )
        future.set_result(resolution)
