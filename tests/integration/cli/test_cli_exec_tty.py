"""`firebox exec -t` on a real terminal (tmux): the person's terminal is connected to a terminal
in the workspace — a prompt, keys, Ctrl-C for the remote foreground job, and the window size."""

from __future__ import annotations

import shutil

import pytest

from tests.support.cli import FIREBOX
from tests.support.terminal import Terminal, tmux

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)"),
]


async def test_exec_t_runs_an_interactive_shell_with_ctrl_c_and_the_window_size(
    executor, terminal: Terminal
) -> None:
    await terminal.keys(
        f"env FIREBOX_EXECUTOR={executor.target} {FIREBOX} exec -t -e PS1='rem''ote$ ' -- sh -i; echo exit-status=$?",
        "Enter",
    )
    await terminal.wait_for("remote$", limit=60)
    await terminal.keys("test -t 0 && echo remote-tty-$((1 + 1))", "Enter")
    await terminal.wait_for("remote-tty-2")
    # Ctrl-C reaches the remote foreground job, not firebox: the shell prompts again.
    await terminal.keys("sleep 300", "Enter")
    await terminal.wait_for("sleep 300")
    await terminal.keys("C-c")
    await terminal.wait_for("remote$", count=3)
    # The remote terminal follows the window's size.
    await tmux("resize-window", "-t", terminal.name, "-x", "100", "-y", "30")
    await terminal.keys("stty size", "Enter")
    await terminal.wait_for("30 100")
    await terminal.keys("exit 3", "Enter")
    await terminal.wait_for("exit-status=3")
