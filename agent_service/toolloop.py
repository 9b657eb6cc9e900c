"""The body of a run: call the model, run the tools it asks for through the executor, repeat.

Each step first builds the model's context from the stored history (compacting it when it nears
the window, see context.py), then streams one model call (text and reasoning deltas as they
come), stores the assistant message (throttled while streaming, fully at the end), then runs
each tool call: after an approval when the session's policy asks for one (see approvals.py),
`shell` in the session's workspace and shell session (streaming its output to the client and
giving the model a bounded head and tail of it), `read_file` / `write_file` through the
executor's file RPCs, `load_skill` from the skills library, and the executor's named tools
through Step. The loop ends on an answer without tool calls, or at the step limit.

If the run is cancelled or fails part-way, what arrived is kept: the assistant message is
marked interrupted with its partial content, and every tool call it made that has no result
gets a synthetic one, so the history stays valid for the next model call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct

from agent_service.approvals import ApprovalBroker, Decision, Resolution, approval_policy
from agent_service.context import CompactionResult, Compactor, estimate_tokens, model_view
from agent_service.executor_client import ExecutorClient, ExecutorError
from agent_service.generation import (
    SHELL_TOOL_NAME,
    GenerationTrace,
    new_id,
    provider_messages,
    usage_proto,
)
from agent_service.provider import Completion, ModelProvider, ReasoningPiece, TextPiece
from agent_service.runs import LiveRun
from agent_service.skills import LOAD_SKILL_TOOL_NAME, SkillLibrary
from agent_service.store import Store
from agent_service.tools import (
    READ_FILE_TOOL_NAME,
    WRITE_FILE_TOOL_NAME,
    OfferedTools,
    ToolCatalog,
    approval_text,
    needs_approval,
)
from firebox.agent.v1 import agent_pb2
from firebox.common import tracing
from firebox.common.errors import FireboxError, NotFound
from firebox.common.logging import get_logger
from firebox.common.trainlog import FEEDBACK, GENERATIONS, TrainingLog
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2

log = get_logger("firebox.agent.toolloop")

# Assistant progress is written to the store at most this often while it streams.
PERSIST_INTERVAL_SECONDS = 0.5
# Tool output a run keeps in its event list (held in memory for the event retention). Past it,
# output still reaches the model's head-and-tail view but no longer the clients, and the tool
# call's finish says output_truncated.
RUN_EVENT_OUTPUT_CAP_BYTES = 64 * 1024 * 1024
# Labels put on the workspaces the agent creates, so they can be traced back to a session.
LABEL_AGENT_SESSION = "dev.firebox.agent-session"


@dataclass(frozen=True)
class LoopSettings:
    max_steps: int
    tool_output_limit: int
    tool_timeout: float
    approval_timeout: float = 600.0
    # agent_pb2.ApprovalPolicy of sessions that set none.
    default_approval_policy: int = agent_pb2.APPROVAL_POLICY_NEVER
    read_only_commands: tuple[str, ...] = ()
    context_window: int = 128_000
    compact_threshold: float = 0.8
    keep_user_tokens: int = 20_000


def _now_stamp(message: agent_pb2.Message) -> None:
    message.create_time.GetCurrentTime()


class HeadTail:
    """Keeps the first and last `limit // 2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    @property
    def omitted(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        head = self.head.decode(errors="replace")
        if not self.omitted:
            return head + self.tail.decode(errors="replace")
        return f"{head}\n[... {self.omitted} bytes omitted ...]\n{self.tail.decode(errors='replace')}"


def tool_result_text(output: HeadTail, exit_code: int, end_reason: int, note: str) -> str:
    """What the model is told of a tool run: the bounded output and how it ended."""
    reason = executor_pb2.EndReason.Name(end_reason).removeprefix("END_REASON_").lower()
    tail = (
        f"[exit code {exit_code}]" if end_reason == executor_pb2.END_REASON_EXITED else f"[{reason}: {note}]"
    )
    body = output.text()
    return f"{body}\n{tail}" if body else tail


class _Throttle:
    """Writes a streaming message's progress at most every PERSIST_INTERVAL_SECONDS, one write at
    a time, in the background so the stream never waits on the disk. A timer makes sure the
    latest progress is written within the interval even when the stream then goes quiet."""

    def __init__(self, store: Store, session_id: str, snapshot: Callable[[], agent_pb2.Message]) -> None:
        self._store = store
        self._session_id = session_id
        self._snapshot = snapshot
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        # Whether the message has been (or is being) written at least once.
        self.written = False

    def touch(self) -> None:
        """Something changed: make sure it is written within the interval."""
        if self._timer is None:
            delay = max(0.0, self._last + PERSIST_INTERVAL_SECONDS - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._writing is not None and not self._writing.done():
            self.touch()
            return
        self._last = time.monotonic()
        self.written = True
        self._writing = asyncio.create_task(self._store.put_message(self._session_id, self._snapshot()))

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def now(self, message: agent_pb2.Message) -> None:
        """Write the message as it is, after any write still in flight (so order holds)."""
        self.stop()
        if self._writing is not None:
            writing, self._writing = self._writing, None
            try:
                await asyncio.shield(writing)
            except Exception as exc:
                log.warning("progress_write_failed", error=repr(exc))
        self.written = True
        await self._store.put_message(self._session_id, message)


@dataclass
class _Turn:
    """What one run knows while it goes: the session, its model, the policy, the tools offered."""

    session: agent_pb2.Session
    model: str
    approval_policy: int
    system_prompt: str
    tools: OfferedTools
    generation_id: str = ""
    # The provider's count (input + output) of this run's latest model call; 0 when none yet, or
    # since a compaction.
    reported_context: int = 0


class ToolLoop:
    """Runs one run of a session: the RunBody given to the RunManager."""

    def __init__(
        self,
        store: Store,
        provider: ModelProvider,
        executor: ExecutorClient,
        training_log: TrainingLog,
        settings: LoopSettings,
        approvals: ApprovalBroker | None = None,
        skills: SkillLibrary | None = None,
    ) -> None:
        self._store = store
        self._provider = provider
        self._executor = executor
        self._log = training_log
        self._settings = settings
        self.approvals = approvals or ApprovalBroker()
        self.skills = skills or SkillLibrary()
        self.catalog = ToolCatalog(executor, self.skills)
        self.compactor = Compactor(provider, training_log, settings.keep_user_tokens)

    def system_prompt(self, session: agent_pb2.Session) -> str:
        """The session's prompt, with the skills listed after it."""
        parts = [session.settings.system_prompt.strip(), self.skills.prompt_section()]
        return "\n\n".join(p for p in parts if p)

    async def __call__(self, live: LiveRun) -> bool:
        run = live.run
        session = await self._store.get_session(live.session_id)
        if session is None:
            raise NotFound(f"session {live.session_id} not found (deleted before its run started)")
        model = self._provider.resolve_model(session.settings.model)
        user = await self._user_message(live, session)
        run.user_message_id = user.id
        await self._store.put_run(run)
        live.emit(run_started=agent_pb2.RunStarted(session_id=session.id, user_message_id=user.id))
        await self._load_mentioned_skills(live, session.id, user.content)

        turn = _Turn(
            session=session,
            model=model,
            approval_policy=approval_policy(
                session.settings, live.options.approval_policy, self._settings.default_approval_policy
            ),
            system_prompt=self.system_prompt(session),
            tools=await self.catalog.offered(),
        )
        max_steps = session.settings.max_steps or self._settings.max_steps
        for step in range(1, max_steps + 1):
            messages = await self._prepare_context(live, turn)
            assistant = await self._model_step(live, turn, messages, step)
            if not assistant.tool_calls:
                return False
            await self._run_tools(live, turn, assistant)
        return True

    async def _user_message(self, live: LiveRun, session: agent_pb2.Session) -> agent_pb2.Message:
        """Store the run's user message (or, for a resend, rewrite it and drop what followed)."""
        if live.options.resend_message_id:
            user = await self._store.get_message(session.id, live.options.resend_message_id)
            if user is None:
                raise NotFound(
                    f"message {live.options.resend_message_id} is no longer in session {session.id}"
                )
            user.content = live.content
            user.run_id = live.id
            dropped = await self._store.rewind(session.id, user)
            log.info("message_resent", session_id=session.id, message_id=user.id, dropped=dropped)
            return user
        user = agent_pb2.Message(
            id=new_id("msg"),
            role=agent_pb2.ROLE_USER,
            content=live.content,
            status=agent_pb2.MESSAGE_STATUS_COMPLETE,
            run_id=live.id,
        )
        _now_stamp(user)
        # The user's words are safe on disk before the model is asked anything.
        await self._store.put_message(session.id, user)
        return user

    async def _load_mentioned_skills(self, live: LiveRun, session_id: str, text: str) -> None:
        mentioned = self.skills.mentioned(text)
        if not mentioned:
            return
        view = model_view(await self._store.list_messages(session_id))
        loaded = {m.skill_name for m in view if m.skill_name}
        for skill in mentioned:
            if skill.name in loaded:
                continue
            message = skill_message(skill.name, skill.instructions, live.id)
            await self._store.put_message(session_id, message)
            live.emit(message_completed=agent_pb2.MessageCompleted(message=message))

    async def _prepare_context(self, live: LiveRun, turn: _Turn) -> list[dict[str, Any]]:
        """The messages of the next model call, compacting first when they near the window."""
        stored = await self._store.list_messages(turn.session.id)
        messages = provider_messages(turn.system_prompt, model_view(stored))
        tools_tokens = estimate_tokens((), turn.tools.specs)
        tokens = max(estimate_tokens(messages) + tools_tokens, turn.reported_context)
        if tokens < self._settings.compact_threshold * self._settings.context_window:
            return messages
        if stored and stored[-1].HasField("compaction"):
            # Just compacted and still large (long recent user messages): a second summary would
            # not shrink it; the call goes as it is.
            return messages
        result = await self.compact(
            turn.session,
            turn.model,
            stored,
            tools_tokens,
            run_id=live.id,
            reported_tokens=turn.reported_context,
        )
        live.emit(
            context_compacted=agent_pb2.ContextCompacted(
                tokens_before=result.tokens_before,
                tokens_after=result.tokens_after,
                marker_message_id=result.marker.id,
            )
        )
        live.emit(message_completed=agent_pb2.MessageCompleted(message=result.marker))
        turn.reported_context = 0
        stored.append(result.marker)
        return provider_messages(turn.system_prompt, model_view(stored))

    async def compact(
        self,
        session: agent_pb2.Session,
        model: str,
        stored: list[agent_pb2.Message],
        tools_tokens: int,
        run_id: str = "",
        on_delta: Callable[[str], None] | None = None,
        reported_tokens: int = 0,
    ) -> CompactionResult:
        """Summarize the history, store the marker, and record the new context size."""
        result = await self.compactor.summarize(
            system_prompt=self.system_prompt(session),
            stored=stored,
            model=model,
            tools_tokens=tools_tokens,
            session_id=session.id,
            run_id=run_id,
            on_delta=on_delta,
            reported_tokens=reported_tokens,
        )
        await self._store.put_message(session.id, result.marker)
        await self._store.add_usage(session.id, agent_pb2.Usage(), context_tokens=result.tokens_after)
        log.info(
            "context_compacted",
            session_id=session.id,
            tokens_before=result.tokens_before,
            tokens_after=result.tokens_after,
        )
        return result

    async def _model_step(
        self,
        live: LiveRun,
        turn: _Turn,
        messages: list[dict[str, Any]],
        step: int,
    ) -> agent_pb2.Message:
        session = turn.session
        trace = GenerationTrace(
            new_id("gen"),
            turn.model,
            messages,
            session_id=session.id,
            run_id=live.id,
            step=step,
            tools=turn.tools.specs,
        )
        turn.generation_id = trace.generation_id
        assistant = agent_pb2.Message(
            id=new_id("msg"),
            role=agent_pb2.ROLE_ASSISTANT,
            status=agent_pb2.MESSAGE_STATUS_STREAMING,
            run_id=live.id,
        )
        _now_stamp(assistant)
        text: list[str] = []
        reasoning: list[str] = []

        def snapshot() -> agent_pb2.Message:
            progress = agent_pb2.Message()
            progress.CopyFrom(assistant)
            progress.content, progress.reasoning = "".join(text), "".join(reasoning)
            return progress

        throttle = _Throttle(self._store, session.id, snapshot)
        completion: Completion | None = None
        try:
            # Every piece the provider sends is one delta event (a token, from most servers):
            # clients that want fewer messages ask for batch_events, which packs events, not text.
            async for event in self._provider.stream(messages, turn.model, turn.tools.specs):
                if isinstance(event, TextPiece):
                    trace.saw_output()
                    text.append(event.text)
                    live.emit_delta(assistant.id, event.text)
                elif isinstance(event, ReasoningPiece):
                    trace.saw_output()
                    reasoning.append(event.text)
                    live.emit_delta(assistant.id, event.text, reasoning=True)
                else:
                    completion = event
                    break
                throttle.touch()
        except BaseException as exc:
            # Cancelled or failed mid-stream: keep what arrived, marked interrupted.
            throttle.stop()
            assistant.content, assistant.reasoning = "".join(text), "".join(reasoning)
            assistant.status = agent_pb2.MESSAGE_STATUS_INTERRUPTED
            if text or reasoning or throttle.written:
                await self._shielded(throttle.now(assistant))
                live.emit(message_completed=agent_pb2.MessageCompleted(message=assistant))
            error = (
                "cancelled" if isinstance(exc, asyncio.CancelledError) else getattr(exc, "message", repr(exc))
            )
            self._log.write(GENERATIONS, trace.record(None, error=error, partial_text=assistant.content))
            raise
        assert completion is not None
        assistant.content, assistant.reasoning = completion.text, completion.reasoning
        assistant.tool_calls.extend(
            agent_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in completion.tool_calls
        )
        assistant.status = agent_pb2.MESSAGE_STATUS_COMPLETE
        await throttle.now(assistant)
        self._log.write(GENERATIONS, trace.record(completion))
        call = usage_proto(completion.usage)
        # The context now: what was sent plus the answer, as the provider counted it or estimated.
        estimated = estimate_tokens([*messages, *provider_messages("", [assistant])], turn.tools.specs)
        reported = (call.input_tokens + call.output_tokens) if completion.usage is not None else 0
        context_tokens = max(estimated, reported)
        turn.reported_context = reported
        cumulative = await self._store.add_usage(session.id, call, context_tokens=context_tokens)
        # A usage event only when the provider counted; the estimate still reaches GetSession.
        if completion.usage is not None:
            for name in (
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "reasoning_tokens",
                "total_tokens",
            ):
                setattr(live.run.usage, name, getattr(live.run.usage, name) + getattr(call, name))
            live.emit(
                usage=agent_pb2.UsageReported(
                    call=call,
                    cumulative=cumulative,
                    context_tokens=context_tokens,
                    context_window=self._settings.context_window,
                )
            )
        live.emit(message_completed=agent_pb2.MessageCompleted(message=assistant))
        return assistant

    async def _run_tools(self, live: LiveRun, turn: _Turn, assistant: agent_pb2.Message) -> None:
        answered: set[str] = set()
        try:
            for call in assistant.tool_calls:
                live.emit(
                    tool_call_started=agent_pb2.ToolCallStarted(message_id=assistant.id, tool_call=call)
                )
                with tracing.span("tool_call", tool=call.name, tool_call_id=call.id, run_id=live.id):
                    result = await self._run_tool(live, turn, call)
                await self._add_tool_message(live, turn.session.id, call.id, result)
                answered.add(call.id)
        except BaseException as exc:
            why = "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed"
            detail = live.cancel_reason if why == "cancelled" else getattr(exc, "message", repr(exc))
            for call in assistant.tool_calls:
                if call.id not in answered:
                    text = f"[{why}: the tool call did not finish ({detail})]"
                    await self._shielded(self._add_tool_message(live, turn.session.id, call.id, text))
            raise

    async def _add_tool_message(self, live: LiveRun, session_id: str, call_id: str, result: str) -> None:
        message = agent_pb2.Message(
            id=new_id("msg"),
            role=agent_pb2.ROLE_TOOL,
            content=result,
            tool_call_id=call_id,
            status=agent_pb2.MESSAGE_STATUS_COMPLETE,
            run_id=live.id,
        )
        _now_stamp(message)
        await self._store.put_message(session_id, message)
        if not live.done:
            live.emit(message_completed=agent_pb2.MessageCompleted(message=message))

    @staticmethod
    def _finish(live: LiveRun, call_id: str, result: str, exit_code: int = -1) -> str:
        live.emit(
            tool_call_finished=agent_pb2.ToolCallFinished(
                tool_call_id=call_id, exit_code=exit_code, result=result
            )
        )
        return result

    async def _run_tool(self, live: LiveRun, turn: _Turn, call: agent_pb2.ToolCall) -> str:
        """Run one tool call to its end (after approval, when the policy asks); returns what the
        model is told."""
        offered = turn.tools.names()
        if call.name not in offered:
            return self._finish(
                live, call.id, f"[error: unknown tool {call.name!r}; the tools are {', '.join(offered)}]"
            )
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise TypeError("arguments must be a JSON object")
            _check_builtin_arguments(call.name, arguments)
        except (ValueError, KeyError, TypeError) as exc:
            return self._finish(live, call.id, f"[error: bad arguments for {call.name}: {exc}]")
        if call.name == WRITE_FILE_TOOL_NAME and _sandbox(turn.session) == agent_pb2.SANDBOX_MODE_READ_ONLY:
            return self._finish(
                live,
                call.id,
                "[refused: the session's sandbox mode is READ_ONLY; write_file is not allowed. Files can "
                "only be read in this session.]",
            )
        why = needs_approval(
            turn.approval_policy, call.name, arguments, turn.tools, self._settings.read_only_commands
        )
        if why:
            resolution = await self._approve(live, turn, call, approval_text(call.name, arguments), why)
            if resolution.decision is Decision.DENY:
                return self._finish(
                    live, call.id, f"denied by the user: {resolution.reason or 'no reason given'}"
                )
            if resolution.decision is Decision.APPROVE_EDITED:
                try:
                    arguments = _edited_arguments(call.name, arguments, resolution.edited_command)
                except (ValueError, TypeError, KeyError) as exc:
                    return self._finish(live, call.id, f"[error: the edited call is not valid: {exc}]")
        if call.name == SHELL_TOOL_NAME:
            return await self._run_shell(live, turn.session, call, arguments["command"])
        if call.name == LOAD_SKILL_TOOL_NAME:
            skill = self.skills.get(str(arguments.get("name", "")))
            if skill is None:
                return self._finish(
                    live,
                    call.id,
                    f"[error: no skill {arguments.get('name')!r}; skills: {', '.join(self.skills.skills)}]",
                )
            return self._finish(live, call.id, f"Skill {skill.name}:\n\n{skill.instructions}", exit_code=0)
        try:
            if call.name == READ_FILE_TOOL_NAME:
                return await self._read_file(live, turn.session, call, str(arguments["path"]))
            if call.name == WRITE_FILE_TOOL_NAME:
                return await self._write_file(
                    live, turn.session, call, str(arguments["path"]), arguments["content"]
                )
            return await self._step(live, turn, call, arguments)
        except ExecutorError as exc:
            if exc.code.name in ("UNAVAILABLE", "UNAUTHENTICATED", "PERMISSION_DENIED"):
                raise
            return self._finish(live, call.id, f"[error: {exc.message}]")

    async def _approve(
        self, live: LiveRun, turn: _Turn, call: agent_pb2.ToolCall, command: str, why: str
    ) -> Resolution:
        """Ask, wait (bounded), tell the client, and log the decision for training."""
        timeout = self._settings.approval_timeout
        live.emit(
            approval_requested=agent_pb2.ApprovalRequested(
                tool_call=call, command=command, reason=why, timeout_seconds=timeout
            )
        )
        log.info("approval_requested", run_id=live.id, tool_call_id=call.id, tool=call.name)
        resolution = await self.approvals.wait(live.id, call.id, timeout)
        decision = {
            Decision.APPROVE: agent_pb2.APPROVAL_DECISION_APPROVE,
            Decision.DENY: agent_pb2.APPROVAL_DECISION_DENY,
            Decision.APPROVE_EDITED: agent_pb2.APPROVAL_DECISION_APPROVE_EDITED,
        }[resolution.decision]
        runs_now = resolution.edited_command if resolution.decision is Decision.APPROVE_EDITED else command
        live.emit(
            approval_resolved=agent_pb2.ApprovalResolved(
                tool_call_id=call.id,
                decision=decision,  # type: ignore[arg-type]
                reason=resolution.reason,
                command="" if resolution.decision is Decision.DENY else runs_now,
                timed_out=resolution.timed_out,
            )
        )
        kind = {
            Decision.APPROVE: trace_pb2.FEEDBACK_KIND_APPROVAL_APPROVED,
            Decision.DENY: trace_pb2.FEEDBACK_KIND_APPROVAL_DENIED,
            Decision.APPROVE_EDITED: trace_pb2.FEEDBACK_KIND_APPROVAL_EDITED,
        }[resolution.decision]
        record = trace_pb2.FeedbackRecord(
            feedback_id=new_id("fb"),
            event=trace_pb2.FeedbackEvent(
                kind=kind,  # type: ignore[arg-type]
                session_id=turn.session.id,
                run_id=live.id,
                tool_call_id=call.id,
                generation_id=turn.generation_id,
                suggested_text=command,
                edited_text=resolution.edited_command
                if resolution.decision is Decision.APPROVE_EDITED
                else "",
                reason=resolution.reason,
            ),
            source="agent",
        )
        record.server_time.GetCurrentTime()
        self._log.write(FEEDBACK, record)
        log.info(
            "approval_resolved", run_id=live.id, tool_call_id=call.id, decision=resolution.decision.value
        )
        return resolution

    async def _read_file(
        self, live: LiveRun, session: agent_pb2.Session, call: agent_pb2.ToolCall, path: str
    ) -> str:
        workspace_id, _shell = await self._workspace(session)
        limit = self._settings.tool_output_limit
        info, data = await self._executor.download_file(workspace_id, path, limit + 1)
        text = data[:limit].decode(errors="replace")
        if info.size > limit or len(data) > limit:
            text += f"\n[... cut: showing the first {limit} of {info.size} bytes ...]"
        if not live.done:
            live.emit(tool_output=agent_pb2.ToolOutput(tool_call_id=call.id, stdout_data=data[:limit]))
        return self._finish(live, call.id, text, exit_code=0)

    async def _write_file(
        self, live: LiveRun, session: agent_pb2.Session, call: agent_pb2.ToolCall, path: str, content: str
    ) -> str:
        workspace_id, _shell = await self._workspace(session)
        data = content.encode()
        response = await self._executor.upload_file(workspace_id, path, data)
        return self._finish(
            live, call.id, f"wrote {len(data)} bytes to {response.file.path or path}", exit_code=0
        )

    async def _step(
        self, live: LiveRun, turn: _Turn, call: agent_pb2.ToolCall, arguments: dict[str, Any]
    ) -> str:
        workspace_id, _shell = await self._workspace(turn.session)
        args = Struct()
        args.update(arguments)
        timeout = self._settings.tool_timeout
        request = executor_pb2.StepRequest(
            workspace_id=workspace_id,
            action=executor_pb2.Action(tool_name=call.name, args=args),
            timeout=Duration(seconds=int(timeout), nanos=int((timeout % 1) * 1e9)),
            tool_call_id=call.id,
            run_id=live.id,
            agent_session_id=turn.session.id,
        )
        response = await self._executor.step(request, deadline=timeout + 30)
        out = response.observation.tool_output
        output = HeadTail(self._settings.tool_output_limit)
        output.add(out.stdout.encode())
        output.add(out.stderr.encode())
        if out.stdout or out.stderr:
            live.emit(
                tool_output=agent_pb2.ToolOutput(
                    tool_call_id=call.id, stdout_data=out.stdout.encode(), stderr_data=out.stderr.encode()
                )
            )
        result = tool_result_text(output, out.exit_status, out.end_reason, out.message)
        live.emit(
            tool_call_finished=agent_pb2.ToolCallFinished(
                tool_call_id=call.id,
                exit_code=out.exit_status,
                end_reason=out.end_reason,  # type: ignore[arg-type]
                output_truncated=out.truncated or output.omitted > 0,
                result=result,
                execution_id=response.execution_id,
            )
        )
        return result

    async def _run_shell(
        self, live: LiveRun, session: agent_pb2.Session, call: agent_pb2.ToolCall, command: str
    ) -> str:
        output = HeadTail(self._settings.tool_output_limit)
        dropped = False

        def on_output(stdout: bytes, stderr: bytes) -> None:
            nonlocal dropped
            output.add(stdout)
            output.add(stderr)
            size = len(stdout) + len(stderr)
            if live.output_bytes + size > RUN_EVENT_OUTPUT_CAP_BYTES:
                dropped = True
                return
            live.output_bytes += size
            live.emit(
                tool_output=agent_pb2.ToolOutput(tool_call_id=call.id, stdout_data=stdout, stderr_data=stderr)
            )

        outcome = None
        for attempt in (1, 2):
            try:
                workspace_id, shell_id = await self._workspace(session)
                outcome = await self._executor.run_script(
                    workspace_id=workspace_id,
                    session_id=shell_id,
                    script=command,
                    run_id=live.id,
                    tool_call_id=call.id,
                    agent_session_id=session.id,
                    timeout_seconds=self._settings.tool_timeout,
                    on_output=on_output,
                )
                break
            except ExecutorError as exc:
                if exc.code.name in ("UNAVAILABLE", "UNAUTHENTICATED", "PERMISSION_DENIED"):
                    raise  # the executor itself is the problem: the run fails and says so
                if exc.code.name == "NOT_FOUND" and attempt == 1:
                    # The shell (or its workspace) went away, e.g. the executor restarted: set up
                    # fresh ones and run the command there.
                    log.info("shell_session_lost", session_id=session.id, error=exc.message)
                    await self._forget_shell(session)
                    continue
                return self._finish(
                    live, call.id, f"[error: the executor refused the command: {exc.message}]"
                )
        assert outcome is not None
        if outcome.session_ended:
            await self._forget_shell(session)
        result = tool_result_text(output, outcome.exit_code, outcome.end_reason, outcome.message)
        live.emit(
            tool_call_finished=agent_pb2.ToolCallFinished(
                tool_call_id=call.id,
                exit_code=outcome.exit_code,
                end_reason=outcome.end_reason,  # type: ignore[arg-type]
                output_truncated=outcome.output_truncated or output.omitted > 0 or dropped,
                result=result,
                execution_id=outcome.execution_id,
            )
        )
        return result

    async def _workspace(self, session: agent_pb2.Session) -> tuple[str, str]:
        """The session's workspace and shell session, created on first use (and again when the
        executor no longer knows them). No lock: a session has one active run at a time."""
        stored = await self._store.get_session(session.id)
        if stored is None:
            raise NotFound(f"session {session.id} was deleted")
        workspace_id, shell_id = stored.workspace_id, stored.shell_session_id
        if workspace_id and shell_id:
            return workspace_id, shell_id
        if workspace_id:
            try:
                shell_id = (await self._executor.create_shell_session(workspace_id)).id
            except ExecutorError as exc:
                if exc.code.name != "NOT_FOUND":
                    raise
                log.info("workspace_lost", session_id=session.id, workspace_id=workspace_id)
                workspace_id = ""
        if not workspace_id:
            workspace = await self._executor.create_workspace(
                session.settings.workspace_image,
                workspace_policy(session.settings),
                {LABEL_AGENT_SESSION: session.id},
            )
            workspace_id = workspace.id
            shell_id = (await self._executor.create_shell_session(workspace_id)).id
        stored.workspace_id, stored.shell_session_id = workspace_id, shell_id
        stored.update_time.GetCurrentTime()
        await self._store.update_session(stored)
        session.workspace_id, session.shell_session_id = workspace_id, shell_id
        log.info(
            "workspace_ready", session_id=session.id, workspace_id=workspace_id, shell_session_id=shell_id
        )
        return workspace_id, shell_id

    async def _forget_shell(self, session: agent_pb2.Session) -> None:
        stored = await self._store.get_session(session.id)
        if stored is None:
            return
        stored.shell_session_id = session.shell_session_id = ""
        await self._store.update_session(stored)

    @staticmethod
    async def _shielded(work: object) -> None:
        """Finish a write even while the run is being cancelled; a failure is logged, not raised,
        so the original reason for stopping is what the client sees."""
        try:
            await asyncio.shield(work)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            raise
        except (FireboxError, Exception) as exc:
            log.warning("write_while_stopping_failed", error=repr(exc))


def skill_message(name: str, instructions: str, run_id: str) -> agent_pb2.Message:
    """The SYSTEM message that brings a skill's instructions into the context."""
    message = agent_pb2.Message(
        id=new_id("msg"),
        role=agent_pb2.ROLE_SYSTEM,
        content=f"Skill {name} (loaded because the user mentioned ${name}):\n\n{instructions}",
        status=agent_pb2.MESSAGE_STATUS_COMPLETE,
        run_id=run_id,
        skill_name=name,
    )
    _now_stamp(message)
    return message


def _sandbox(session: agent_pb2.Session) -> int:
    return session.settings.sandbox_mode or agent_pb2.SANDBOX_MODE_WORKSPACE_WRITE


def workspace_policy(settings: agent_pb2.SessionSettings) -> executor_pb2.IsolationPolicy | None:
    """The session's workspace policy with the sandbox mode applied: READ_ONLY makes /workspace
    read-only, FULL turns the network on, WORKSPACE_WRITE (the default) neither. A session with
    no sandbox mode set keeps what its workspace_policy says."""
    policy = executor_pb2.IsolationPolicy()
    if settings.HasField("workspace_policy"):
        policy.CopyFrom(settings.workspace_policy)
    mode = settings.sandbox_mode
    if mode != agent_pb2.SANDBOX_MODE_UNSPECIFIED:
        policy.read_only = mode == agent_pb2.SANDBOX_MODE_READ_ONLY
        policy.network = mode == agent_pb2.SANDBOX_MODE_FULL
    elif not settings.HasField("workspace_policy"):
        return None
    return policy


def _check_builtin_arguments(name: str, arguments: dict[str, Any]) -> None:
    required = {
        SHELL_TOOL_NAME: ("command",),
        READ_FILE_TOOL_NAME: ("path",),
        WRITE_FILE_TOOL_NAME: ("path", "content"),
        LOAD_SKILL_TOOL_NAME: ("name",),
    }.get(name, ())
    for key in required:
        if not isinstance(arguments.get(key), str):
            raise TypeError(f'"{key}" must be a string')


def _edited_arguments(name: str, arguments: dict[str, Any], edited: str) -> dict[str, Any]:
    """The call's arguments after a person edited it: a new command for shell, new JSON
    arguments for every other tool."""
    if name == SHELL_TOOL_NAME:
        return {**arguments, "command": edited}
    replaced = json.loads(edited)
    if not isinstance(replaced, dict):
        raise TypeError("an edited tool call must be a JSON object of arguments")
    _check_builtin_arguments(name, replaced)
    return replaced
