"""A .devcontainer/devcontainer.json, read into what CreateWorkspace needs.

Editors write it as JSON with comments and trailing commas (JSONC); both are removed here, outside
strings, before the JSON parser sees it. Only the keys Firebox acts on are accepted; any other is
refused, listed, so that nothing a user relies on is silently ignored. `name`, `customizations`
and `$schema` are for the editor and change nothing in the container: accepted, unused.
"""

from __future__ import annotations

import asyncio
import io
import json
import lzma
import posixpath
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from executor_service.backend import BuildSpec
from firebox.common import errors
from firebox.common.jsonc import strip_jsonc

MAX_BYTES = 64 * 1024
WORKDIR = "/workspace"
SUPPORTED = frozenset(
    {
        "image",
        "build",
        "containerEnv",
        "remoteEnv",
        "containerUser",
        "remoteUser",
        "workspaceFolder",
        "onCreateCommand",
        "postCreateCommand",
        "name",
        "customizations",
        "$schema",
    }
)
# In the order the devcontainer spec runs them at create.
LIFECYCLE = ("onCreateCommand", "postCreateCommand")
FIELD = "devcontainer"
BUILD_KEYS = frozenset({"dockerfile", "context", "args", "target"})
# A build context may come compressed (16 MiB in a message); what it unpacks to is bounded too.
CONTEXT_UNPACKED_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Command:
    """One lifecycle command: shell text, or an argv run without a shell."""

    name: str
    script: str = ""
    argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class Build:
    """build.*: the Dockerfile (a path inside the context the client sent), build args, target."""

    dockerfile: str
    args: dict[str, str] = field(default_factory=dict)
    target: str = ""


@dataclass(frozen=True)
class DevcontainerConfig:
    # Empty when `build` makes the image.
    image: str
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    commands: tuple[Command, ...] = ()
    build: Build | None = None


def parse(text: str, dockerfile_in_context: str = "") -> DevcontainerConfig:
    """The config, or InvalidArgument saying what is wrong (unsupported keys listed).
    `dockerfile_in_context`: where the client found build.dockerfile inside the context it sent."""
    if len(text.encode()) > MAX_BYTES:
        raise errors.InvalidArgument(FIELD, f"devcontainer.json larger than {MAX_BYTES} bytes")
    try:
        raw = json.loads(strip_jsonc(text))
    except ValueError as exc:
        raise errors.InvalidArgument(FIELD, f"not valid JSON (with comments): {exc}") from None
    if not isinstance(raw, dict):
        raise errors.InvalidArgument(FIELD, "devcontainer.json must be an object")
    unsupported = sorted(key for key in raw if key not in SUPPORTED)
    if unsupported:
        hint = " (write build.dockerfile and build.context)"
        raise errors.InvalidArgument(
            FIELD,
            f"unsupported key(s): {', '.join(unsupported)}"
            + (hint if "dockerFile" in unsupported or "context" in unsupported else ""),
        )
    image = raw.get("image", "")
    build = _build(raw["build"], dockerfile_in_context) if "build" in raw else None
    if build is not None and image:
        raise errors.InvalidArgument(FIELD, "give image or build, not both")
    if build is None and (not isinstance(image, str) or not image):
        raise errors.InvalidArgument(
            f"{FIELD}.image", "required (or build): the image to make the workspace from"
        )
    folder = raw.get("workspaceFolder", WORKDIR)
    if folder != WORKDIR:
        raise errors.InvalidArgument(
            f"{FIELD}.workspaceFolder", f"workspaces keep their files at {WORKDIR}, got {folder!r}"
        )
    env = {**_strings(raw, "containerEnv"), **_strings(raw, "remoteEnv")}
    user = raw.get("remoteUser", raw.get("containerUser"))
    if user is not None and (not isinstance(user, str) or not user):
        raise errors.InvalidArgument(f"{FIELD}.remoteUser", "a user name or UID[:GID]")
    commands = tuple(command for key in LIFECYCLE if (command := _command(raw, key)) is not None)
    return DevcontainerConfig(image=image, env=env, user=user, commands=commands, build=build)


def _build(raw: Any, dockerfile_in_context: str) -> Build:
    if not isinstance(raw, dict):
        raise errors.InvalidArgument(f"{FIELD}.build", "an object (dockerfile, context, args, target)")
    unknown = sorted(key for key in raw if key not in BUILD_KEYS)
    if unknown:
        raise errors.InvalidArgument(f"{FIELD}.build", f"unsupported key(s): {', '.join(unknown)}")
    for key in ("dockerfile", "context", "target"):
        if key in raw and not isinstance(raw[key], str):
            raise errors.InvalidArgument(f"{FIELD}.build.{key}", "a string")
    written = raw.get("dockerfile", "")
    if not written:
        raise errors.InvalidArgument(f"{FIELD}.build.dockerfile", "required: the Dockerfile to build")
    dockerfile = posixpath.normpath(dockerfile_in_context or written)
    if dockerfile.startswith(("/", "../")) or dockerfile == "..":
        raise errors.InvalidArgument(
            f"{FIELD}.build.dockerfile",
            "must lie inside the build context (the CLI works out its place when it sends the folder)",
        )
    args = _strings(raw, "args", f"{FIELD}.build")
    return Build(dockerfile=dockerfile, args=args, target=raw.get("target", ""))


def _strings(raw: dict[str, Any], key: str, where: str = FIELD) -> dict[str, str]:
    value = raw.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise errors.InvalidArgument(f"{where}.{key}", "an object of strings")
    return dict(value)


def _command(raw: dict[str, Any], key: str) -> Command | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return Command(key, script=value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return Command(key, argv=tuple(value))
    raise errors.InvalidArgument(
        f"{FIELD}.{key}",
        "a command string or an argv array (the object form, parallel commands, is not supported)",
    )


async def build_spec(build: Build, context: bytes) -> BuildSpec:
    """What to build: InvalidArgument unless `context` is a tar archive holding the Dockerfile
    and unpacking to at most CONTEXT_UNPACKED_BYTES."""
    if not context:
        raise errors.InvalidArgument(
            f"{FIELD}.context",
            "required with build: the build context as a tar archive (the CLI sends the folder)",
        )
    problem = await asyncio.to_thread(_check_context, context, build.dockerfile)
    if problem:
        raise errors.InvalidArgument(f"{FIELD}.context", problem)
    return BuildSpec(context=context, dockerfile=build.dockerfile, args=build.args, target=build.target)


def _check_context(context: bytes, dockerfile: str) -> str:
    """What is wrong with the archive, or "" when it holds the Dockerfile and is not too big."""
    found, unpacked = False, 0
    try:
        with tarfile.open(fileobj=io.BytesIO(context), mode="r:*") as archive:
            for member in archive:
                unpacked += member.size
                if unpacked > CONTEXT_UNPACKED_BYTES:
                    return f"the build context unpacks to more than {CONTEXT_UNPACKED_BYTES >> 20} MiB"
                found = found or (posixpath.normpath(member.name) == dockerfile and member.isfile())
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError):
        return "not a tar archive (gzip allowed)"
    return "" if found else f"the build context holds no {dockerfile[:200]} (build.dockerfile)"
