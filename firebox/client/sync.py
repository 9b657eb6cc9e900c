"""FireboxClient: the same calls as AsyncFireboxClient for code that is not asynchronous.

It runs an AsyncFireboxClient on an event loop in a private daemon thread and waits for each
call, so both clients behave identically. Signal handlers in the calling thread still run while
a call waits (Python's lock waits are interruptible), which is how the CLI turns Ctrl-C into a
stop or a cancel without tearing down the stream it is reading.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from firebox.agent.v1 import agent_pb2 as ag
from firebox.client.aio import AsyncFireboxClient, Service
from firebox.client.execution import ExecCall, ExecResult
from firebox.client.settings import ConnectionSettings
from firebox.executor.v1 import executor_pb2 as ex
from firebox.trace.v1 import trace_pb2 as tr

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="firebox-client", daemon=True)
        self._thread.start()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T]) -> T:
        return self.submit(coro).result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class SyncStream(Generic[T]):
    """A blocking iterator over an async iterator running on the loop thread.

    A wait interrupted by an exception from a signal handler (KeyboardInterrupt) keeps the pending
    read, so iterating again resumes the same stream without losing an item.
    """

    def __init__(self, runner: _LoopThread, source: AsyncIterator[T]) -> None:
        self._runner = runner
        self._source = source
        self._pending: concurrent.futures.Future[T] | None = None
        self._finished = False

    def __iter__(self) -> SyncStream[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        if self._pending is None:
            self._pending = self._runner.submit(self._source.__anext__())
        try:
            value = self._pending.result()
        except StopAsyncIteration:
            self._pending, self._finished = None, True
            raise StopIteration from None
        except BaseException:
            if self._pending.done():
                self._pending, self._finished = None, True
            raise
        self._pending = None
        return value

    def close(self) -> None:
        """Stop reading; the underlying call is cancelled."""
        if self._finished:
            return
        self._finished = True
        if self._pending is not None:
            self._pending.cancel()
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            try:
                self._runner.submit(aclose()).result(timeout=5)
            except (RuntimeError, concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                pass  # already running or closing: the cancel above ends it

    def __enter__(self) -> SyncStream[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SyncExecCall:
    """A running execution (see ExecCall). Iterate it for ExecuteResponse messages.

    `stop_soon` only schedules the stop and returns at once, so it is safe in a signal handler.
    """

    def __init__(self, runner: _LoopThread, call: ExecCall) -> None:
        self._runner = runner
        self._call = call
        self._responses: SyncStream[ex.ExecuteResponse] = SyncStream(runner, call.__aiter__())

    @property
    def execution_id(self) -> str:
        return self._call.execution_id

    @property
    def final(self) -> ex.ExecuteResponse | None:
        return self._call.final

    def __iter__(self) -> Iterator[ex.ExecuteResponse]:
        return self._responses

    def send_input(self, data: bytes) -> bool:
        return self._runner.run(self._call.send_input(data))

    def close_input(self) -> bool:
        return self._runner.run(self._call.close_input())

    def stop(self, kill: bool = False) -> bool:
        return self._runner.run(self._call.stop(kill))

    def resize_soon(self, rows: int, cols: int) -> None:
        """Schedule a resize of the program's terminal; returns at once (safe in a signal handler)."""
        self._runner.submit(self._call.resize(rows, cols))

    def stop_soon(self, kill: bool = False) -> None:
        self._runner.submit(self._call.stop(kill))

    def cancel(self) -> None:
        self._runner.loop.call_soon_threadsafe(self._call.cancel)

    def collect(self, stdin: bytes | None = None) -> ExecResult:
        return self._runner.run(self._call.collect(stdin))

    def close(self) -> None:
        self._responses.close()


