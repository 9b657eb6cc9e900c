"""A devcontainer.json read for CreateWorkspace, with its build context when it has a Dockerfile.

The devcontainer spec resolves `build.dockerfile` and `build.context` against the folder the
devcontainer.json is in (`context` defaults to that folder). The context goes to the executor as a
gzip'd tar archive made reproducibly (entries sorted, times, owners and the gzip header zeroed),
so the same files give the same bytes and the executor's image cache, keyed by them, is hit.
A `.dockerignore` at the context's top leaves out what it names, as `docker build` does (the
Docker SDK's reading of its patterns: globs with `**`, `!` exceptions; the Dockerfile and the
.dockerignore itself are always sent).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

from docker.utils.build import exclude_paths

from firebox.common.jsonc import strip_jsonc
from firebox.executor.v1 import executor_pb2 as ex

# What one request may carry of a build context (the message limit is 16 MiB).
MAX_CONTEXT_BYTES = 15 * 1024 * 1024


class DevcontainerError(ValueError):
    """The devcontainer folder cannot be sent as it is; the message says why."""


def find(path: str | Path) -> Path:
    """`path` itself when it is a file, else its .devcontainer/devcontainer.json or devcontainer.json."""
    path = Path(path)
    for candidate in (path, path / ".devcontainer" / "devcontainer.json", path / "devcontainer.json"):
        if candidate.is_file():
            return candidate
    raise DevcontainerError(f"no devcontainer.json at {path}")


def load(path: str | Path) -> ex.Devcontainer:
    """The devcontainer.json at `path` (see `find`); with build.dockerfile, its build context
    and the Dockerfile's place in it. A file the executor would refuse goes as it is: the
    executor says what is wrong with it."""
    file = find(path)
    text = file.read_text()
    message = ex.Devcontainer(json=text)
    try:
        raw = json.loads(strip_jsonc(text))
    except ValueError:
        return message
    build = raw.get("build") if isinstance(raw, dict) else None
    if not isinstance(build, dict) or not isinstance(build.get("dockerfile"), str):
        return message
    folder = file.parent
    context = (folder / str(build.get("context") or ".")).resolve()
    dockerfile = (folder / build["dockerfile"]).resolve()
    if not context.is_dir():
        raise DevcontainerError(f"build.context {context} is not a directory")
    try:
        message.dockerfile = dockerfile.relative_to(context).as_posix()
    except ValueError:
        raise DevcontainerError(
            f"build.dockerfile {dockerfile} lies outside build.context {context}"
        ) from None
    message.context = archive(context, message.dockerfile)
    return message


def archive(directory: Path, dockerfile: str | None = None) -> bytes:
    """The directory as a reproducible gzip'd tar of relative paths (symlinks kept as links),
    without what its .dockerignore names (`dockerfile`, its path inside, is always kept)."""
    patterns = _dockerignore(directory)
    kept = exclude_paths(str(directory), patterns, dockerfile=dockerfile) if patterns else None
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in _walk(directory):
            if kept is not None and path.relative_to(directory).as_posix() not in kept:
                continue
            info = tar.gettarinfo(str(path), arcname=path.relative_to(directory).as_posix())
            if info is None:  # a socket: nothing a build can use
                continue
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if buffer.tell() > MAX_CONTEXT_BYTES:
                raise DevcontainerError(
                    f"the build context {directory} is over {MAX_CONTEXT_BYTES >> 20} MiB compressed; "
                    "point build.context at a smaller folder"
                )
    return buffer.getvalue()


def _dockerignore(directory: Path) -> list[str]:
    """The patterns of the context's .dockerignore (none when it has none)."""
    try:
        text = (directory / ".dockerignore").read_text()
    except FileNotFoundError:
        return []
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _walk(directory: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        base = Path(root)
        found.extend(base / name for name in dirs)
        found.extend(base / name for name in sorted(files))
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix())
