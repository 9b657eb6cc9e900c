"""The body of a run: call the model, run the tools it asks for through the executor, repeat.

Each step first builds the model's context from the stored history (compacting it when it nears
the window, see context.py), then streams one model call (text and reasoning deltas as they
come), stores the assistant message (throttled while streaming, fully at the end), then runs
each tool call: after an approval when the session's policy asks for one (approval_flow.py),
the tool found by name in the catalog (tools.py; the tools themselves are in builtin_tools.py
and mcp_tools.py) runs it. The loop ends on an answer without tool calls, or at the step limit.

If the run is cancelled or fails part-way, what arrived is kept: the assistant message is
marked interrupted with its partial content, and every tool call it made that has no result
gets a synthetic one, so the history stays valid for the next model call.

A run another agent replica took over (its owner stopped) goes on from the stored history
(`resume`): a model call that was streaming is made again, a tool call without a recorded
result is reported to the model as interrupted, never run a second time unannounced.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_service.approval_flow import ApprovalFlow, Question, WritablePaths
from agent_service.approvals import ApprovalBroker, Decision, approval_policy
from agent_service.builtin_tools import BuiltinTools
from agent_service.connections import Connection, Connections
from agent_service.context import CompactionResult, Compactor, estimate_tokens, model_view
from agent_service.executor_client import ExecutorError
from agent_service.executor_pool import ExecutorPool
from agent_service.generation import (
    GenerationTrace,
    new_id,
    provider_messages,
    usage_proto,
)
from agent_service.mcp_tools import McpServerSpec, McpTools
from agent_service.process_tools import ProcessTools
from agent_service.providers.base import (
    Completion,
    ReasoningPiece,
    Restarted,
    StreamFailed,
    TextPiece,
)
from agent_service.review import DEFAULT_REVIEW_TIMEOUT_SECONDS, ApprovalReviewer
from agent_service.runs import RESUMED_REASON, LiveRun, RunInterrupted
from agent_service.session_workspace import SessionWorkspaces, sandbox_mode
from agent_service.session_workspace import workspace_policy as workspace_policy
from agent_service.skills import SkillLibrary
from agent_service.store import Store, add_usage
from agent_service.tool_output import tool_result_text as tool_result_text
from agent_service.tools import (
    WRITE_FILE_TOOL_NAME,
    OfferedTools,
    ToolCatalog,
    ToolRun,
    finish_call,
    needs_approval,
    paths_written_outside,
)
from agent_service.turn_snapshots import (
    DEFAULT_KEEP,
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_BYTES,
    TurnSnapshots,
)
from firebox.agent.v1 import agent_pb2
from firebox.common import tracing
from firebox.common.errors import FireboxError, NotFound
from firebox.common.headtail import HeadTail as HeadTail
from firebox.common.logging import get_logger
from firebox.common.trainlog import GENERATIONS, TrainingLog

log = get_logger("firebox.agent.toolloop")

# Assistant progress is written to the store at most this often while it streams.
PERSIST_INTERVAL_SECONDS = 0.5
# What the model is told of a call in an answer cut at the output-token limit.
_CUT_CALL_RESULT = (
    "[not run: your answer reached the output-token limit (max_output_tokens) and was cut, so this "
    "call may be incomplete; make it again in a shorter answer]"
)
# What the model is told of a call whose result was not recorded when its run was taken over.
INTERRUPTED_CALL_RESULT = (
    "[interrupted: the agent replica running this tool call stopped before its result was recorded, "
    "and another replica took the run over. The call may have run in part or in full: check its "
    "effects before running it again]"
)


@dataclass(frozen=True)
class LoopSettings:
    max_steps: int
    tool_output_limit: int
    tool_timeout: float
    approval_timeout: float = 600.0
    # agent_pb2.ApprovalPolicy of sessions that set none.
    default_approval_policy: int = agent_pb2.APPROVAL_POLICY_NEVER
    read_only_commands: tuple[str, ...] = ()
    compact_threshold: float = 0.8
    keep_user_tokens: int = 20_000
    # Per-turn workspace snapshots a session keeps (0: none), and their longest age in seconds.
    turn_snapshots: int = DEFAULT_KEEP
    turn_snapshot_max_age: float = DEFAULT_MAX_AGE_SECONDS
    turn_snapshot_max_bytes: int = DEFAULT_MAX_BYTES


def _now_stamp(message: agent_pb2.Message) -> None:
    message.create_time.GetCurrentTime()


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
    """What one run knows while it goes: the session, its connection and model (chosen at the
    run's start: a session switched to another connection uses it from its next run), the
    policy, the tools offered."""

    session: agent_pb2.Session
    connection: Connection
    model: str
    approval_policy: int
    system_prompt: str
    tools: OfferedTools
    generation_id: str = ""
    # The provider's count (input + output) of this run's latest model call; 0 when none yet, or
    # since a compaction.
    reported_context: int = 0
    # The workspace snapshot taken as the turn began; its tools wait for it.
    snapshot: asyncio.Task[None] | None = None


class ToolLoop:
    """Runs one run of a session: the RunBody given to the RunManager."""

    def __init__(
        self,
        store: Store,
        connections: Connections,
        executor: ExecutorPool,
        training_log: TrainingLog,
        settings: LoopSettings,
        approvals: ApprovalBroker | None = None,
        skills: SkillLibrary | None = None,
        mcp_servers: Mapping[str, McpServerSpec] | None = None,
        reviewer: ApprovalReviewer | None = None,
    ) -> None:
        self._store = store
        self.connections = connections
        self._executor = executor
        self._log = training_log
        self._settings = settings
        self.approvals = approvals or ApprovalBroker()
        self.skills = skills or SkillLibrary()
        self.workspaces = SessionWorkspaces(store, executor)
        self.writable = WritablePaths(store, executor, self.workspaces)
        self.approval = ApprovalFlow(
            store,
            training_log,
            self.approvals,
            reviewer or ApprovalReviewer(None, "", DEFAULT_REVIEW_TIMEOUT_SECONDS),
            self.writable,
            settings.approval_timeout,
        )
        self.builtins = BuiltinTools(
            executor, self.workspaces, self.skills, settings.tool_output_limit, settings.tool_timeout
        )
        self.mcp = McpTools(
            mcp_servers or {},
            executor,
            self.workspaces,
            training_log,
            settings.tool_output_limit,
            settings.tool_timeout,
        )
        self.processes = ProcessTools(executor, self.workspaces, settings.tool_output_limit)
        self.catalog = ToolCatalog([self.builtins, self.processes, self.mcp])
        self.snapshots = TurnSnapshots(
            store,
            executor,
            settings.turn_snapshots,
            settings.turn_snapshot_max_age,
            settings.turn_snapshot_max_bytes,
        )
        self.compactor = Compactor(training_log, settings.keep_user_tokens)

    def connection(self, session: agent_pb2.Session) -> Connection:
        """The session's connection; INVALID_ARGUMENT when the agent no longer has it (its
        configuration changed since the session chose it)."""
        return self.connections.get(session.settings.connection, "settings.connection")

    def system_prompt(self, session: agent_pb2.Session) -> str:
        """The session's prompt, with the skills listed after it."""
        parts = [session.settings.system_prompt.strip(), self.skills.prompt_section()]
        return "\n\n".join(p for p in parts if p)

    async def __call__(self, live: LiveRun) -> bool:
        if live.resumed_after is not None:
            return await self.resume(live)
        run = live.run
        session = await self._store.get_session(live.session_id)
        if session is None:
            raise NotFound(f"session {live.session_id} not found (deleted before its run started)")
        connection = self.connection(session)
        model = connection.resolve_model(session.settings.model)
        user = await self._user_message(live, session)
        run.user_message_id = user.id
        await self._store.put_run(run)
        live.emit(
            run_started=agent_pb2.RunStarted(
                session_id=session.id, user_message_id=user.id, connection=connection.name, model=model
            )
        )
        await self._load_mentioned_skills(live, session.id, user.content)

        turn = await self._turn(live, session, connection, model)
        turn.snapshot = asyncio.create_task(self.snapshots.take(session, user))
        try:
            return await self._steps(live, turn)
        finally:
            await self._shielded(turn.snapshot)

    async def _turn(
        self, live: LiveRun, session: agent_pb2.Session, connection: Connection, model: str
    ) -> _Turn:
        return _Turn(
            session=session,
            connection=connection,
            model=model,
            approval_policy=approval_policy(
                session.settings, live.options.approval_policy, self._settings.default_approval_policy
            ),
            system_prompt=self.system_prompt(session),
            tools=await self.catalog.offered(session),
        )

    async def resume(self, live: LiveRun) -> bool:
        """Go on with a run taken over from a replica that stopped, from the stored history:
        streaming answers are closed as interrupted (their call is made again), calls of the
        last answer without a recorded result are answered as interrupted, then the steps go
        on from the next one. RunInterrupted when there is nothing to go on from."""
        run = live.run
        session = await self._store.get_session(live.session_id)
        if session is None:
            raise RunInterrupted(f"{RESUMED_REASON}, but its session was deleted")
        if not run.user_message_id:
            raise RunInterrupted(
                "the agent replica running it stopped before the run's message was stored; send the message again"
            )
        stored = await self._store.list_messages(session.id)
        start = next((n for n, m in enumerate(stored) if m.id == run.user_message_id), None)
        if start is None:
            raise RunInterrupted(f"{RESUMED_REASON}, but its message is no longer in the session")
        ours = [m for m in stored[start + 1 :] if m.run_id == run.id]
        connection = self.connection(session)
        model = connection.resolve_model(session.settings.model)
        interrupted: list[agent_pb2.Message] = []
        for message in ours:
            if message.status == agent_pb2.MESSAGE_STATUS_STREAMING:
                message.status = agent_pb2.MESSAGE_STATUS_INTERRUPTED
                await self._store.put_message(session.id, message)
                interrupted.append(message)
        answers = [
            m
            for m in ours
            if m.role == agent_pb2.ROLE_ASSISTANT and m.status == agent_pb2.MESSAGE_STATUS_COMPLETE
        ]
        last = answers[-1] if answers else None
        answered = {m.tool_call_id for m in ours if m.role == agent_pb2.ROLE_TOOL}
        unanswered = [c for c in last.tool_calls if c.id not in answered] if last is not None else []
        finished = last is not None and (last.truncated or not last.tool_calls)
        # Calls of an answer cut at the output limit were never to run: they are answered as cut.
        cut = last is not None and last.truncated
        live.emit(
            run_resumed=agent_pb2.RunResumed(
                reason=RESUMED_REASON,
                after_index=live.resumed_after,
                interrupted_message_ids=[m.id for m in interrupted],
                interrupted_tool_call_ids=[] if cut else [c.id for c in unanswered],
                next_step=0 if finished else len(answers) + 1,
            )
        )
        log.warning(
            "run_resumed",
            run_id=run.id,
            session_id=session.id,
            after_index=live.resumed_after,
            interrupted_calls=len(unanswered),
        )
        for message in interrupted:
            live.emit(message_completed=agent_pb2.MessageCompleted(message=message))
        for call in unanswered:
            result = _CUT_CALL_RESULT if cut else INTERRUPTED_CALL_RESULT
            finish_call(live, call.id, result)
            await self._add_tool_message(live, session.id, call.id, result)
        if finished:
            live.output_truncated = cut
            return False
        turn = await self._turn(live, session, connection, model)
        return await self._steps(live, turn, first_step=len(answers) + 1)

    async def _steps(self, live: LiveRun, turn: _Turn, first_step: int = 1) -> bool:
        """The model/tool steps of the turn from `first_step`; True when it ended at the step
        limit."""
        session = turn.session
        max_steps = session.settings.max_steps or self._settings.max_steps
        for step in range(first_step, max_steps + 1):
            messages = await self._prepare_context(live, turn)
            assistant = await self._model_step(live, turn, messages, step)
            if assistant.truncated:
                # Cut at the output limit: no call in it runs (the last may be half written);
                # the run ends here and says so.
                live.output_truncated = True
                for call in assistant.tool_calls:
                    await self._add_tool_message(live, session.id, call.id, _CUT_CALL_RESULT)
                return False
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
            id=live.options.message_id or new_id("msg"),
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
        if tokens < self._settings.compact_threshold * turn.connection.context_window:
            return messages
        if stored and stored[-1].HasField("compaction"):
            # Just compacted and still large (long recent user messages): a second summary would
            # not shrink it; the call goes as it is.
            return messages
        result = await self.compact(
            turn.session,
            turn.connection,
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
        connection: Connection,
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
            connection=connection,
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
        trace, assistant = self._new_answer(live, turn, messages, step)
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
            async for event in turn.connection.provider.stream(
                messages,
                turn.model,
                turn.tools.specs,
                max_output_tokens=session.settings.max_output_tokens,
                restartable=True,
            ):
                if isinstance(event, TextPiece):
                    trace.saw_output()
                    text.append(event.text)
                    live.emit_delta(assistant.id, event.text)
                elif isinstance(event, ReasoningPiece):
                    trace.saw_output()
                    reasoning.append(event.text)
                    live.emit_delta(assistant.id, event.text, reasoning=True)
                elif isinstance(event, Restarted):
                    # The stream broke after text went out and the call is made again: what went
                    # out stays as an interrupted message, the retry streams into a new one.
                    throttle.stop()
                    assistant.content, assistant.reasoning = "".join(text), "".join(reasoning)
                    assistant.status = agent_pb2.MESSAGE_STATUS_INTERRUPTED
                    await throttle.now(assistant)
                    live.emit(message_completed=agent_pb2.MessageCompleted(message=assistant))
                    self._log.write(
                        GENERATIONS, trace.record(None, error=event.reason, partial_text=assistant.content)
                    )
                    live.emit(
                        model_retry=agent_pb2.ModelRetry(
                            attempt=event.attempt,
                            delay_seconds=event.delay_seconds,
                            reason=event.reason,
                            superseded_message_id=assistant.id,
                        )
                    )
                    trace, assistant = self._new_answer(live, turn, messages, step)
                    text, reasoning = [], []
                    throttle = _Throttle(self._store, session.id, snapshot)
                    continue
                else:
                    completion = event
                    break
                throttle.touch()
        except BaseException as exc:
            # Cancelled or failed mid-stream: keep what arrived, marked interrupted.
            throttle.stop()
            assistant.content, assistant.reasoning = "".join(text), "".join(reasoning)
            assistant.status = agent_pb2.MESSAGE_STATUS_INTERRUPTED
            # Calls the model had begun when its stream broke: kept, as far as they arrived, and
            # answered as never run, so the history stays valid.
            opened = exc.open_tool_calls if isinstance(exc, StreamFailed) else []
            assistant.tool_calls.extend(
                agent_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in opened
            )
            if text or reasoning or opened or throttle.written:
                await self._shielded(throttle.now(assistant))
                live.emit(message_completed=agent_pb2.MessageCompleted(message=assistant))
            error = (
                "cancelled" if isinstance(exc, asyncio.CancelledError) else getattr(exc, "message", repr(exc))
            )
            for call in opened:
                result = f"[not run: the model's output stopped before this call was complete ({error})]"
                await self._shielded(self._add_tool_message(live, session.id, call.id, result))
            self._log.write(GENERATIONS, trace.record(None, error=error, partial_text=assistant.content))
            raise
        assert completion is not None
        assistant.content, assistant.reasoning = completion.text, completion.reasoning
        assistant.tool_calls.extend(
            agent_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in completion.tool_calls
        )
        assistant.status = agent_pb2.MESSAGE_STATUS_COMPLETE
        assistant.truncated = completion.truncated
        assistant.reasoning_signature = completion.reasoning_signature
        assistant.redacted_reasoning.extend(completion.redacted_reasoning)
        await throttle.now(assistant)
        self._log.write(GENERATIONS, trace.record(completion))
        usage = usage_proto(completion.usage)
        # The context now: what was sent plus the answer, as the provider counted it or estimated.
        estimated = estimate_tokens([*messages, *provider_messages("", [assistant])], turn.tools.specs)
        reported = (usage.input_tokens + usage.output_tokens) if completion.usage is not None else 0
        context_tokens = max(estimated, reported)
        turn.reported_context = reported
        cumulative = await self._store.add_usage(session.id, usage, context_tokens=context_tokens)
        # A usage event only when the provider counted; the estimate still reaches GetSession.
        if completion.usage is not None:
            add_usage(live.run.usage, usage)
            live.emit(
                usage=agent_pb2.UsageReported(
                    call=usage,
                    cumulative=cumulative,
                    context_tokens=context_tokens,
                    context_window=turn.connection.context_window,
                )
            )
        live.emit(message_completed=agent_pb2.MessageCompleted(message=assistant))
        return assistant

    @staticmethod
    def _new_answer(
        live: LiveRun, turn: _Turn, messages: list[dict[str, Any]], step: int
    ) -> tuple[GenerationTrace, agent_pb2.Message]:
        """The trace and the (empty, streaming) assistant message of one model call."""
        trace = GenerationTrace(
            new_id("gen"),
            turn.model,
            messages,
            session_id=turn.session.id,
            run_id=live.id,
            step=step,
            tools=turn.tools.specs,
            connection=turn.connection.name,
        )
        turn.generation_id = trace.generation_id
        assistant = agent_pb2.Message(
            id=new_id("msg"),
            role=agent_pb2.ROLE_ASSISTANT,
            status=agent_pb2.MESSAGE_STATUS_STREAMING,
            run_id=live.id,
        )
        _now_stamp(assistant)
        return trace, assistant

    async def _run_tools(self, live: LiveRun, turn: _Turn, assistant: agent_pb2.Message) -> None:
        if turn.snapshot is not None:  # the workspace as it was before this turn, kept first
            await asyncio.shield(turn.snapshot)
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

    async def _run_tool(self, live: LiveRun, turn: _Turn, call: agent_pb2.ToolCall) -> str:
        """Run one tool call to its end (after approval, when the policy asks); returns what the
        model is told."""
        tool = turn.tools.get(call.name)
        if tool is None:
            return finish_call(
                live,
                call.id,
                f"[error: unknown tool {call.name!r}; the tools are {', '.join(turn.tools.names())}]",
            )
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise TypeError("arguments must be a JSON object")
            tool.check(arguments)
        except (ValueError, KeyError, TypeError) as exc:
            return finish_call(live, call.id, f"[error: bad arguments for {call.name}: {exc}]")
        if tool.writes_files and sandbox_mode(turn.session) == agent_pb2.SANDBOX_MODE_READ_ONLY:
            return finish_call(
                live,
                call.id,
                f"[refused: the session's sandbox mode is READ_ONLY; {call.name} is not allowed. Files can "
                "only be read in this session.]",
            )
        writable = tuple(turn.session.settings.writable_paths)
        outside = paths_written_outside(call.name, arguments, writable)
        why = needs_approval(
            turn.approval_policy, tool, arguments, self._settings.read_only_commands, writable, outside
        )
        if why:
            question = Question(
                turn.session,
                turn.connection,
                turn.model,
                turn.approval_policy,
                turn.generation_id,
                call,
                tool.approval_text(arguments),
                why,
                outside,
            )
            resolution = await self.approval.ask(live, question)
            if resolution.decision is Decision.DENY:
                who = "the reviewer" if resolution.reviewed else "the user"
                return finish_call(
                    live, call.id, f"denied by {who}: {resolution.reason or 'no reason given'}"
                )
            if resolution.decision is Decision.APPROVE_EDITED:
                try:
                    arguments = tool.edited(arguments, resolution.edited_command)
                except (ValueError, TypeError, KeyError) as exc:
                    return finish_call(live, call.id, f"[error: the edited call is not valid: {exc}]")
                outside = paths_written_outside(call.name, arguments, writable)
        elif outside and call.name == WRITE_FILE_TOOL_NAME:
            # No one to ask (policy NEVER): the executor would refuse it anyway.
            return finish_call(
                live,
                call.id,
                f"[refused: {outside[0]} is outside the session's writable paths ({', '.join(writable)}); "
                "write inside them, or ask the user to allow this path]",
            )
        else:
            outside = ()  # not approved by anyone: the workspace's mounts keep it inside
        try:
            async with self.writable.widened(turn.session, outside, self._shielded):
                return await tool.run(ToolRun(live, turn.session, call, arguments, turn.generation_id))
        except ExecutorError as exc:
            if exc.code.name in ("UNAVAILABLE", "UNAUTHENTICATED", "PERMISSION_DENIED"):
                raise
            return finish_call(live, call.id, f"[error: {exc.message}]")

    async def set_writable_paths(self, session: agent_pb2.Session, paths: list[str]) -> agent_pb2.Session:
        """Replace the session's writable paths (see approval_flow.WritablePaths.set)."""
        return await self.writable.set(session, paths)

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
