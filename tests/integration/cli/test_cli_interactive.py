"""Interactive `firebox chat` on a real terminal (tmux): the prompt loop, streaming answers,
Ctrl-C cancelling the run in progress while the conversation goes on, and approval prompts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.cli.test_cli_approvals import exists, tool_result
from tests.support.agent_server import running_agent
from tests.support.cli import FIREBOX
from tests.support.fake_provider import FakeProvider, Hold, Reply, chunk, shell_reply, text_reply
from tests.support.terminal import Terminal

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)"),
]


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


async def test_approval_prompt_approves_denies_edits_and_ctrl_c_cancels(
    agent, executor, fake, terminal: Terminal
) -> None:
    fake.reset()
    fake.script(
        shell_reply("touch /workspace/tty-cancelled", call_id="c0"),
        shell_reply("touch /workspace/tty-approved", call_id="c1"),
        text_reply("done one"),
        shell_reply("touch /workspace/tty-denied", call_id="c2"),
        text_reply("done two"),
        shell_reply("touch /workspace/tty-suggested", call_id="c3"),
        text_reply("done three"),
    )
    await terminal.keys(
        f"env FIREBOX_AGENT={agent.target} FIREBOX_EXECUTOR={executor.target} {FIREBOX} chat "
        "--approval always; echo exit-status=$?",
        "Enter",
    )
    await terminal.wait_for("you>")
    # Ctrl-C at the prompt cancels the run.
    await terminal.keys("cancel me", "Enter")
    await terminal.wait_for("approve? [y]es")
    await terminal.keys("C-c")
    await terminal.wait_for("run cancelled")
    await terminal.wait_for("you>", count=2)

    await terminal.keys("approve this", "Enter")
    screen = await terminal.wait_for("approve? [y]es", count=2)
    assert "⏸ approval needed: shell: touch /workspace/tty-approved" in screen
    await terminal.keys("y", "Enter")
    await terminal.wait_for("done one")
    await terminal.wait_for("you>", count=3)

    await terminal.keys("deny this", "Enter")
    await terminal.wait_for("approve? [y]es", count=3)
    await terminal.keys("n", "Enter")
    await terminal.wait_for("reason (told to the model")
    await terminal.keys("too risky", "Enter")
    await terminal.wait_for("done two")
    await terminal.wait_for("you>", count=4)

    await terminal.keys("edit this", "Enter")
    await terminal.wait_for("approve? [y]es", count=4)
    await terminal.keys("e", "Enter")
    # The suggested command is already typed at the prompt: add to its end.
    await terminal.wait_for("command > touch /workspace/tty-suggested")
    await terminal.keys("-edited", "Enter")
    screen = await terminal.wait_for("done three")
    assert "✎ approved as edited: touch /workspace/tty-suggested-edited" in screen
    await terminal.wait_for("you>", count=5)
    await terminal.keys("/exit", "Enter")
    screen = await terminal.wait_for("exit-status=", count=2)
    assert "exit-status=0" in screen and "Traceback" not in screen

    session_id = re.search(r"session (ses-\w+)", screen).group(1)  # type: ignore[union-attr]
    assert tool_result(fake, "c2") == "denied by the user: too risky"
    assert await exists(agent, executor, session_id, "/workspace/tty-approved")
    assert not await exists(agent, executor, session_id, "/workspace/tty-denied")
    assert await exists(agent, executor, session_id, "/workspace/tty-suggested-edited")
    assert not await exists(agent, executor, session_id, "/workspace/tty-suggested")
    assert not await exists(agent, executor, session_id, "/workspace/tty-cancelled")
