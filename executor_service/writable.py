"""Writable paths: the directories under /workspace that stay writable when the rest is not.

A policy's `writable_paths` are kept as normalized paths relative to /workspace ("src",
"docs/api"), sorted, with none inside another. Empty means no restriction: all of /workspace is
writable (unless the policy is read_only). The backends enforce them for every process (see
backends/mountns.py for Docker, sandbox_argv for bubblewrap); UploadFile checks them first so
that a refused upload names its path.
"""

from __future__ import annotations

from collections.abc import Iterable

from executor_service.files import WORKDIR, workspace_path
from firebox.common import errors

MAX_WRITABLE_PATHS = 32


def normalize_writable_paths(paths: Iterable[str], field: str = "policy.writable_paths") -> tuple[str, ...]:
    """The paths as stored: relative to /workspace, deduplicated, sorted, and without any that
    lie inside another. InvalidArgument for a path outside /workspace, `..`, or /workspace itself
    (an empty list already means all of it)."""
    paths = list(paths)
    if len(paths) > MAX_WRITABLE_PATHS:
        raise errors.InvalidArgument(field, f"at most {MAX_WRITABLE_PATHS} paths, got {len(paths)}")
    relative: set[str] = set()
    for index, path in enumerate(paths):
        absolute = workspace_path(path.strip(), f"{field}[{index}]")
        if absolute == WORKDIR:
            raise errors.InvalidArgument(
                f"{field}[{index}]", "is /workspace itself; leave writable_paths empty for all of it"
            )
        relative.add(absolute.removeprefix(WORKDIR + "/"))
    kept = [p for p in relative if not any(p.startswith(other + "/") for other in relative)]
    return tuple(sorted(kept))


def is_writable(writable_paths: Iterable[str], path: str) -> bool:
    """Whether a normalized absolute path under /workspace may be written under these paths."""
    paths = tuple(writable_paths)
    if not paths:
        return True
    relative = path.removeprefix(WORKDIR + "/")
    return any(relative == p or relative.startswith(p + "/") for p in paths)
