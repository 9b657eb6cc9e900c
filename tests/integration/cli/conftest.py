"""Fixtures of the CLI's integration tests: a real in-process executor on the docker backend
(the `firebox` child process talks to it over loopback), cleaned of its workspaces afterwards,
a real agent on the scripted fake provider, using that executor, and a real terminal (tmux)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.agent_server import running_agent
from tests.support.executor_server import running_executor_handle
from tests.support.fake_provider import FakeProvider
from tests.support.terminal import Terminal, tmux_terminal


@pytest.fixture(scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[object]:
    async with running_executor_handle(tmp_path_factory.mktemp("executor"), backend="docker") as running:
        try:
            yield running
        finally:
            for info in await running.workspaces.list():
                await running.workspaces.delete(info.id)


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider.start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture(scope="module")
async def agent(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeProvider, executor
) -> AsyncIterator[object]:
    directory: Path = tmp_path_factory.mktemp("agent")
    async with running_agent(directory, provider=fake.base_url, executor=executor.target) as running:
        yield running


@pytest.fixture
async def terminal() -> AsyncIterator[Terminal]:
    async with tmux_terminal() as opened:
        yield opened
