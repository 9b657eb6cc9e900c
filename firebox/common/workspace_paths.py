"""Paths under /workspace, as both services read them: normalized, confined, and the writable
paths of a policy (IsolationPolicy.writable_paths, SessionSettings.writable_paths).

A policy's `writable_paths` are kept as normalized paths relative to /workspace ("src",
"docs/api"), sorted, with none inside another. Empty means no restriction: all of /workspace is
writable (unless the policy is read_only). The executor's backends enforce them for every
process; UploadFile checks them first so that a refused upload names its path, and the agent
checks them to know which tool calls write outside (and need an approval).
"""

from __future__ import annotations

from collections.abc import Iterable

from firebox.common import errors
from firebox.common.limits import quote

WORKDIR = "/workspace"
MAX_PATH_BYTES = 4096
MAX_WRITABLE_PATHS = 32


def workspace_path(path: str, field: str = "path", *, allow_root: bool = True) -> str:
    """`path` (relative to /workspace unless absolute) as a normalized absolute path inside
    /workspace. InvalidArgument for `..`, paths elsewhere, NUL bytes, an empty path."""
    if "\x00" in path:
        raise errors.InvalidArgument(field, "contains a NUL byte")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise errors.InvalidArgument(field, f"longer than {MAX_PATH_BYTES} bytes")
    absolute = path if path.startswith("/") else f"{WORKDIR}/{path}"
    parts = [part for part in absolute.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise errors.InvalidArgument(
            field, f"{quote(path, 256)}: '..' is not allowed; paths stay inside /workspace"
        )
    normalized = "/" + "/".join(parts)
    if normalized != WORKDIR and not normalized.startswith(WORKDIR + "/"):
        raise errors.InvalidArgument(
            field, f"{quote(path, 256)} is outside /workspace; paths stay inside /workspace"
        )
    if normalized == WORKDIR and not allow_root:
        raise errors.InvalidArgument(field, "name a file inside /workspace")
    return normalized


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
