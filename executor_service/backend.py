"""The interface every workspace backend implements, and the plain data it trades in.

A backend owns the isolation mechanism (a Docker container, a bubblewrap sandbox) and knows
nothing of gRPC. Shell sessions talk to a process in a workspace through a `ShellTransport`,
the same way on every backend.
"""

from __future__ import annotations

import builtins
import datetime as dt
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

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
# The most a transport reads from a process at once (its one chunk of read-ahead).
READ_SIZE = 256 * 1024


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
    # Directories under /workspace (relative, normalized: executor_service/writable.py) that stay
    # writable while the rest of /workspace is read-only; empty = all of it writable.
    writable_paths: tuple[str, ...] = ()
    # Size limit of /workspace; 0: unlimited.
    disk_bytes: int = 0

    def with_overrides(self, **overrides: Any) -> Policy:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def workspace_access(policy: Policy) -> str:
    """What the policy lets processes do in /workspace, for the isolation line."""
    if policy.read_only:
        return "/workspace read-only"
    if policy.writable_paths:
        return "/workspace read-only but " + ", ".join(policy.writable_paths)
    return "/workspace writable"


@dataclass(frozen=True)
class WorkspaceSpec:
    """What a client asked for, validated, with the policy decided."""

    id: str
    name: str
    image: str
    policy: Policy
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # Set for a fork: the snapshot whose files and image it starts from.
    snapshot: SnapshotInfo | None = None
    # Seconds (0: never) the client asked for; None: the server's default (see expiry.py).
    idle_timeout: float | None = None
    ttl: float | None = None


# Takes output as it is produced; may be called from a worker thread, so it must be thread-safe.
OutputSink = Callable[[bytes], None]


@dataclass(frozen=True)
class BuildSpec:
    """An image to build: a build context (a tar archive, gzip allowed) and what to build in it."""

    context: bytes
    # The Dockerfile's path inside the context.
    dockerfile: str
    args: dict[str, str] = field(default_factory=dict)
    target: str = ""


@dataclass(frozen=True)
class BuiltImage:
    """What a build gave: the image's name, the tail of the build's output, and whether it was
    taken from the cache (nothing built)."""

    image: str
    log: str
    truncated: bool = False
    cached: bool = False


@dataclass(frozen=True)
class SnapshotInfo:
    """A workspace captured at one moment: what a fork starts from."""

    id: str
    name: str
    workspace_id: str
    # The image the workspace was made from; and what a fork is made from (on docker the
    # committed container, on bwrap the same image).
    image: str
    image_ref: str
    created: dt.datetime
    policy: Policy
    env: dict[str, str] = field(default_factory=dict)
    files_bytes: int = 0


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
    # Set on a fork: the snapshot it was made from.
    parent_snapshot_id: str = ""
    # As in WorkspaceSpec: None means the server's default.
    idle_timeout: float | None = None
    ttl: float | None = None


class ShellTransport(Protocol):
    """A byte pipe to one process in a workspace: its stdin, and its stdout/stderr as chunks.

    A transport may also have a data path: a FIFO the process can open at `data_path` (None:
    there is none), into which `write_data` puts raw bytes, at most `data_chunk` at a time, for a
    session's commands' stdin (much faster than through the process's stdin, see shell.py)."""

    data_path: str | None
    data_chunk: int

    async def write(self, data: bytes) -> None:
        """Write to the process's stdin."""

    async def write_data(self, data: bytes) -> None:
        """Write to the data path (Unavailable without one)."""

    async def read(self) -> tuple[int, bytes] | None:
        """The next chunk as (STDOUT or STDERR, bytes); None once both streams are closed."""

    async def kill_strays(self) -> int:
        """Kill whatever the process's finished commands left running, however they detached
        (setsid, a cleared environment), keeping the process and its direct children; how many
        were killed. 0 where the transport cannot tell (then they go at close)."""

    async def close(self) -> None:
        """Close stdin and the streams, and make sure the process is gone (with all it started)."""


class TtyTransport(Protocol):
    """A process in a workspace on a pseudo-terminal: the terminal's master side."""

    async def write(self, data: bytes) -> None:
        """Type `data` at the terminal."""

    async def read(self) -> bytes | None:
        """The next output the terminal produced; None once it has closed."""

    async def resize(self, rows: int, cols: int) -> None:
        """Set the terminal's size (the foreground process group gets SIGWINCH)."""

    async def signal(self, leader: int, kill: bool) -> None:
        """`kill`: SIGKILL every process of the terminal's session (`leader`: its leader's pid in
        the workspace); else SIGINT to the terminal's foreground process group."""

    async def exit_status(self) -> int | None:
        """After the end of output: the process's status as a shell reports it (128+n after
        signal n); None if unknown."""

    async def close(self) -> None:
        """Release the terminal; the process is not waited for."""


