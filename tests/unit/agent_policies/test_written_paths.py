"""Which paths a shell command names as write targets, for approvals of writes outside a
session's writable paths."""

from __future__ import annotations

import pytest

from agent_service.approvals import written_paths
from agent_service.tools import paths_written_outside


@pytest.mark.parametrize(
    ("command", "paths"),
    [
        ("touch a b", ["/workspace/a", "/workspace/b"]),
        ("echo hi > docs/x.md", ["/workspace/docs/x.md"]),
        ("echo hi >> /workspace/y 2> err.log", ["/workspace/y", "/workspace/err.log"]),
        ("cd src && mkdir -p new/deep", ["/workspace/src/new/deep"]),
        ("cp a.txt b/c.txt", ["/workspace/b/c.txt"]),
        ("cat x | tee out/log", ["/workspace/out/log"]),
        ("FOO=1 mv a b", ["/workspace/a", "/workspace/b"]),
        ("dd if=/dev/zero of=disk.img", ["/workspace/disk.img"]),
        ("chmod +x run.sh", ["/workspace/run.sh"]),
        ("a=1\ntouch n", ["/workspace/n"]),
        # Reads, and writes outside /workspace, are not the workspace's business.
        ("ls -la 2>/dev/null", []),
        ("echo x > /tmp/z", []),
        ("cd /tmp; touch q", []),
        ("cat <in.txt", []),
        ("echo 'unterminated", []),
    ],
)
def test_written_paths_are_the_targets_the_command_names(command: str, paths: list[str]) -> None:
    assert written_paths(command) == paths


def test_only_paths_outside_the_writable_ones_count_and_none_without_writable_paths() -> None:
    command = {"command": "touch src/a docs/b"}
    assert paths_written_outside("shell", command, ("src",)) == ("/workspace/docs/b",)
    assert paths_written_outside("shell", command, ()) == ()
    assert paths_written_outside("write_file", {"path": "src/x/y.txt"}, ("src",)) == ()
    assert paths_written_outside("write_file", {"path": "/workspace/top.txt"}, ("src",)) == (
        "/workspace/top.txt",
    )
    assert paths_written_outside("read_file", {"path": "docs/b"}, ("src",)) == ()
