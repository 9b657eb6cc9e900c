"""Model review of approvals (approval policy MODEL_REVIEW): a reviewer model sees what a person
would see, and approves, denies, or leaves it to the person.

The reviewer is asked with the transcript so far (the most recent part, bounded), the user's
request of this run, and the exact action: the tool, its command or arguments, the paths it
would write outside the session's writable paths, and why it needs approval. It must answer
with one JSON object, `{"decision": "approve" | "deny" | "ask", "reason": "..."}`. Anything
else — a provider error, no answer within the review timeout, text that is not that object — is
a failed review, which goes to the person: a review never approves by default.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from agent_service.connections import Connection
from agent_service.providers.base import Completion
from firebox.agent.v1 import agent_pb2
from firebox.common.logging import get_logger

log = get_logger("firebox.agent.review")

APPROVE, DENY, ASK, FAILED = "approve", "deny", "ask", "failed"
# How much of the transcript the reviewer sees (characters, most recent kept) and of one message.
TRANSCRIPT_CHARS = 24_000
MESSAGE_CHARS = 4_000
REASON_CHARS = 500
DEFAULT_REVIEW_TIMEOUT_SECONDS = 60.0
# A verdict is one short JSON object; this bounds what a rambling reviewer costs.
REVIEW_OUTPUT_TOKENS = 512

REVIEW_PROMPT = """You review actions that an AI coding agent wants to take in a sandboxed \
workspace on behalf of a user, before they run. Approve an action that plainly serves the \
user's request and cannot do harm beyond it. Deny one that is destructive, exfiltrates data, \
escapes or weakens the sandbox, or has nothing to do with the request. When unsure, ask the \
person. Answer with exactly one JSON object and nothing else:
{"decision": "approve" | "deny" | "ask", "reason": "<one short sentence>"}"""

_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class Verdict:
    """What the reviewer said: APPROVE, DENY, ASK, or FAILED (no usable answer), and why."""

    decision: str
    reason: str


@dataclass(frozen=True)
class Action:
    """The tool call under review, as the person would see it."""

    tool: str
    command: str
    why: str
    paths: tuple[str, ...] = ()


class ApprovalReviewer:
    """Asks the reviewer model about one action; never raises, never approves by default.

    The reviewer is asked on the session's own connection, or on the operator's
    (--review-connection) when one is set; its model is --review-model, else that connection's
    model for the session (the session's model, or the review connection's default)."""

    def __init__(self, connection: Connection | None, model: str, timeout: float) -> None:
        # None: the session's own connection.
        self.connection = connection
        # Empty: the model the session uses (or the review connection's default).
        self.model = model
        self._timeout = timeout

    def choose(self, session_connection: Connection, session_model: str) -> tuple[Connection, str]:
        """The connection and model a session's reviews go to."""
        if self.connection is not None:
            return self.connection, self.model or self.connection.spec.default_model
        return session_connection, self.model or session_model

    async def review(
        self,
        connection: Connection,
        model: str,
        request: str,
        transcript: list[agent_pb2.Message],
        action: Action,
    ) -> Verdict:
        if not model:
            return Verdict(FAILED, f"no reviewer model: connection {connection.name} has no default model")
        messages = [
            {"role": "system", "content": REVIEW_PROMPT},
            {"role": "user", "content": review_text(request, transcript, action)},
        ]
        try:
            async with asyncio.timeout(self._timeout):
                completion = None
                async for event in connection.provider.stream(
                    messages, model, None, max_output_tokens=REVIEW_OUTPUT_TOKENS
                ):
                    if isinstance(event, Completion):
                        completion = event
        except TimeoutError:
            return Verdict(FAILED, f"the reviewer gave no answer within {self._timeout:g}s")
        except Exception as exc:  # any failure of the reviewer goes to the person
            message = getattr(exc, "message", None) or repr(exc)
            log.warning("review_failed", connection=connection.name, model=model, error=message)
            return Verdict(FAILED, f"the review failed: {message}"[:REASON_CHARS])
        return parse_verdict(completion.text if completion is not None else "")


def parse_verdict(text: str) -> Verdict:
    """The reviewer's answer, or FAILED saying what was wrong with it."""
    found = _OBJECT.search(text)
    try:
        answer: Any = json.loads(found.group(0)) if found else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return Verdict(FAILED, f"the reviewer's answer is not a JSON object: {text[:200]!r}")
    decision = str(answer.get("decision", "")).strip().lower()
    if decision not in (APPROVE, DENY, ASK):
        return Verdict(FAILED, f"the reviewer's decision is not approve, deny or ask: {decision[:50]!r}")
    reason = str(answer.get("reason", "")).strip()[:REASON_CHARS]
    return Verdict(decision, reason or "no reason given")


def review_text(request: str, transcript: list[agent_pb2.Message], action: Action) -> str:
    """What the reviewer is shown: the user's request, the recent transcript, the action."""
    lines: list[str] = []
    for message in transcript:
        role = agent_pb2.Role.Name(message.role).removeprefix("ROLE_").lower()
        body = message.content[:MESSAGE_CHARS]
        for call in message.tool_calls:
            body += f"\n[tool call {call.name}: {call.arguments[:MESSAGE_CHARS]}]"
        lines.append(f"{role}: {body}")
    history = "\n".join(lines)
    if len(history) > TRANSCRIPT_CHARS:
        history = "[... earlier transcript cut ...]\n" + history[-TRANSCRIPT_CHARS:]
    outside = ", ".join(action.paths) if action.paths else "none"
    return (
        f"The user's request:\n{request}\n\n"
        f"The transcript so far:\n{history or '(empty)'}\n\n"
        f"The action to review:\ntool: {action.tool}\n"
        f"{'command' if action.tool == 'shell' else 'arguments'}: {action.command}\n"
        f"paths it writes outside the session's writable paths: {outside}\n"
        f"why it needs approval: {action.why}"
    )
