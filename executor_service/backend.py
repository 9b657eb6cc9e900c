"""The interface every workspace backend implements, and the plain data it trades in.

A backend owns the isolation mechanism (a Docker container, a bubblewrap sandbox) and knows
nothing of gRPC. Shell sessions talk to a process in a workspace through a `ShellTransport`,
the same way on every backend.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Protocol

# Backend names, as in config and logs.
DOCKER = "docker"
BWRAP = "bwrap"

# Workspace states: Docker's seven, lower-case as the engine reports them.
STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")

# Labels that mark a container as a Firebox workspace.
LABEL_MANAGED = "dev.firebox.managed"
LABEL_ID = "dev.firebox.workspace-id"
LABEL_NAME = "dev.firebox.workspace-name"
# Marks a warm-pool member; the value is its pool key (image + policy it was made for).
LABEL_POOL = "dev.firebox.pool"

STDOUT = 1
STDERR = 2


@dataclass(frozen=True)
class Policy:
    """An isolation policy with every field decided (see IsolationPolicy in executor.proto)."""

    network: bool = False
    read_only: bool = False
    user: str = "1000:1000"
    memory_bytes: int = 512 * 1024 * 1024
    pids_limit: int = 256
    cpu_millis: int = 1000
    capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = True
    read_only_root: bool = True
    tmp_bytes: int = 64 * 1024 * 1024
    # Size limit of /workspace; 0: unlimited.
    disk_bytes: int = 0

    def with_overrides(self, **overrides: object) -> Policy:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class WorkspaceSpec:
    """What a client asked for, validated, with the policy decided."""

    id: str
    name: str
    image: str
    policy: Policy
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class WorkspaceInfo:
    """A workspace as the backend sees it now."""

    id: str
    name: str
    image: str
    # One of STATES, read from the engine.
    state: str
    backend: str
    policy: Policy
    # One line for people: what isolation is in force.
    isolation: str
    created: dt.datetime
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # Set only on a warm-pool member nobody has taken yet: the key of the pool it belongs to.
    pool_key: str = ""


class ShellTransport(Protocol):
    """A byte pipe to one process in a workspace: its stdin, and its stdout/stderr as chunks."""

    async def write(self, data: bytes) -> None:
        """Write to the process's stdin."""

    async def read(self) -> tuple[int, bytes] | None:
        """The next chunk as (STDOUT or STDERR, bytes); None once both streams are closed."""

    async def kill_strays(self) -> int:
        """Kill whatever the process's finished commands left running, however they detached
        (setsid, a cleared environment), keeping the process and its direct children; how many
        were killed. 0 where the transport cannot tell (then they go at close)."""

    async def close(self) -> None:
        """Close stdin and the streams, and make sure the process is gone (with all it started)."""


class WorkspaceBackend(Protocol):
    """Creates and runs workspaces. Raises firebox.common.errors for anything a client caused."""

    name: str

    async def create(self, spec: WorkspaceSpec) -> WorkspaceInfo: ...

    async def get(self, workspace_id: str) -> WorkspaceInfo: ...

    async def list(self) -> list[WorkspaceInfo]: ...

    async def start(self, workspace_id: str) -> WorkspaceInfo: ...

    async def stop(self, workspace_id: str) -> WorkspaceInfo: ...

    async def delete(self, workspace_id: str) -> None: ...

    async def open_shell(
        self, workspace: WorkspaceInfo, argv: list[str], env: dict[str, str], *, session: bool = False
    ) -> ShellTransport:
        """Start `argv` in the workspace (working directory /workspace, as the policy's user, with
        exactly `env` plus PATH/HOME) and return a transport to it. `session`: a long-lived
        session shell, for which a backend may use a faster path."""
        ...

    async def oom_kills(self, workspace: WorkspaceInfo) -> int | None:
        """How many processes the workspace's memory limit has killed so far; None if unknown."""
        ...

    async def close(self) -> None:
        """Release engine connections; workspaces keep running."""
        ...
