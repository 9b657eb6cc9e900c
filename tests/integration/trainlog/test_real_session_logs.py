"""The training log of a real session: both services as processes (the console scripts), a fake
model provider proposing shell commands, the real executor (Docker) running them, a client
reporting feedback. Every record written is parsed back into its proto, the fields a trainer
needs are checked, the logs are exported and the examples checked line by line, and no secret
reaches any file under the logs directories or the services' console output."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.dataset import export
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2
from tests.support.executor_server import REPO, ExecutorProcess, delete_workspaces, free_port, health_status
from tests.support.fake_provider import FakeProvider, shell_reply, text_reply

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

AUTH_TOKEN = "fbx-auth-tok-9f8e7d6c5b4a"
PROVIDER_KEY = "sk-fake-provider-key-0a1b2c3d"
DEPLOY_SECRET = "deploy-secret-value-77e1"
METADATA = (("authorization", f"Bearer {AUTH_TOKEN}"),)
FK = trace_pb2.FeedbackKind
RECORD_TYPES: dict[str, type[Message]] = {
    "executions": trace_pb2.ExecutionRecord,
    "generations": trace_pb2.GenerationRecord,
    "feedback": trace_pb2.FeedbackRecord,
}


class AgentProcess:
    """`firebox-agent` (the console script) as a child process."""

    def __init__(self, config_dir: Path, executor: str, provider: str, env: dict[str, str]) -> None:
        self.config_dir = config_dir
        self.target = f"127.0.0.1:{free_port()}"
        self.log_path = config_dir / "process-output.log"
        self.command = [
            str(REPO / ".venv" / "bin" / "firebox-agent"),
            *("--listen", self.target, "--config-dir", str(config_dir), "--executor", executor),
            *("--provider-base-url", provider, "--model", "fake-model", "--provider-retries", "0"),
        ]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")}
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command, env={**env, **self.env}, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            if health_status(self.target, timeout=1.0) == 1:  # SERVING
                return
            time.sleep(0.1)
        raise TimeoutError(f"agent did not become healthy:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Session:
    """What the scripted session did, for the checks."""

    state: Path
    agent_session_id: str
    generate_id: str
    rejected_generate_id: str


async def _run(
    stub: agent_pb2_grpc.AgentServiceStub, session_id: str, content: str
) -> list[agent_pb2.RunEvent]:
    call = stub.SendMessage(
        agent_pb2.SendMessageRequest(session_id=session_id, content=content), metadata=METADATA
    )
    events = [r.event async for r in call]
    assert events[-1].WhichOneof("event") == "run_completed", events[-1]
    return events


async def _generate(stub: agent_pb2_grpc.AgentServiceStub, prompt: str) -> str:
    request = agent_pb2.GenerateRequest(
        messages=[agent_pb2.Message(role=agent_pb2.ROLE_USER, content=prompt)], context_id="notebook-1"
    )
    responses = [r async for r in stub.Generate(request, metadata=METADATA)]
    assert responses[0].generation_id
    return responses[0].generation_id


@pytest.fixture(scope="module")
async def session(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Session]:
    state = tmp_path_factory.mktemp("state")
    fake = await FakeProvider.start()
    executor = ExecutorProcess(
        state / "executor", env={"FIREBOX_AUTH_TOKEN": AUTH_TOKEN, "FIREBOX_ENV_ALLOW": "DEPLOY_TOKEN"}
    )
    agent = AgentProcess(
        state / "agent",
        executor.target,
        fake.base_url,
        env={"FIREBOX_AUTH_TOKEN": AUTH_TOKEN, "OPENAI_API_KEY": PROVIDER_KEY},
    )
    try:
        await asyncio.to_thread(executor.start)
        await asyncio.to_thread(agent.start)
        channel = grpc.aio.insecure_channel(agent.target)
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        created = await stub.CreateSession(
            agent_pb2.CreateSessionRequest(title="trainlog"), metadata=METADATA
        )
        sid = created.session.id

        # A run whose command succeeds, then one whose command fails.
        fake.script(shell_reply("echo hello from the model", call_id="call_ok"), text_reply("done"))
        await _run(stub, sid, "say hello")
        fake.script(shell_reply("ls /no-such-dir", call_id="call_fail"), text_reply("it failed"))
        await _run(stub, sid, "list a missing directory")

        # A notebook: a stateless suggestion the person edits and runs (with a secret variable)...
        fake.script(text_reply("echo $HOME"))
        generate_id = await _generate(stub, "show my home")
        edited = 'echo "home is $HOME"; echo "token: $DEPLOY_TOKEN"'
        events = [
            trace_pb2.FeedbackEvent(
                kind=FK.FEEDBACK_KIND_SUGGESTION_SHOWN,
                known_id="cell-1",
                context_id="notebook-1",
                generation_id=generate_id,
                suggested_text="echo $HOME",
            ),
            trace_pb2.FeedbackEvent(
                kind=FK.FEEDBACK_KIND_SUGGESTION_EDITED,
                known_id="cell-1",
                context_id="notebook-1",
                edited_text=edited,
            ),
        ]
        for event in events:
            event.client_time.GetCurrentTime()
            await stub.LogEvents(agent_pb2.LogEventsRequest(events=[event]), metadata=METADATA)
        workspace = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=sid), metadata=METADATA)
        call = stub.Execute(metadata=METADATA)
        await call.write(
            executor_pb2.ExecuteRequest(
                workspace_id=workspace.session.workspace_id,
                script=edited,
                known_id="cell-1",
                known_name="home",
                env={"DEPLOY_TOKEN": DEPLOY_SECRET},
            )
        )
        await call.done_writing()
        outputs = [r async for r in call]
        assert outputs[-1].exit_code.value == 0

        # ... and one they reject.
        fake.script(text_reply("rm -rf /"))
        rejected_id = await _generate(stub, "free some disk space")
        for kind, text in (
            (FK.FEEDBACK_KIND_SUGGESTION_SHOWN, "rm -rf /"),
            (FK.FEEDBACK_KIND_SUGGESTION_REJECTED, ""),
        ):
            await stub.LogEvents(
                agent_pb2.LogEventsRequest(
                    events=[
                        trace_pb2.FeedbackEvent(
                            kind=kind,
                            known_id="cell-2",
                            context_id="notebook-1",
                            generation_id=rejected_id if text else "",
                            suggested_text=text,
                        )
                    ]
                ),
                metadata=METADATA,
            )
        await channel.close()
        await asyncio.to_thread(delete_workspaces, executor.target, AUTH_TOKEN)
        # Graceful stops flush the training logs.
        await asyncio.to_thread(agent.stop)
        await asyncio.to_thread(executor.terminate)
        yield Session(state, sid, generate_id, rejected_id)
    finally:
        await asyncio.to_thread(agent.stop)
        await asyncio.to_thread(executor.kill)
        await fake.stop()


def _records(state: Path, kind: str) -> list[Any]:
    """Every line of every file of a kind, parsed strictly (unknown fields are an error)."""
    out = []
    for path in sorted(state.rglob(f"{kind}-*.jsonl")):
        for line in path.read_text().splitlines():
            out.append(json_format.Parse(line, RECORD_TYPES[kind]()))
    return out


def _all_files(state: Path) -> Iterator[Path]:
    """Every file under the services' config dirs: logs, the agent's SQLite database and its WAL."""
    for path in state.rglob("*"):
        if path.is_file():
            yield path


def test_execution_records_carry_what_a_trainer_needs(session: Session) -> None:
    records = {r.request.tool_call_id or r.request.known_id: r for r in _records(session.state, "executions")}
    assert set(records) == {"call_ok", "call_fail", "cell-1"}
    ok = records["call_ok"]
    assert ok.request.script == "echo hello from the model"
    assert ok.request.agent_session_id == session.agent_session_id and ok.request.run_id
    assert ok.execution_id and ok.workspace_id and ok.backend == executor_pb2.BACKEND_DOCKER and ok.isolation
    assert (ok.exit_code, ok.end_reason) == (0, executor_pb2.END_REASON_EXITED)
    assert ok.stdout_head == "hello from the model\n" and ok.stdout_bytes == len(ok.stdout_head)
    assert ok.end_time.ToNanoseconds() >= ok.start_time.ToNanoseconds() > 0
    failed = records["call_fail"]
    assert failed.exit_code != 0 and "no-such-dir" in failed.stderr_head
    cell = records["cell-1"]
    assert (cell.request.known_id, cell.request.known_name) == ("cell-1", "home")
    assert cell.request.env["DEPLOY_TOKEN"] == "[REDACTED]"


def test_generation_records_carry_what_a_trainer_needs(session: Session) -> None:
    records = _records(session.state, "generations")
    run_steps = [g for g in records if g.session_id == session.agent_session_id]
    assert len(run_steps) == 4  # two runs, each a tool call then an answer
    first = min(run_steps, key=lambda g: g.start_time.ToNanoseconds())
    assert first.generation_id and first.run_id and first.model == "fake-model" and first.step == 1
    assert [(m.role, m.content) for m in first.messages if m.role == "user"] == [("user", "say hello")]
    (call,) = first.tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == (
        "call_ok",
        "shell",
        {"command": "echo hello from the model"},
    )
    assert first.usage.input_tokens > 0 and first.latency.ToNanoseconds() > 0 and not first.error
    offered = [t.name for t in first.tools]
    assert offered[:3] == ["shell", "read_file", "write_file"], (
        "the tools offered must be logged for tool-call training"
    )
    assert all(json.loads(t.parameters).get("type") == "object" for t in first.tools)
    answer = next(g for g in run_steps if g.run_id == first.run_id and g.step == 2)
    assert answer.completion == "done" and answer.messages[-1].role == "tool"
    stateless = {g.generation_id: g for g in records if g.context_id == "notebook-1"}
    assert stateless[session.generate_id].completion == "echo $HOME"
    assert stateless[session.rejected_generate_id].completion == "rm -rf /"


def test_feedback_records_carry_what_a_trainer_needs(session: Session) -> None:
    records = _records(session.state, "feedback")
    kinds = [(r.event.kind, r.event.known_id) for r in records]
    assert kinds == [
        (FK.FEEDBACK_KIND_SUGGESTION_SHOWN, "cell-1"),
        (FK.FEEDBACK_KIND_SUGGESTION_EDITED, "cell-1"),
        (FK.FEEDBACK_KIND_SUGGESTION_SHOWN, "cell-2"),
        (FK.FEEDBACK_KIND_SUGGESTION_REJECTED, "cell-2"),
    ]
    for r in records:
        assert r.feedback_id and r.source == "client" and r.server_time.seconds > 0
        assert r.event.context_id == "notebook-1"
    assert records[0].event.generation_id == session.generate_id
    assert records[0].event.client_time.seconds > 0
    assert records[1].event.edited_text.startswith('echo "home is $HOME"')


def test_export_gives_one_labelled_example_per_suggestion(session: Session, tmp_path: Path) -> None:
    summary = export(session.state, tmp_path / "examples.jsonl")
    assert not summary.skipped.get("corrupt_line") and not summary.skipped.get("truncated_line")
    lines = (tmp_path / "examples.jsonl").read_text().splitlines()
    examples = [json.loads(line) for line in lines]
    # In time order: the run's tool call, the edited notebook cell, the rejected one; the failed
    # command is left out by default.
    assert [(e["label"], e["exit_code"]) for e in examples] == [
        ("accepted", 0),
        ("edited", 0),
        ("rejected", None),
    ]
    assert summary.skipped["failed_execution"] == 1
    ok, cell, rejected = examples
    assert ok["ids"]["tool_call_id"] == "call_ok" and ok["ids"]["session_id"] == session.agent_session_id
    assert ok["messages"][-2]["role"] == "user" and ok["messages"][-2]["content"] == "say hello"
    (call,) = ok["messages"][-1]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"command": "echo hello from the model"}
    assert ok["tools"][0]["function"]["name"] == "shell"
    assert cell["ids"]["known_id"] == "cell-1" and cell["ids"]["generation_id"] == session.generate_id
    assert cell["messages"][0] == {"role": "user", "content": "show my home"}
    assert cell["messages"][-1]["content"].startswith('echo "home is $HOME"')
    assert cell["suggested"] == "echo $HOME"
    assert rejected["ids"]["known_id"] == "cell-2" and rejected["messages"][-1]["content"] == "rm -rf /"
    with_failed = export(session.state, tmp_path / "all.jsonl", include_failed=True)
    failed = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()][1]
    assert failed["ids"]["tool_call_id"] == "call_fail" and failed["exit_code"] not in (0, None)
    assert with_failed.examples_written == 4


def test_no_secret_reaches_any_log_file_or_console(session: Session) -> None:
    files = list(_all_files(session.state))
    names = {p.name for p in files}
    assert {"process-output.log"} <= names and any(n.startswith("executions-") for n in names)
    assert any(n.endswith((".db", ".sqlite", ".sqlite3")) for n in names), sorted(names)
    for path in files:
        data = path.read_bytes()
        for secret in (AUTH_TOKEN, PROVIDER_KEY, DEPLOY_SECRET):
            assert secret.encode() not in data, f"{secret[:6]}… found in {path.relative_to(session.state)}"
