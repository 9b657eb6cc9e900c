"""Start a real Firebox agent for a test, in this process, on a free loopback port.

    async with running_agent(tmp_path, provider=fake.base_url, executor=target) as agent:
        stub = agent_stub(agent)            # AgentServiceStub on a fresh channel
        agent.target, agent.store, agent.runs ...

The executor defaults to an address where nothing listens (tests that need one start a real
executor with tests.support.executor_server); the provider to none at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from agent_service.config import AgentConfig
from agent_service.server import Agent, start_agent
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.fake_provider import FakeProvider

# Nothing listens on port 9 (discard) on loopback here: an unreachable executor.
UNREACHABLE_EXECUTOR = "127.0.0.1:9"


def agent_config(
    config_dir: Path,
    provider: str = "",
    executor: str = UNREACHABLE_EXECUTOR,
    fake: FakeProvider | None = None,
    **overrides: Any,
) -> AgentConfig:
    """A config for tests: port 0, state under `config_dir`, fast retries and short timeouts.
    `fake` sets the provider (its base URL and wire format)."""
    if fake is not None:
        provider = fake.base_url
        overrides.setdefault("provider", fake.wire)
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "config_dir": Path(config_dir),
        "executor": executor,
        "provider_base_url": provider,
        "model": "fake-model" if provider else "",
        "retry_base_delay": 0.01,
        "retry_max_delay": 2.0,
        "idle_timeout": 5.0,
        "shutdown_grace": 1.0,
        "tool_timeout": 60.0,
    }
    values.update(overrides)
    return AgentConfig(**values)


@contextlib.asynccontextmanager
async def running_agent(
    config_dir: Path,
    provider: str = "",
    executor: str = UNREACHABLE_EXECUTOR,
    fake: FakeProvider | None = None,
    **overrides: Any,
) -> AsyncIterator[Agent]:
    """An in-process agent; yields the running Agent and stops it on exit."""
    agent = await start_agent(agent_config(config_dir, provider, executor, fake, **overrides))
    try:
        yield agent
    finally:
        await agent.stop(grace=0.5)


def agent_stub(agent: Agent | str, token: str | None = None) -> agent_pb2_grpc.AgentServiceStub:
    """A stub on a new channel to the agent (closed with the process; tests are short)."""
    target = agent if isinstance(agent, str) else agent.target
    channel = grpc.aio.insecure_channel(target)
    return agent_pb2_grpc.AgentServiceStub(channel)


def executor_stub(target: str) -> executor_pb2_grpc.ExecutorServiceStub:
    return executor_pb2_grpc.ExecutorServiceStub(grpc.aio.insecure_channel(target))


async def new_session(stub: agent_pb2_grpc.AgentServiceStub, **settings: object) -> agent_pb2.Session:
    response = await stub.CreateSession(
        agent_pb2.CreateSessionRequest(title="test", settings=agent_pb2.SessionSettings(**settings))  # type: ignore[arg-type]
    )
    return response.session


async def collect(call: object) -> list[agent_pb2.RunEvent]:
    """Every event of a SendMessage or StreamRun call, to its end."""
    return [response.event async for response in call]  # type: ignore[attr-defined]


def kinds(events: list[agent_pb2.RunEvent]) -> list[str]:
    return [e.WhichOneof("event") or "" for e in events]


def text_of(events: list[agent_pb2.RunEvent]) -> str:
    return "".join(e.text_delta.text for e in events if e.HasField("text_delta"))