class WorkspaceBackend(Protocol):
    """Creates and runs workspaces. Raises firebox.common.errors for anything a client caused.

    Adding a backend (a remote engine, Podman, a Kubernetes pod) is implementing this and
    choosing it in executor_service/backends/__init__.py; nothing else asks what a backend is."""

    name: str
    # This executor's identity as the backend keeps it (docker: the owner label of its
    # containers; bubblewrap: the id kept in the config dir); "" when it keeps none.
    owner: str
    # Whether it can keep a warm pool of started workspaces (claiming a member as a new one).
    has_warm_pool: bool
    # Filled by adopt(): warm-pool members found waiting, for the pool to take back or remove.
    pool_members: builtins.list[WorkspaceInfo]

    async def adopt(self) -> builtins.list[WorkspaceInfo]:
        """At start-up: the workspaces this executor holds (after a restart nothing is orphaned)."""
        ...

    async def create(self, spec: WorkspaceSpec, pool_key: str = "") -> WorkspaceInfo:
        """Create and start a workspace; with `pool_key` (has_warm_pool only), as a waiting member
        of that warm pool."""
        ...

    async def claim(self, member: WorkspaceInfo, name: str, labels: dict[str, str]) -> WorkspaceInfo:
        """Make a waiting warm-pool member a workspace of its own (has_warm_pool only)."""
        ...

    async def get(self, workspace_id: str) -> WorkspaceInfo: ...

    async def list(self) -> builtins.list[WorkspaceInfo]: ...

    async def start(self, workspace_id: str) -> WorkspaceInfo: ...

    async def stop(self, workspace_id: str) -> WorkspaceInfo: ...

    async def delete(self, workspace_id: str) -> None: ...

    async def pause(self, workspace: WorkspaceInfo) -> WorkspaceInfo:
        """Freeze every process of a running workspace (a paused one is returned as it is);
        FailedPrecondition when it is not running or the backend cannot pause here. `workspace`
        is the last known answer for it, which may be out of date."""
        ...

    async def create_snapshot(self, workspace: WorkspaceInfo, snapshot_id: str, name: str) -> SnapshotInfo:
        """Capture the workspace's filesystem and /workspace files as snapshot `snapshot_id`."""
        ...

    async def build_image(self, spec: BuildSpec, on_output: OutputSink | None = None) -> BuiltImage:
        """Build an image from a Dockerfile (a devcontainer's build), or reuse the one built before
        from the same context, Dockerfile, args and target; `on_output` is given the build's
        output as it comes (from a worker thread). FailedPrecondition when the build fails (its
        last output in the message) or the backend cannot build."""
        ...

    async def list_snapshots(self) -> builtins.list[SnapshotInfo]: ...

    async def get_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        """NotFound when there is no such snapshot."""
        ...

    async def delete_snapshot(self, snapshot_id: str) -> None: ...

    async def resume(self, workspace: WorkspaceInfo) -> WorkspaceInfo:
        """Thaw a paused workspace (a running one is returned as it is); FailedPrecondition when
        it is stopped."""
        ...

    async def open_shell(
        self,
        workspace: WorkspaceInfo,
        argv: builtins.list[str],
        env: dict[str, str],
        *,
        session: bool = False,
    ) -> ShellTransport:
        """Start `argv` in the workspace (working directory /workspace, as the policy's user, with
        exactly `env` plus PATH/HOME) and return a transport to it. `session`: a long-lived
        session shell, for which a backend may use a faster path."""
        ...

    async def set_writable_paths(
        self, workspace: WorkspaceInfo, writable_paths: tuple[str, ...], *, sessions_open: bool
    ) -> WorkspaceInfo:
        """Replace the workspace's writable paths. Takes effect for the next process; a backend
        that cannot change what open shell sessions see refuses (FAILED_PRECONDITION) while
        `sessions_open`."""
        ...

    async def open_tty(
        self, workspace: WorkspaceInfo, argv: builtins.list[str], env: dict[str, str], rows: int, cols: int
    ) -> TtyTransport:
        """Start `argv` like open_shell, but as the leader of a new session whose controlling
        terminal (and stdin, stdout, stderr) is a new pseudo-terminal of `rows` x `cols`."""
        ...

    async def connect_port(self, workspace: WorkspaceInfo, port: int) -> socket.socket:
        """A non-blocking TCP connection to `port` on the workspace's loopback interface, made
        whether or not the workspace has a network (see ports.py)."""
        ...

    async def oom_kills(self, workspace: WorkspaceInfo) -> int | None:
        """How many processes the workspace's memory limit has killed so far; None if unknown."""
        ...

    async def close(self) -> None:
        """Release engine connections; workspaces keep running."""
        ...