class FireboxClient:
    """Blocking client for both services; the methods mirror AsyncFireboxClient's.

    Use as a context manager, or call `close()`.
    """

    def __init__(self, settings: ConnectionSettings | None = None, **overrides: Any) -> None:
        self._runner = _LoopThread()
        self._async = AsyncFireboxClient(settings, **overrides)
        self.settings = self._async.settings

    def target(self, service: Service) -> str:
        return self._async.target(service)

    def _run(self, coro: Awaitable[T]) -> T:
        return self._runner.run(coro)

    def _stream(self, source: AsyncIterator[T]) -> SyncStream[T]:
        return SyncStream(self._runner, source)

    def close(self) -> None:
        if not self._runner.loop.is_closed():
            self._run(self._async.close())
            self._runner.stop()

    def __enter__(self) -> FireboxClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def health(self, service: Service, name: str = "", deadline: float = 5.0) -> str:
        return self._run(self._async.health(service, name, deadline))

    # executor: workspaces
    def create_workspace(self, name: str = "", **kwargs: Any) -> ex.Workspace:
        return self._run(self._async.create_workspace(name, **kwargs))

    def create_workspace_response(self, name: str = "", **kwargs: Any) -> ex.CreateWorkspaceResponse:
        return self._run(self._async.create_workspace_response(name, **kwargs))

    def get_workspace(self, workspace_id: str, *, via: Service = "executor") -> ex.Workspace:
        return self._run(self._async.get_workspace(workspace_id, via=via))

    def list_workspaces(self, *, via: Service = "executor") -> list[ex.Workspace]:
        return self._run(self._async.list_workspaces(via=via))

    def find_workspace(self, id_or_name: str, *, via: Service = "executor") -> ex.Workspace | None:
        return self._run(self._async.find_workspace(id_or_name, via=via))

    def start_workspace(self, workspace_id: str) -> ex.Workspace:
        return self._run(self._async.start_workspace(workspace_id))

    def stop_workspace(self, workspace_id: str) -> ex.Workspace:
        return self._run(self._async.stop_workspace(workspace_id))

    def pause_workspace(self, workspace_id: str, *, via: Service = "executor") -> ex.Workspace:
        return self._run(self._async.pause_workspace(workspace_id, via=via))

    def resume_workspace(self, workspace_id: str, *, via: Service = "executor") -> ex.Workspace:
        return self._run(self._async.resume_workspace(workspace_id, via=via))

    def create_snapshot(self, workspace_id: str, name: str = "", *, via: Service = "executor") -> ex.Snapshot:
        return self._run(self._async.create_snapshot(workspace_id, name, via=via))

    def list_snapshots(self, workspace_id: str = "", *, via: Service = "executor") -> list[ex.Snapshot]:
        return self._run(self._async.list_snapshots(workspace_id, via=via))

    def delete_snapshot(self, snapshot_id: str, *, via: Service = "executor") -> None:
        self._run(self._async.delete_snapshot(snapshot_id, via=via))

    def delete_workspace(self, workspace_id: str, *, via: Service = "executor") -> None:
        self._run(self._async.delete_workspace(workspace_id, via=via))

    # executor: shell sessions and info
    def create_shell_session(self, workspace_id: str, session_id: str = "") -> ex.Session:
        return self._run(self._async.create_shell_session(workspace_id, session_id))

    def list_shell_sessions(self, workspace_id: str = "") -> list[ex.Session]:
        return self._run(self._async.list_shell_sessions(workspace_id))

    def close_shell_session(self, session_id: str) -> None:
        self._run(self._async.close_shell_session(session_id))

    def executor_info(self) -> ex.GetServerInfoResponse:
        return self._run(self._async.executor_info())

    # Execute
    def exec(self, workspace_id: str, **kwargs: Any) -> SyncExecCall:
        return SyncExecCall(self._runner, self._run(self._async.exec(workspace_id, **kwargs)))

    def run(self, workspace_id: str, *, stdin: bytes | None = None, **kwargs: Any) -> ExecResult:
        return self._run(self._async.run(workspace_id, stdin=stdin, **kwargs))

    # agent: sessions
    def create_session(self, title: str = "", **kwargs: Any) -> ag.Session:
        return self._run(self._async.create_session(title, **kwargs))

    def get_session(self, session_id: str, include_messages: bool = False) -> ag.GetSessionResponse:
        return self._run(self._async.get_session(session_id, include_messages))

    def list_sessions(self, page_size: int = 0, page_token: str = "") -> ag.ListSessionsResponse:
        return self._run(self._async.list_sessions(page_size, page_token))

    def iter_sessions(self, page_size: int = 100, limit: int | None = None) -> SyncStream[ag.Session]:
        return self._stream(self._async.iter_sessions(page_size, limit))

    def delete_session(self, session_id: str) -> None:
        self._run(self._async.delete_session(session_id))

    def clear_session(self, session_id: str) -> ag.ClearSessionResponse:
        return self._run(self._async.clear_session(session_id))

    def fork_session(self, session_id: str, message_id: str) -> ag.ForkSessionResponse:
        return self._run(self._async.fork_session(session_id, message_id))

    def rewind_session(self, session_id: str, message_id: str) -> ag.RewindSessionResponse:
        return self._run(self._async.rewind_session(session_id, message_id))

    def update_session(
        self,
        session_id: str,
        paths: list[str],
        *,
        title: str = "",
        settings: ag.SessionSettings | None = None,
    ) -> ag.Session:
        return self._run(self._async.update_session(session_id, paths, title=title, settings=settings))

    # agent: runs
    def send_message(
        self,
        session_id: str,
        content: str,
        on_conflict: ag.ConflictPolicy = ag.CONFLICT_POLICY_UNSPECIFIED,
        *,
        approval_policy: ag.ApprovalPolicy = ag.APPROVAL_POLICY_UNSPECIFIED,
        sandbox_mode: ag.SandboxMode = ag.SANDBOX_MODE_UNSPECIFIED,
        message_id: str = "",
    ) -> SyncStream[ag.RunEvent]:
        return self._stream(
            self._async.send_message(
                session_id,
                content,
                on_conflict,
                approval_policy=approval_policy,
                sandbox_mode=sandbox_mode,
                message_id=message_id,
            )
        )

    def stream_run(self, run_id: str, after_index: int = 0) -> SyncStream[ag.RunEvent]:
        return self._stream(self._async.stream_run(run_id, after_index))

    def cancel_run(self, run_id: str) -> ag.Run:
        return self._run(self._async.cancel_run(run_id))

    def get_run(self, run_id: str) -> ag.Run:
        return self._run(self._async.get_run(run_id))

    def list_runs(self, session_id: str, page_size: int = 0, page_token: str = "") -> ag.ListRunsResponse:
        return self._run(self._async.list_runs(session_id, page_size, page_token))

    def resolve_approval(
        self,
        run_id: str,
        tool_call_id: str,
        decision: ag.ApprovalDecision,
        *,
        reason: str = "",
        edited_command: str = "",
        always_allow_paths: bool = False,
    ) -> None:
        self._run(
            self._async.resolve_approval(
                run_id,
                tool_call_id,
                decision,
                reason=reason,
                edited_command=edited_command,
                always_allow_paths=always_allow_paths,
            )
        )

    # agent: history
    def compact_session(self, session_id: str) -> SyncStream[ag.CompactSessionResponse]:
        return self._stream(self._async.compact_session(session_id))

    def edit_message(
        self, session_id: str, message_id: str, content: str, *, resend: bool = False
    ) -> SyncStream[ag.EditMessageResponse]:
        return self._stream(self._async.edit_message(session_id, message_id, content, resend=resend))

    # agent: stateless generation, feedback, info
    def generate(self, messages: Iterable[ag.Message], **kwargs: Any) -> SyncStream[ag.GenerateResponse]:
        return self._stream(self._async.generate(list(messages), **kwargs))

    def log_events(self, events: Iterable[tr.FeedbackEvent]) -> int:
        return self._run(self._async.log_events(list(events)))

    def agent_info(self) -> ag.GetServerInfoResponse:
        return self._run(self._async.agent_info())
