"""The body of a run: call the model, run the tools it asks for through the executor, repeat.

Each step streams one model call (text and reasoning deltas as they come), stores the
assistant message (throttled while streaming, fully at the end), then runs each tool call in
the session's workspace and shell session, streaming its output to the client and giving the
model a bounded head and tail of it. The loop ends on an answer without tool calls, or at the
step limit.

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

from agent_service.executor_client import ExecutorClient, ExecutorError
from agent_service.generation import (
    SHELL_TOOL,
    SHELL_TOOL_NAME,
    GenerationTrace,
    new_id,
    provider_messages,
    usage_proto,
)
from agent_service.provider import Completion, ModelProvider, ReasoningPiece, TextPiece
from agent_service.runs import LiveRun
from agent_service.store import Store
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FireboxError, NotFound
from firebox.common.logging import get_logger
from firebox.common.trainlog import GENERATIONS, TrainingLog
from firebox.executor.v1 import executor_pb2

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


class _DeltaBatcher:
    """Joins text (or reasoning) pieces that arrive together into one event.

    Pieces decoded from one network read arrive without the event loop running in between; they
    are emitted as one delta when the loop next turns. A lone piece goes out on the next turn of
    the loop, so latency is unchanged; under load, several tokens share one message."""

    def __init__(self, live: LiveRun, message_id: str) -> None:
        self._live = live
        self._message_id = message_id
        self._kind = ""
        self._pending: list[str] = []
        self._handle: asyncio.Handle | None = None

    def add(self, kind: str, text: str) -> None:
        if kind != self._kind:
            self.flush()
            self._kind = kind
        self._pending.append(text)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._pending or self._live.done:
            return
        text = "".join(self._pending)
        self._pending.clear()
        if self._kind == "text":
            self._live.emit(text_delta=agent_pb2.TextDelta(message_id=self._message_id, text=text))
        else:
            self._live.emit(reasoning_delta=agent_pb2.ReasoningDelta(message_id=self._message_id, text=text))


class ToolLoop:
    """Runs one run of a session: the RunBody given to the RunManager."""

    def __init__(
        self,
        store: Store,
        provider: ModelProvider,
        executor: ExecutorClient,
        training_log: TrainingLog,
        settings: LoopSettings,
    ) -> None:
        self._store = store
        self._provider = provider
        self._executor = executor
        self._log = training_log
        self._settings = settings

    async def __call__(self, live: LiveRun) -> bool:
        run = live.run
        session = await self._store.get_session(live.session_id)
        if session is None:
            raise NotFound(f"session {live.session_id} not found (deleted before its run started)")
        model = self._provider.resolve_model(session.settings.model)
        user = agent_pb2.Message(
            id=new_id("msg"),
            role=agent_pb2.ROLE_USER,
            content=live.content,
            status=agent_pb2.MESSAGE_STATUS_COMPLETE,
            run_id=run.id,
        )
        _now_stamp(user)
        # The user's words are safe on disk before the model is asked anything.
        await self._store.put_message(session.id, user)
        run.user_message_id = user.id
        await self._store.put_run(run)
        live.emit(run_started=agent_pb2.RunStarted(session_id=session.id, user_message_id=user.id))

        max_steps = session.settings.max_steps or self._settings.max_steps
        for step in range(1, max_steps + 1):
            history = await self._store.list_messages(session.id)
            assistant = await self._model_step(live, session, model, history, step)
            if not assistant.tool_calls:
                return False
            await self._run_tools(live, session, assistant)
        return True

    async def _model_step(
        self,
        live: LiveRun,
        session: agent_pb2.Session,
        model: str,
        history: list[agent_pb2.Message],
        step: int,
    ) -> agent_pb2.Message:
        messages = provider_messages(session.settings.system_prompt, history)
        trace = GenerationTrace(
            new_id("gen"), model, messages, session_id=session.id, run_id=live.id, step=step
        )
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
        deltas = _DeltaBatcher(live, assistant.id)
        completion: Completion | None = None
        try:
            async for event in self._provider.stream(messages, model, [SHELL_TOOL]):
                if isinstance(event, TextPiece):
                    trace.saw_output()
                    text.append(event.text)
                    deltas.add("text", event.text)
                elif isinstance(event, ReasoningPiece):
                    trace.saw_output()
                    reasoning.append(event.text)
                    deltas.add("reasoning", event.text)
                else:
                    completion = event
                    break
                throttle.touch()
            deltas.flush()
        except BaseException as exc:
            # Cancelled or failed mid-stream: keep what arrived, marked interrupted.
            deltas.flush()
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
        if completion.usage is not None:
            call = usage_proto(completion.usage)
            cumulative = await self._store.add_usage(session.id, call)
            for name in (
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "reasoning_tokens",
                "total_tokens",
            ):
                setattr(live.run.usage, name, getattr(live.run.usage, name) + getattr(call, name))
            live.emit(usage=agent_pb2.UsageReported(call=call, cumulative=cumulative))
        live.emit(message_completed=agent_pb2.MessageCompleted(message=assistant))
        return assistant

    async def _run_tools(
        self, live: LiveRun, session: agent_pb2.Session, assistant: agent_pb2.Message
    ) -> None:
        answered: set[str] = set()
        try:
            for call in assistant.tool_calls:
                live.emit(
                    tool_call_started=agent_pb2.ToolCallStarted(message_id=assistant.id, tool_call=call)
                )
                result = await self._run_tool(live, session, call)
                await self._add_tool_message(live, session.id, call.id, result)
                answered.add(call.id)
        except BaseException as exc:
            why = "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed"
            detail = live.cancel_reason if why == "cancelled" else getattr(exc, "message", repr(exc))
            for call in assistant.tool_calls:
                if call.id not in answered:
                    text = f"[{why}: the tool call did not finish ({detail})]"
                    await self._shielded(self._add_tool_message(live, session.id, call.id, text))
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

    async def _run_tool(self, live: LiveRun, session: agent_pb2.Session, call: agent_pb2.ToolCall) -> str:
        """Run one tool call to its end; returns what the model is told."""
        if call.name != SHELL_TOOL_NAME:
            result = f"[error: unknown tool {call.name!r}; the only tool is {SHELL_TOOL_NAME!r}]"
            live.emit(
                tool_call_finished=agent_pb2.ToolCallFinished(
                    tool_call_id=call.id, exit_code=-1, result=result
                )
            )
            return result
        try:
            arguments = json.loads(call.arguments or "{}")
            command = arguments["command"]
            if not isinstance(command, str):
                raise TypeError("command must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            result = f'[error: arguments must be JSON {{"command": "..."}}: {exc}]'
            live.emit(
                tool_call_finished=agent_pb2.ToolCallFinished(
                    tool_call_id=call.id, exit_code=-1, result=result
                )
            )
            return result

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
                result = f"[error: the executor refused the command: {exc.message}]"
                live.emit(
                    tool_call_finished=agent_pb2.ToolCallFinished(
                        tool_call_id=call.id, exit_code=-1, result=result
                    )
                )
                return result
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
            settings = session.settings
            policy = settings.workspace_policy if settings.HasField("workspace_policy") else None
            workspace = await self._executor.create_workspace(
                settings.workspace_image, policy, {LABEL_AGENT_SESSION: session.id}
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
