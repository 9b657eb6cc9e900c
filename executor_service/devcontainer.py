"""A .devcontainer/devcontainer.json, read into what CreateWorkspace needs.

Editors write it as JSON with comments and trailing commas (JSONC); both are removed here, outside
strings, before the JSON parser sees it. Only the keys Firebox acts on are accepted; any other is
refused, listed, so that nothing a user relies on is silently ignored. `name`, `customizations`
and `$schema` are for the editor and change nothing in the container: accepted, unused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from firebox.common import errors

MAX_BYTES = 64 * 1024
WORKDIR = "/workspace"
SUPPORTED = frozenset(
    {
        "image",
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


@dataclass(frozen=True)
class Command:
    """One lifecycle command: shell text, or an argv run without a shell."""

    name: str
    script: str = ""
    argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class DevcontainerConfig:
    image: str
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    commands: tuple[Command, ...] = ()


def parse(text: str) -> DevcontainerConfig:
    """The config, or InvalidArgument saying what is wrong (unsupported keys listed)."""
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
        hint = " (a Dockerfile build is not supported yet: build the image and name it in image)"
        raise errors.InvalidArgument(
            FIELD,
            f"unsupported key(s): {', '.join(unsupported)}"
            + (hint if "build" in unsupported or "dockerFile" in unsupported else ""),
        )
    image = raw.get("image")
    if not isinstance(image, str) or not image:
        raise errors.InvalidArgument(f"{FIELD}.image", "required: the image to make the workspace from")
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
    return DevcontainerConfig(image=image, env=env, user=user, commands=commands)


def _strings(raw: dict[str, Any], key: str) -> dict[str, str]:
    value = raw.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise errors.InvalidArgument(f"{FIELD}.{key}", "an object of strings")
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


def strip_jsonc(text: str) -> str:
    """`text` without // and /* */ comments and without trailing commas, strings untouched."""
    return _drop_trailing_commas(_drop_comments(text))


def _string_end(text: str, i: int) -> int:
    """The index after the string starting at `i` (a '"')."""
    j = i + 1
    while j < len(text) and text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    return j + 1


def _drop_comments(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _drop_trailing_commas(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
            continue
        if text[i] == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i += 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)
