"""Interactive `firebox chat` on a real terminal (tmux): the prompt loop, streaming answers, and
Ctrl-C cancelling the run in progress while the conversation goes on."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.agent_server import running_agent
from tests.support.cli import FIREBOX
from tests.support.fake_provider import FakeProvider, Hold, Reply, chunk, text_reply

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)"),
]


async def tmux(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "tmux", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


class Terminal:
    """A detached tmux session running one shell command."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def keys(self, *keys: str) -> None:
        await tmux("send-keys", "-t", self.name, *keys)

    async def screen(self) -> str:
        return await tmux("capture-pane", "-p", "-t", self.name, "-S", "-200")

    async def wait_for(self, text: str, count: int = 1, limit: float = 30.0) -> str:
        """The screen once `text` shows on it `count` times."""
        screen = ""
        try:
            async with asyncio.timeout(limit):
                while True:
                    screen = await self.screen()
                    if screen.count(text) >= count:
                        return screen
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"{text!r} x{count} never showed; the screen:\n{screen}") from None


@pytest.fixture
async def terminal() -> AsyncIterator[Terminal]:
    name = f"firebox-test-{uuid.uuid4().hex[:8]}"
    await tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "50", "sh")
    try:
        yield Terminal(name)
    finally:
        await tmux("kill-session", "-t", name)


async def test_interactive_chat_streams_answers_and_ctrl_c_cancels_only_the_run(
    tmp_path: Path, executor, terminal: Terminal
) -> None:
    fake = await FakeProvider.start()
    try:
        async with running_agent(
            tmp_path / "agent", provider=fake.base_url, executor=executor.target
        ) as agent:
            fake.script(
                text_reply("first ", "answer"),
                Reply(
                    steps=[
                        chunk({"role": "assistant", "content": ""}),
                        chunk({"content": "half way"}),
                        Hold(),
                    ]
                ),
                text_reply("after ", "cancel"),
            )
            await terminal.keys(
                f"env FIREBOX_AGENT={agent.target} FIREBOX_EXECUTOR={executor.target} {FIREBOX} chat; "
                "echo exit-status=$?",
                "Enter",
            )
            await terminal.wait_for("you>")
            await terminal.keys("hello", "Enter")
            await terminal.wait_for("first answer")
            await terminal.wait_for("you>", count=2)

            await terminal.keys("take your time", "Enter")
            await terminal.wait_for("half way")
            await terminal.keys("C-c")
            await terminal.wait_for("run cancelled")
            await terminal.wait_for("you>", count=3)

            await terminal.keys("still there?", "Enter")
            await terminal.wait_for("after cancel")
            await terminal.wait_for("you>", count=4)
            await terminal.keys("/exit", "Enter")
            screen = await terminal.wait_for("exit-status=", count=2)  # the command line, then its output
            assert "exit-status=0" in screen
            assert "Traceback" not in screen
            assert len(fake.requests) == 3
            # The third request carries the whole conversation, the cancelled answer included.
            contents = [m.get("content") for m in fake.requests[2]["messages"]]
            assert "hello" in contents and "take your time" in contents and "still there?" in contents
    finally:
        await fake.stop()
