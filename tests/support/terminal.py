"""A real terminal for tests of interactive programs: a detached tmux session whose keys a test
types and whose screen it reads.

    async with tmux_terminal() as terminal:
        await terminal.keys("firebox chat", "Enter")
        await terminal.wait_for("you>")
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator


async def tmux(*args: str) -> str:
    """Run one tmux command; its stdout."""
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
        """Type `keys` (tmux key names such as Enter, C-c, End, or literal text)."""
        await tmux("send-keys", "-t", self.name, "--", *keys)

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


@contextlib.asynccontextmanager
async def tmux_terminal(width: int = 160, height: int = 50) -> AsyncIterator[Terminal]:
    """A fresh tmux session running `sh`, killed afterwards."""
    name = f"firebox-test-{uuid.uuid4().hex[:8]}"
    await tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), "sh")
    try:
        yield Terminal(name)
    finally:
        await tmux("kill-session", "-t", name)
