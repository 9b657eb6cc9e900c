"""Workspaces as Docker containers, through the docker SDK.

Each workspace is one container labelled as Firebox's, its files on a named volume mounted at
/workspace that outlives the container. Everything needed to rebuild a workspace after a restart
(spec, policy, env, name) lives in the container's labels, so the engine is the only state: a new
executor adopts every labelled container it finds. The container's main process is docker-init
(tini) running INIT_SCRIPT; commands and sessions come in through `docker exec`.

Any image with a POSIX /bin/sh works unprepared: the image's ENTRYPOINT and CMD are replaced by
INIT_SCRIPT, which runs as root (with CAP_CHOWN added only for that, when the workspace user is
not root) to make /workspace the workspace user's and /tmp mode 1777 (the engine copies an
image's /tmp mode onto the tmpfs), then says so on stdout. Create and start read that line over
the container's attach stream before answering, so no command ever sees the workspace half-made.
HOME is /workspace (the user may have no passwd entry); the image's ENV is kept as it is.

Warm-pool members (executor_service/pool.py) are ordinary workspace containers with one more label,
LABEL_POOL. Labels cannot change on a container, so when a client takes a member the name and
labels it asked for are written to a claim file, <config-dir>/pool-claims/<id>.json (atomic, synced),
and read from there: a pooled container with a claim file is a workspace like any other, one
without is a member still waiting in the pool (never listed, never found by id).

Session shells move their bytes through FIFOs when the backend has an `io_dir` (docker_transports.py,
FifoTransport): each workspace gets `io_dir/<id>` bind-mounted read-only at IO_MOUNT (a FIFO opens
read-write on a read-only mount; the workspace cannot create or remove anything there), marked by
LABEL_IO. Workspaces made without it (older ones, or with --session-io attach) use the docker exec
socket, as do file transfers.

Writable paths (policy.writable_paths) are bind mounts made inside the running container's mount
namespace (backends/mountns.py says why), after create, after every start and at adoption. A
change on a live workspace is applied at once and kept in <config-dir>/writable-paths/<id>.json,
since the policy label cannot change.

Every SDK call is blocking, so each runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import socket
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.models.resource import Model
from docker.types import Mount

from executor_service.backend import (
    DOCKER,
    LABEL_ID,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_POOL,
    STATES,
    BuildSpec,
    BuiltImage,
    OutputSink,
    Policy,
    ShellTransport,
    SnapshotInfo,
    TtyTransport,
    WorkspaceInfo,
    WorkspaceSpec,
    workspace_access,
)
from executor_service.backends import mountns
from executor_service.backends.disks import DiskUnavailable, WorkspaceDisks
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.backends.docker")

# Labels beyond backend.py's: what adoption needs to rebuild a WorkspaceInfo.
LABEL_POLICY = "dev.firebox.policy"
LABEL_ENV = "dev.firebox.env"
LABEL_USER_LABELS = "dev.firebox.labels"
LABEL_VOLUME = "dev.firebox.volume"
# Which executor owns the workspace (its instance id, kept in its config dir), so that several
# executors can share one engine without adopting, listing or deleting each other's workspaces.
LABEL_OWNER = "dev.firebox.owner"
# Set on workspaces that have the session FIFO directory mounted (its value: where).
LABEL_IO = "dev.firebox.io"
IO_MOUNT = "/run/firebox"

# Snapshots (see create_snapshot): an image firebox-snapshot:<id> holding the container's
# filesystem and metadata labels, and a volume firebox-snap-<id> holding a copy of /workspace.
SNAPSHOT_REPOSITORY = "firebox-snapshot"
# Images built from a devcontainer's Dockerfile, tagged by a hash of what went into the build; the
# newest BUILT_IMAGES_KEPT are kept as the cache (older ones go unless a container uses them).
BUILT_REPOSITORY = "firebox-devcontainer"
BUILT_IMAGES_KEPT = 16
# A build's output returned to the client (its tail), and the longest a build may take.
BUILD_LOG_BYTES = 64 * 1024
BUILD_TIMEOUT_SECONDS = 1800
SNAPSHOT_VOLUME_PREFIX = "firebox-snap-"
LABEL_SNAPSHOT = "dev.firebox.snapshot"
LABEL_SNAPSHOT_INFO = "dev.firebox.snapshot-info"
# On a fork's container: the snapshot it was made from.
LABEL_PARENT_SNAPSHOT = "dev.firebox.parent-snapshot"
# The idle timeout and time to live the client asked for (JSON; absent: the server's defaults).
LABEL_EXPIRY = "dev.firebox.expiry"
# Marks the short-lived containers that copy a volume.
LABEL_HELPER = "dev.firebox.helper"
COPY_TIMEOUT_SECONDS = 600
# What the copy runs: everything, owners, modes and times kept; then the size in KiB.
COPY_SCRIPT = "cp -a /from/. /to/ && du -sk /to"
# The copy runs as root in a container with no network and only the capabilities a faithful copy
# needs (read anything, keep owners, modes and times), with a fixed PATH: the image's and the
# workspace's own PATH may name the workspace user's programs.
COPY_CAPABILITIES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]
COPY_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# What an image's own /workspace files may amount to when they seed a size-limited workspace (more
# is not copied, and logged), and how many images' files are remembered.
MAX_SEED_BYTES = 64 * 1024 * 1024
MAX_SEED_IMAGES = 16
MAX_HELPER_OUTPUT = 16 * 1024

CONTAINER_PREFIX = "firebox-"
VOLUME_PREFIX = "firebox-ws-"
WORKDIR = "/workspace"
# Set on workspaces whose main process is INIT_SCRIPT (its value: the script's version), so that
# start waits for its ready line only where one will come.
LABEL_INIT = "dev.firebox.init"
INIT_VERSION = "1"
# The main process (see module docstring); $1 is the workspace user. A user name the image does not
# know is reported here, at create, rather than by every later exec. The idle loop exits at once
# on SIGTERM (tini forwards it), so stop takes no timeout.
INIT_SCRIPT = r"""
u=$1; uid=${u%%:*}
case $uid in *[!0-9]*) id -u "$uid" >/dev/null 2>&1 || { echo "firebox-error: no user $uid in the image"; exit 1; };; esac
chmod 1777 /tmp 2>/dev/null
case $uid in 0|root) ;; *)
  [ -n "$(find /workspace -maxdepth 0 -user "$uid" 2>/dev/null)" ] || chown -R "$u" /workspace 2>/dev/null;;
esac
echo firebox-ready
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
"""
READY_LINE = b"firebox-ready\n"
READY_TIMEOUT_SECONDS = 30.0
# What the main process may print before its ready line (an image's shell profile, an error).
MAX_INIT_OUTPUT = 16 * 1024
STOP_TIMEOUT_SECONDS = 3
# Setting up writable paths is a few mount calls; this bounds a wedged helper.
MOUNT_TIMEOUT_SECONDS = 30
IMAGE_HELP = "build it with `make images` (scripts/build-images.sh) or load it with `docker load`"


# What a workspace id can look like ("ws_" + hex; a little wider so that any id this backend ever
# made still resolves).
_WORKSPACE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
T = TypeVar("T")


class _ExecGate:
    """Keeps a pause from meeting a `docker exec` that is starting in the same container.

    runc's exec joins the container's cgroups; when the freezer freezes its `runc init` half way,
    runc, the shim and every later call on the container (the unpause first) wait on each other
    for good (docker 20.10 / runc on cgroup v1: a snapshot's pause during a warm shell's start
    wedged CI's engine). So an exec waits while a pause is being made, and a pause waits for the
    execs under way here (and, by the engine's account, anywhere) to have started."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._starting = 0
        self._pausing = False

    @contextlib.asynccontextmanager
    async def exec_start(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._pausing)
            self._starting += 1
        try:
            yield
        finally:
            async with self._changed:
                self._starting -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def pausing(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._pausing)
            self._pausing = True  # from now on new execs wait
            await self._changed.wait_for(lambda: self._starting == 0)
        try:
            yield
        finally:
            async with self._changed:
                self._pausing = False
                self._changed.notify_all()


# How long a pause waits for execs the engine reports as starting (Running, no pid yet).
EXEC_START_WAIT_SECONDS = 5.0


async def _engine(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking SDK call in a worker thread. An engine that does not answer (socket gone,
    connection reset) is UNAVAILABLE naming it, not an unknown error."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise errors.Unavailable(f"the Docker engine is not answering ({exc}); is dockerd running?") from exc


def _id(obj: Model) -> str:
    """An engine object's id (typeshed allows None, for a model not made by the engine)."""
    if obj.id is None:
        raise RuntimeError(f"{obj!r} has no id")
    return obj.id


def container_name(workspace_id: str) -> str:
    return CONTAINER_PREFIX + workspace_id


def volume_name(workspace_id: str) -> str:
    return VOLUME_PREFIX + workspace_id


def isolation_line(policy: Policy) -> str:
    """What is in force, in words, for the Workspace message."""
    parts = ["docker container"]
    parts.append("network on" if policy.network else "no network")
    parts.append(f"user {policy.user}")
    parts.append(
        "caps " + ",".join(policy.capabilities) if policy.capabilities else "all capabilities dropped"
    )
    if policy.no_new_privileges:
        parts.append("no-new-privileges")
    if "CAP_CHOWN" in init_capabilities(policy) and "CAP_CHOWN" not in policy.capabilities:
        parts.append("CAP_CHOWN kept in the bounding set for the init")
    parts.append(f"memory {_limit(policy.memory_bytes, 'MiB', 1024 * 1024)}")
    parts.append(f"pids {policy.pids_limit or 'unlimited'}")
    parts.append(f"cpu {_limit(policy.cpu_millis, 'm', 1)}")
    parts.append("read-only root" if policy.read_only_root else "writable root")
    parts.append(workspace_access(policy))
    parts.append(f"/tmp tmpfs {policy.tmp_bytes // (1024 * 1024)}MiB")
    parts.append(f"/workspace {_limit(policy.disk_bytes, 'MiB', 1024 * 1024)}")
    return ", ".join(parts)


def _limit(value: int, unit: str, scale: int) -> str:
    return f"{value // scale}{unit}" if value else "unlimited"


def _policy_from_label(text: str | None) -> Policy:
    if not text:
        return Policy()
    raw = json.loads(text)
    known = {k: v for k, v in raw.items() if k in Policy.__dataclass_fields__}
    for name in ("capabilities", "writable_paths"):
        if name in known:
            known[name] = tuple(known[name])
    return Policy(**known)


def _parse_created(text: str) -> dt.datetime:
    # Docker reports nanoseconds ("2026-11-21T05:18:43.123456789Z"); Python takes microseconds.
    head, _, frac = text.rstrip("Z").partition(".")
    micro = (frac + "000000")[:6]
    return dt.datetime.fromisoformat(f"{head}.{micro}").replace(tzinfo=dt.UTC)


class DockerBackend:
    """The docker workspace backend (see module docstring)."""

    name = DOCKER

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        owner: str = "default",
        claims_dir: Path | None = None,
        io_dir: Path | None = None,
        writable_dir: Path | None = None,
        disks_dir: Path | None = None,
    ) -> None:
        self.client = client or docker.from_env()
        # Size-limited /workspace filesystems (policy.disk_bytes); None: volumes only.
        self.disks = WorkspaceDisks(disks_dir) if disks_dir is not None else None
        self.owner = owner
        # Where session FIFOs live (None: sessions use the docker exec socket).
        self.io_dir = io_dir
        # Workspaces that have io_dir mounted; and those where it turned out not to be visible.
        self._io_workspaces: set[str] = set()
        self._io_broken: set[str] = set()
        self._filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={owner}"]}
        # Per workspace: execs starting and pauses being made keep out of each other's way.
        self._exec_gates: dict[str, _ExecGate] = {}
        # Where taken warm-pool members keep their name and labels; None = no pool possible.
        self.claims_dir = claims_dir
        self.has_warm_pool = claims_dir is not None
        self._claims: dict[str, dict[str, Any]] = {}
        # Filled by adopt(): pool members found waiting, for the pool to take back or remove.
        self.pool_members: list[WorkspaceInfo] = []
        # Writable paths changed since create (the label has the original); None = not kept.
        self.writable_dir = writable_dir
        self._writable: dict[str, tuple[str, ...]] = {}
        # Per image id: a tar of its /workspace files (None: it has none), for size-limited
        # workspaces, whose /workspace does not start from the image as a volume does.
        self._image_files: dict[str, bytes | None] = {}

    # ---- workspace lifecycle -------------------------------------------------------------------

    async def create(self, spec: WorkspaceSpec, pool_key: str = "") -> WorkspaceInfo:
        """Create and start the workspace; with `pool_key`, as a member of that warm pool. An image
        the engine does not have is NotFound: nothing is pulled (a pull from an unreachable registry
        would hang the call), so images are built or loaded beforehand."""
        try:
            container = await _engine(self._create_and_start, spec, pool_key)
        except docker.errors.ImageNotFound as exc:
            raise errors.NotFound(f"image {spec.image!r} is not present on the engine; {IMAGE_HELP}") from exc
        if spec.policy.writable_paths:
            try:
                await self._mount_writable(container, spec.policy.writable_paths)
            except errors.FailedPrecondition:
                await _engine(container.remove, force=True, v=True)
                await _engine(self._remove_volume, volume_name(spec.id))
                raise
        return self._info(container)

    async def claim(self, member: WorkspaceInfo, name: str, labels: dict[str, str]) -> WorkspaceInfo:
        """Make a waiting pool member a workspace of its own with `name` and `labels` (see the
        module docstring). No engine call: the member is known to be running."""
        if self.claims_dir is None:
            raise RuntimeError("this backend was built without a claims directory")
        claim = {"name": name, "labels": labels}
        await asyncio.to_thread(self._write_claim, member.id, claim)
        self._claims[member.id] = claim
        return replace(member, name=name, labels=dict(labels), pool_key="")

    async def get(self, workspace_id: str) -> WorkspaceInfo:
        info = self._info(await self._container(workspace_id))
        if info.pool_key:
            raise errors.NotFound(f"workspace {workspace_id!r} not found")
        return info

    async def list(self) -> list[WorkspaceInfo]:
        """Every workspace of this executor (waiting pool members are not workspaces yet)."""
        return [info for info in await self._list_all() if not info.pool_key]

    async def _list_all(self) -> builtins.list[WorkspaceInfo]:
        # The SDK lists, then inspects each container: one removed in between is simply gone from
        # the answer (ignore_removed), not a NotFound escaping a List.
        containers = await _engine(
            self.client.containers.list, all=True, filters=self._filters, ignore_removed=True
        )
        infos = []
        for container in containers:
            if container.labels.get(LABEL_HELPER):
                continue
            try:
                infos.append(self._info(container))
            except (KeyError, ValueError) as exc:
                log.warning("workspace_unreadable", container=container.name, error=repr(exc))
        return infos

    async def start(self, workspace_id: str) -> WorkspaceInfo:
        container = await self._container(workspace_id)
        if container.labels.get(LABEL_INIT) and container.status != "running":
            await _engine(self._start_until_ready, container, container.attrs["Config"]["Image"])
        else:
            await _engine(container.start)
        await _engine(container.reload)
        info = self._info(container)
        if info.policy.writable_paths:
            # A restarted container has a fresh mount namespace.
            await self._mount_writable(container, info.policy.writable_paths)
        return info

    async def set_writable_paths(
        self, workspace: WorkspaceInfo, writable_paths: tuple[str, ...], *, sessions_open: bool
    ) -> WorkspaceInfo:
        """Applied in the running container at once: open sessions keep their state and see the
        change from their next command. A stopped workspace gets it at its next start."""
        container = await self._container(workspace.id)
        if container.status in ("running", "paused"):
            # A paused container keeps its mount namespace: changed now, in force when it resumes.
            await self._mount_writable(container, writable_paths)
        self._writable[workspace.id] = writable_paths
        if self.writable_dir is not None:
            await asyncio.to_thread(self._write_writable, workspace.id, writable_paths)
        return self._info(container)

    async def _mount_writable(self, container: Container, writable_paths: tuple[str, ...]) -> None:
        """Set up `writable_paths` in the running container's mount namespace (mountns.py)."""
        await _engine(container.reload)
        pid = container.attrs.get("State", {}).get("Pid") or 0
        if not pid:
            raise errors.FailedPrecondition(f"workspace {container.labels.get(LABEL_ID)} is not running")
        # The file itself, in isolated mode: only the standard library loads, nothing of the
        # package or the environment (a fresh interpreter is what setns needs anyway).
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            mountns.__file__,
            str(pid),
            json.dumps(list(writable_paths)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(MOUNT_TIMEOUT_SECONDS):
                _, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise errors.FailedPrecondition("setting up the writable paths took too long") from None
        if process.returncode:
            reason = stderr.decode(errors="replace").strip()[-500:]
            hint = (
                "; writable paths need the executor to run as root on the Docker engine's host"
                if "not permitted" in reason or "denied" in reason or "No such file" in reason
                else ""
            )
            raise errors.FailedPrecondition(f"the writable paths could not be set up: {reason}{hint}")

    async def stop(self, workspace_id: str) -> WorkspaceInfo:
        container = await self._container(workspace_id)
        await _engine(container.stop, timeout=STOP_TIMEOUT_SECONDS)
        await _engine(container.reload)
        return self._info(container)

    async def pause(self, workspace: WorkspaceInfo) -> WorkspaceInfo:
        """One engine call on the common path: `workspace` (the manager's last answer) says the
        container is ours; what changed since then shows as the engine's 404 or 409."""
        return await self._pause_or_resume(workspace, pause=True)

    async def resume(self, workspace: WorkspaceInfo) -> WorkspaceInfo:
        return await self._pause_or_resume(workspace, pause=False)

    async def _pause_or_resume(self, workspace: WorkspaceInfo, *, pause: bool) -> WorkspaceInfo:
        api = self.client.api
        try:
            if pause:
                async with self._pausing(workspace.id, container_name(workspace.id)):
                    await _engine(api.pause, container_name(workspace.id))
            else:
                await _engine(api.unpause, container_name(workspace.id))
        except docker.errors.NotFound as exc:
            raise errors.NotFound(f"workspace {workspace.id!r} not found") from exc
        except docker.errors.APIError as exc:
            # Already in the wanted state (the engine says 409 or 500 for that: fine), or stopped
            # (a client's mistake): the engine's state decides; anything else is the engine's.
            info = await self.get(workspace.id)
            if info.state == ("paused" if pause else "running"):
                return info
            if pause and info.state != "running":
                raise errors.FailedPrecondition(
                    f"workspace {workspace.id} is {info.state}, not running"
                ) from exc
            if not pause and info.state != "paused":
                raise errors.FailedPrecondition(
                    f"workspace {workspace.id} is {info.state}, not paused; start it with StartWorkspace"
                ) from exc
            raise
        return replace(workspace, state="paused" if pause else "running")

    # ---- images built from a Dockerfile ---------------------------------------------------------

    async def build_image(self, spec: BuildSpec, on_output: OutputSink | None = None) -> BuiltImage:
        """Build with the engine (base images from its local store: nothing is pulled), tagged by
        a hash of the context, Dockerfile path, args and target; an image of that tag is reused."""
        digest = hashlib.sha256()
        for part in (spec.context, spec.dockerfile, json.dumps(spec.args, sort_keys=True), spec.target):
            data = part if isinstance(part, bytes) else part.encode()
            digest.update(len(data).to_bytes(8, "big") + data)
        tag = f"{BUILT_REPOSITORY}:{digest.hexdigest()[:32]}"
        try:
            await _engine(self.client.images.get, tag)
        except docker.errors.ImageNotFound:
            pass
        else:
            note = f"using the cached image {tag} (same context, Dockerfile, args and target)\n"
            if on_output is not None:
                on_output(note.encode())
            return BuiltImage(tag, note, cached=True)
        built = await _engine(self._build, spec, tag, on_output)
        await _engine(self._trim_built_images)
        return built

    def _build(self, spec: BuildSpec, tag: str, on_output: OutputSink | None) -> BuiltImage:
        output = bytearray()
        truncated = False

        def keep(text: str) -> None:
            nonlocal output, truncated
            data = text.encode(errors="replace")
            if on_output is not None:
                on_output(data)
            output += data
            if len(output) > BUILD_LOG_BYTES:
                output = output[-BUILD_LOG_BYTES:]
                truncated = True

        gzipped = spec.context[:2] == b"\x1f\x8b"
        try:
            stream = self.client.api.build(
                fileobj=io.BytesIO(spec.context),
                custom_context=True,
                encoding="gzip" if gzipped else None,
                dockerfile=spec.dockerfile,
                buildargs=spec.args or None,
                target=spec.target or None,
                tag=tag,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                timeout=BUILD_TIMEOUT_SECONDS,
            )
            for chunk in stream:
                if "stream" in chunk:
                    keep(str(chunk["stream"]))
                if "error" in chunk:
                    tail = output.decode(errors="replace").strip()[-400:]
                    raise errors.FailedPrecondition(
                        f"the image build failed: {str(chunk['error']).strip()[:300]}; its last output: {tail}"
                    )
        except docker.errors.APIError as exc:  # e.g. a context the engine cannot read
            raise errors.FailedPrecondition(
                f"the image build failed: {str(exc.explanation or exc)[:300]}"
            ) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise errors.FailedPrecondition(
                f"the image build took longer than {BUILD_TIMEOUT_SECONDS} s"
            ) from exc
        return BuiltImage(tag, output.decode(errors="replace"), truncated=truncated)

    def _trim_built_images(self) -> None:
        tags = [
            (image.attrs.get("Created", ""), tag)
            for image in self.client.images.list(name=BUILT_REPOSITORY)
            for tag in image.tags
            if tag.startswith(BUILT_REPOSITORY + ":")
        ]
        tags.sort(reverse=True)
        for _created, tag in tags[BUILT_IMAGES_KEPT:]:
            with contextlib.suppress(docker.errors.APIError):  # in use by a workspace: kept
                self.client.images.remove(tag)

    # ---- snapshots ---------------------------------------------------------------------------

    async def create_snapshot(self, workspace: WorkspaceInfo, snapshot_id: str, name: str) -> SnapshotInfo:
        """`docker commit` of the container (its filesystem and configuration) as
        firebox-snapshot:<id>, and a copy of its /workspace volume (which a commit leaves out) in
        firebox-snap-<id>. A running workspace is paused for both, so that the files and the
        filesystem are of one moment; it runs on afterwards with its processes and sessions."""
        container = await self._container(workspace.id)
        if container.status != "running":
            return await _engine(self._snapshot, container, workspace, snapshot_id, name)
        async with self._pausing(workspace.id, _id(container)):
            await _engine(self.client.api.pause, container.id)
            try:
                return await _engine(self._snapshot, container, workspace, snapshot_id, name)
            finally:
                await _engine(self.client.api.unpause, container.id)

    @contextlib.asynccontextmanager
    async def _pausing(self, workspace_id: str, container: str) -> AsyncIterator[None]:
        """Around a pause: no exec of ours starts meanwhile, and none is starting when it comes."""
        async with self._exec_gate(workspace_id).pausing():
            await _engine(self._wait_execs_started, container)
            yield

    def _exec_gate(self, workspace_id: str) -> _ExecGate:
        return self._exec_gates.setdefault(workspace_id, _ExecGate())

    def _wait_execs_started(self, container: str) -> None:
        """Until no exec of the container is starting by the engine's account (bounded)."""
        deadline = time.monotonic() + EXEC_START_WAIT_SECONDS
        while time.monotonic() < deadline:
            starting = False
            for exec_id in self.client.api.inspect_container(container).get("ExecIDs") or ():
                try:
                    state = self.client.api.exec_inspect(exec_id)
                except docker.errors.NotFound:
                    continue
                if state.get("Running") and not state.get("Pid"):
                    starting = True
                    break
            if not starting:
                return
            time.sleep(0.02)
        log.warning("pause_with_exec_starting", container=container, waited_seconds=EXEC_START_WAIT_SECONDS)

    def _snapshot(
        self, container: Container, workspace: WorkspaceInfo, snapshot_id: str, name: str
    ) -> SnapshotInfo:
        created = dt.datetime.now(dt.UTC)
        meta: dict[str, Any] = {
            "name": name,
            "workspace_id": workspace.id,
            "image": workspace.image,
            "created": created.isoformat(),
            "policy": asdict(workspace.policy),
            "env": workspace.env,
        }
        # The container's own Firebox labels would otherwise pass into the image, and from it
        # into every fork's container.
        blank = {key: "" for key in container.labels if key.startswith("dev.firebox.")}
        labels = {
            **blank,
            LABEL_MANAGED: "true",
            LABEL_OWNER: self.owner,
            LABEL_SNAPSHOT: snapshot_id,
        }
        volume = snapshot_volume_name(snapshot_id)
        meta["files_bytes"] = self._copy_files(
            _workspace_source(container, container.labels.get(LABEL_VOLUME) or volume_name(workspace.id)),
            Mount(
                "/to",
                volume,
                type="volume",
                labels={LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_SNAPSHOT: snapshot_id},
            ),
            workspace.image,
        )
        labels[LABEL_SNAPSHOT_INFO] = json.dumps(meta, sort_keys=True)
        try:
            container.commit(
                repository=SNAPSHOT_REPOSITORY,
                tag=snapshot_id,
                message=f"Firebox snapshot {snapshot_id} of {workspace.id}",
                pause=False,
                conf={"Labels": labels},
            )
        except BaseException:
            self._remove_volume(volume)
            raise
        return _snapshot_info(snapshot_id, meta)

    async def list_snapshots(self) -> builtins.list[SnapshotInfo]:
        images = await _engine(
            self.client.images.list,
            filters={"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={self.owner}", LABEL_SNAPSHOT]},
        )
        volumes = {
            v.name: v
            for v in await _engine(
                self.client.volumes.list, filters={"label": [f"{LABEL_OWNER}={self.owner}", LABEL_SNAPSHOT]}
            )
        }
        snapshots = []
        for image in images:
            snapshot = self._snapshot_from_image(image)
            if snapshot is not None and snapshot_volume_name(snapshot.id) in volumes:
                snapshots.append(snapshot)
        return snapshots

    async def get_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        if not _WORKSPACE_ID.fullmatch(snapshot_id):
            raise errors.NotFound(f"snapshot {snapshot_id[:200]!r} not found")
        try:
            image = await _engine(self.client.images.get, f"{SNAPSHOT_REPOSITORY}:{snapshot_id}")
            await _engine(self.client.volumes.get, snapshot_volume_name(snapshot_id))
        except docker.errors.NotFound as exc:
            raise errors.NotFound(f"snapshot {snapshot_id!r} not found") from exc
        snapshot = self._snapshot_from_image(image)
        if snapshot is None or snapshot.id != snapshot_id:
            raise errors.NotFound(f"snapshot {snapshot_id!r} not found")
        return snapshot

    async def delete_snapshot(self, snapshot_id: str) -> None:
        await self.get_snapshot(snapshot_id)
        # By tag and forced: a fork's container keeps the layers it runs on.
        with contextlib.suppress(docker.errors.NotFound):
            await _engine(self.client.images.remove, f"{SNAPSHOT_REPOSITORY}:{snapshot_id}", force=True)
        await _engine(self._remove_volume, snapshot_volume_name(snapshot_id))

    def _snapshot_from_image(self, image: Any) -> SnapshotInfo | None:
        labels = image.labels or {}
        if labels.get(LABEL_OWNER) != self.owner or not labels.get(LABEL_SNAPSHOT):
            return None
        try:
            meta = json.loads(labels[LABEL_SNAPSHOT_INFO])
            return _snapshot_info(labels[LABEL_SNAPSHOT], meta)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("snapshot_unreadable", image=image.id, error=repr(exc))
            return None

    def _copy_files(self, source: Mount, target: Mount, image: str) -> int:
        """Copy the files of `source` into `target` (each a volume or a bind-mounted directory:
        a workspace with a disk limit has its own filesystem) with a short-lived container of
        `image` (every workspace image has /bin/sh, and cp with it). A target volume is made
        here with its labels, and removed again when the copy fails. Returns the bytes copied
        (du)."""
        # The volume this copy makes (and so removes when it fails); "" for a directory.
        made = target["Source"] if target["Type"] == "volume" else ""
        if made:
            self.client.volumes.create(made, labels=target.get("VolumeOptions", {}).get("Labels"))
        copy_from = Mount("/from", source["Source"], type=source["Type"], read_only=True)
        copy_to = Mount("/to", target["Source"], type=target["Type"])
        try:
            helper = self.client.containers.create(
                image,
                entrypoint=["/bin/sh", "-c", COPY_SCRIPT],
                command=[],
                user="0:0",
                environment={"PATH": COPY_PATH},
                network_mode="none",
                cap_drop=["ALL"],
                cap_add=COPY_CAPABILITIES,
                security_opt=["no-new-privileges"],
                labels={LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_HELPER: "copy"},
                mounts=[copy_from, copy_to],
                detach=True,
            )
        except BaseException:
            if made:
                self._remove_volume(made)
            raise
        try:
            code, output = self._run_to_end(helper)
        except BaseException:
            self._remove_volume_after(helper, made)
            raise
        if code != 0:
            self._remove_volume_after(helper, made)
            raise errors.FailedPrecondition(
                f"copying the workspace's files failed (exit {code}) in image {image!r}: "
                f"{output.decode(errors='replace').strip()[-500:]}"
            )
        helper.remove(force=True, v=True)
        kib = output.split()[-2:-1] if output.split() else []
        return int(kib[0]) * 1024 if kib and kib[0].isdigit() else 0

    def _remove_volume_after(self, helper: Container, volume: str) -> None:
        with contextlib.suppress(docker.errors.APIError):
            helper.remove(force=True, v=True)
        if volume:
            self._remove_volume(volume)

    def _run_to_end(self, container: Container) -> tuple[int, bytes]:
        """Start `container`, wait for it to exit (bounded), and return its exit code and output."""
        sock = self.client.api.attach_socket(_id(container), params={"stdout": 1, "stderr": 1, "stream": 1})
        raw = getattr(sock, "_sock", sock)
        try:
            raw.settimeout(COPY_TIMEOUT_SECONDS)
            container.start()
            output = _read_frames(raw, MAX_HELPER_OUTPUT)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
        result = container.wait(timeout=COPY_TIMEOUT_SECONDS)
        return int(result.get("StatusCode", -1)), output

    async def delete(self, workspace_id: str) -> None:
        self._exec_gates.pop(workspace_id, None)
        container = await self._container(workspace_id)
        volume = container.labels.get(LABEL_VOLUME) or volume_name(workspace_id)
        try:
            # v=True: also the anonymous volumes of VOLUMEs an image declares elsewhere than /workspace.
            await _engine(container.remove, force=True, v=True)
        except docker.errors.NotFound as exc:
            # Another delete won the race between our lookup and this removal.
            raise errors.NotFound(f"workspace {workspace_id!r} not found") from exc
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            # 409: a removal is already in progress (a concurrent delete): it is going away.
            raise errors.NotFound(f"workspace {workspace_id!r} is being deleted") from exc
        await _engine(self._remove_volume, volume)
        await asyncio.to_thread(self._remove_disk, workspace_id)
        if self._claims.pop(workspace_id, None) is not None:
            await asyncio.to_thread(self._remove_claim, workspace_id)
        self._io_workspaces.discard(workspace_id)
        if self._writable.pop(workspace_id, None) is not None and self.writable_dir is not None:
            await asyncio.to_thread((self.writable_dir / f"{workspace_id}.json").unlink, True)
        if self.io_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self.io_dir / workspace_id, True)

    async def adopt(self) -> builtins.list[WorkspaceInfo]:
        """At start-up: every labelled container is a workspace of this executor, except pool
        members nobody took (kept in `pool_members` for the pool). Volumes whose container is gone
        are reported, not deleted: their files may still matter to someone."""
        self._claims = await asyncio.to_thread(self._read_claims)
        self._writable = await asyncio.to_thread(self._read_writable)
        everything = await self._list_all()
        infos = [info for info in everything if not info.pool_key]
        self.pool_members = [info for info in everything if info.pool_key]
        present = {info.id for info in everything}
        if self.disks is not None:
            await asyncio.to_thread(self.disks.remove_others, present)
            for info in everything:
                if info.policy.disk_bytes:
                    await asyncio.to_thread(self.disks.ensure_mounted, info.id)
        for stale in set(self._claims) - present:
            # Its container was removed outside Firebox: the claim describes nothing any more.
            self._claims.pop(stale)
            await asyncio.to_thread(self._remove_claim, stale)
        if self.io_dir is not None:
            await asyncio.to_thread(self._tidy_io_dir, present)
        for info in infos:
            if info.state == "running" and info.policy.writable_paths:
                # Idempotent; also covers a container restarted while no executor watched.
                try:
                    await self._mount_writable(await self._container(info.id), info.policy.writable_paths)
                except errors.FireboxError as exc:
                    log.error("writable_paths_not_enforced", workspace_id=info.id, error=exc.message)
        # A volume copy the previous process did not see to its end.
        helpers = await _engine(
            self.client.containers.list, all=True, filters={"label": [*self._filters["label"], LABEL_HELPER]}
        )
        for helper in helpers:
            await _engine(helper.remove, force=True, v=True)
        volumes = await _engine(self.client.volumes.list, filters=self._filters)
        in_use = {volume_name(i.id) for i in everything}
        for volume in volumes:
            if volume.name not in in_use and not (volume.attrs.get("Labels") or {}).get(LABEL_SNAPSHOT):
                log.warning(
                    "workspace_volume_without_container",
                    volume=volume.name,
                    hint="its workspace was removed outside Firebox; `docker volume rm` it if unneeded",
                )
        return infos

    # ---- commands ----------------------------------------------------------------------------

    async def open_shell(
        self,
        workspace: WorkspaceInfo,
        argv: builtins.list[str],
        env: dict[str, str],
        *,
        session: bool = False,
    ) -> ShellTransport:
        """`argv` in the workspace. A `session` shell (long-lived, many small frames) gets the
        FIFO path when the workspace has it."""
        from executor_service.backends.docker_transports import (
            DockerExecTransport,
            FifoTransport,
            FifoUnavailable,
        )

        async with self._exec_gate(workspace.id).exec_start():
            name = container_name(workspace.id)
            if (
                session
                and self.io_dir is not None
                and workspace.id in self._io_workspaces
                and workspace.id not in self._io_broken
            ):
                try:
                    return await FifoTransport.open(
                        self.client,
                        name,
                        host_dir=self.io_dir / workspace.id,
                        container_dir=IO_MOUNT,
                        argv=argv,
                        env=env,
                        user=workspace.policy.user,
                        workdir=WORKDIR,
                    )
                except FifoUnavailable as exc:
                    # E.g. the executor runs in a container whose config dir is not the host's.
                    self._io_broken.add(workspace.id)
                    log.warning(
                        "session_fifos_not_shared",
                        workspace_id=workspace.id,
                        error=str(exc),
                        hint="sessions of this workspace use the docker exec socket; run the executor "
                        "with --session-io attach to stop trying",
                    )
            return await DockerExecTransport.open(
                self.client, name, argv=argv, env=env, user=workspace.policy.user, workdir=WORKDIR
            )

    async def open_tty(
        self, workspace: WorkspaceInfo, argv: builtins.list[str], env: dict[str, str], rows: int, cols: int
    ) -> TtyTransport:
        from executor_service.backends.docker_transports import DockerTtyTransport

        async with self._exec_gate(workspace.id).exec_start():
            return await DockerTtyTransport.open(
                self.client,
                container_name(workspace.id),
                argv=argv,
                env=env,
                rows=rows,
                cols=cols,
                user=workspace.policy.user,
                workdir=WORKDIR,
            )

    async def connect_port(self, workspace: WorkspaceInfo, port: int) -> socket.socket:
        from executor_service import ports

        container = await self._container(workspace.id)
        pid = (container.attrs.get("State") or {}).get("Pid") or 0
        if not pid:
            raise errors.FailedPrecondition(f"workspace {workspace.id!r} is not running; start it first")
        return await ports.connect(f"/proc/{pid}/ns/net", port)

    async def oom_kills(self, workspace: WorkspaceInfo) -> int | None:
        container_id = await self._container_id(workspace.id)
        if container_id is None:
            return None
        return await asyncio.to_thread(read_oom_kills, container_id)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)

    # ---- helpers -----------------------------------------------------------------------------

    def _create_and_start(self, spec: WorkspaceSpec, pool_key: str = "") -> Container:
        volume = volume_name(spec.id)
        workspace_mount, policy = self._workspace_mount(spec, volume)
        labels = {
            LABEL_MANAGED: "true",
            LABEL_OWNER: self.owner,
            LABEL_ID: spec.id,
            LABEL_NAME: spec.name,
            LABEL_POLICY: json.dumps(asdict(policy), sort_keys=True),
            LABEL_ENV: json.dumps(spec.env, sort_keys=True),
            LABEL_USER_LABELS: json.dumps(spec.labels, sort_keys=True),
            LABEL_VOLUME: volume,
        }
        if pool_key:
            labels[LABEL_POOL] = pool_key
        if spec.snapshot is not None:
            labels[LABEL_PARENT_SNAPSHOT] = spec.snapshot.id
            # The fork's own copy of the snapshot's files, made before the container: the engine
            # then mounts a /workspace that is not empty and copies nothing of the image into it.
            try:
                self._copy_files(
                    Mount("/from", snapshot_volume_name(spec.snapshot.id), type="volume", read_only=True),
                    workspace_mount,
                    spec.snapshot.image_ref,
                )
            except BaseException:
                self._remove_disk(spec.id)
                raise
        expiry = {k: v for k, v in (("idle_timeout", spec.idle_timeout), ("ttl", spec.ttl)) if v is not None}
        if expiry:
            labels[LABEL_EXPIRY] = json.dumps(expiry, sort_keys=True)
        mounts = [workspace_mount]
        if self.io_dir is not None:
            # The root is the executor's alone; the workspace's own directory is what the
            # container sees, and its user must be able to look inside.
            self.io_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            io_host = self.io_dir / spec.id
            io_host.mkdir(mode=0o755, exist_ok=True)
            io_host.chmod(0o755)
            mounts.append(Mount(IO_MOUNT, str(io_host), type="bind", read_only=True))
            labels[LABEL_IO] = IO_MOUNT
        elif spec.snapshot is not None:
            # A snapshot image carries the labels of the container it was taken of.
            labels[LABEL_IO] = ""
        labels[LABEL_INIT] = INIT_VERSION
        host_config: dict[str, Any] = {
            "network_mode": "bridge" if policy.network else "none",
            "cap_drop": ["ALL"],
            "cap_add": init_capabilities(policy) or None,
            "security_opt": ["no-new-privileges"] if policy.no_new_privileges else None,
            "read_only": policy.read_only_root,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={policy.tmp_bytes},mode=1777"},
            # The engine creates the labelled volume with the container: no separate call.
            "mounts": mounts,
            "init": True,
        }
        if policy.pids_limit:
            host_config["pids_limit"] = policy.pids_limit
        if policy.memory_bytes:
            # Same as the memory limit: no swap, so a hog meets the OOM killer instead of the disk.
            host_config["mem_limit"] = policy.memory_bytes
            host_config["memswap_limit"] = policy.memory_bytes
        if policy.cpu_millis:
            host_config["nano_cpus"] = policy.cpu_millis * 1_000_000
        try:
            container = self.client.containers.create(
                spec.snapshot.image_ref if spec.snapshot is not None else spec.image,
                # The image's ENTRYPOINT and CMD never run: an entrypoint that exits (or wants
                # arguments) must not keep the workspace from starting.
                entrypoint=["/bin/sh", "-c", INIT_SCRIPT, "firebox-init", policy.user],
                command=[],
                name=container_name(spec.id),
                labels=labels,
                # HOME first: the client's env may set its own.
                environment={"HOME": WORKDIR, **spec.env},
                # The main process only (see INIT_SCRIPT); every exec names the workspace user.
                user="0:0",
                working_dir=WORKDIR,
                detach=True,
                **host_config,
            )
        except docker.errors.ImageNotFound:
            raise
        except docker.errors.APIError as exc:
            self._remove_volume(volume)
            self._remove_disk(spec.id)
            if exc.status_code == 400:
                raise errors.InvalidArgument("policy", f"the engine refused it: {exc.explanation}") from exc
            raise
        try:
            self._start_until_ready(container, spec.image)
        except BaseException:
            container.remove(force=True, v=True)
            self._remove_volume(volume)
            self._remove_disk(spec.id)
            raise
        container.reload()
        return container

    def _workspace_mount(self, spec: WorkspaceSpec, volume: str) -> tuple[Mount, Policy]:
        """/workspace: a named volume that outlives the container, or with policy.disk_bytes a
        filesystem of that size of its own (backends/disks.py), bind-mounted. The engine creates
        the volume with the container (no separate call), copying in what the image has at
        /workspace; INIT_SCRIPT then makes it the workspace user's. The policy in force comes back
        with it: disk_bytes 0 where the limit cannot be made here."""
        policy = spec.policy
        if policy.disk_bytes:
            if self.disks is not None:
                try:
                    source = self.disks.prepare(spec.id, policy.disk_bytes, policy.user)
                except DiskUnavailable:
                    pass
                else:
                    if spec.snapshot is None:
                        # A volume would start with what the image has at /workspace: so does this.
                        self._seed_from_image(spec.image, source, policy.user)
                    return Mount(WORKDIR, str(source), type="bind", read_only=policy.read_only), policy
            policy = replace(policy, disk_bytes=0)
        mount = Mount(
            WORKDIR, volume, type="volume", read_only=policy.read_only, labels=self._volume_labels(spec.id)
        )
        return mount, policy

    def _seed_from_image(self, image: str, directory: Path, user: str) -> None:
        """Put what `image` has at /workspace into `directory` (a fresh filesystem of the
        workspace's own), owned by the workspace user when it is a uid. Extracted with tarfile's
        "data" filter: nothing the image holds can land outside `directory`."""
        archive = self._image_workspace_files(image)
        if archive is None:
            return
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            members = []
            for member in tar.getmembers():
                name = member.name.partition("/")[2]  # "workspace/a/b" -> "a/b"
                if name:
                    member.name = name
                    members.append(member)
            tar.extractall(directory, members=members, filter="data")
        uid, _, gid = user.partition(":")
        if uid.isdigit() and (not gid or gid.isdigit()):
            for path in [directory, *directory.rglob("*")]:
                os.lchown(path, int(uid), int(gid or uid))

    def _image_workspace_files(self, image: str) -> bytes | None:
        """A tar of what `image` has at /workspace, None when nothing (the usual case); looked up
        once per image id with a container that is created and removed, never started."""
        image_id = _id(self.client.images.get(image))
        if image_id in self._image_files:
            return self._image_files[image_id]
        helper = self.client.containers.create(
            image_id,
            entrypoint=["/bin/sh"],
            command=[],
            network_mode="none",
            labels={LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_HELPER: "seed"},
        )
        archive: bytes | None = None
        try:
            chunks, stat = helper.get_archive(WORKDIR)
            if (stat or {}).get("size", 0) <= MAX_SEED_BYTES:
                data = b"".join(chunks)
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    if any(m.name.partition("/")[2] for m in tar.getmembers()):
                        archive = data
            else:
                log.warning("image_workspace_files_too_large", image=image, limit=MAX_SEED_BYTES)
        except docker.errors.NotFound:
            pass  # no /workspace in the image
        finally:
            helper.remove(force=True)
        if len(self._image_files) >= MAX_SEED_IMAGES:
            self._image_files.pop(next(iter(self._image_files)))
        self._image_files[image_id] = archive
        return archive

    def _volume_labels(self, workspace_id: str) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_ID: workspace_id}

    def _remove_disk(self, workspace_id: str) -> None:
        if self.disks is not None:
            self.disks.remove(workspace_id)

    def _start_until_ready(self, container: Container, image: str) -> None:
        """Start the container and return once INIT_SCRIPT has said it is ready. Attached before
        the start so that no output is missed; a main process that ends instead (no /bin/sh, an
        unknown user) is FailedPrecondition saying why."""
        sock = self.client.api.attach_socket(_id(container), params={"stdout": 1, "stderr": 1, "stream": 1})
        raw = getattr(sock, "_sock", sock)
        try:
            raw.settimeout(READY_TIMEOUT_SECONDS)
            try:
                container.start()
            except docker.errors.APIError as exc:
                raise _start_failure(image, exc.explanation or str(exc)) from exc
            output = _read_until_ready(raw)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
        if output is None:
            return
        raise _start_failure(image, output.decode(errors="replace").strip())

    def _tidy_io_dir(self, present: set[str]) -> None:
        """At start-up: session FIFOs of the previous process (its sessions are gone) and the
        directories of workspaces that no longer exist."""
        assert self.io_dir is not None
        self.io_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.io_dir.chmod(0o700)
        for entry in self.io_dir.iterdir():
            if entry.name not in present:
                shutil.rmtree(entry, ignore_errors=True)
                continue
            for stale in entry.iterdir():
                shutil.rmtree(stale, ignore_errors=True)

    def _claim_path(self, workspace_id: str) -> Path:
        assert self.claims_dir is not None
        return self.claims_dir / f"{workspace_id}.json"

    def _write_claim(self, workspace_id: str, claim: dict[str, Any]) -> None:
        # Synced before the rename: a claim that vanished in a crash would make a client's
        # workspace look like a waiting pool member, and the pool could hand it to someone else.
        assert self.claims_dir is not None
        self.claims_dir.mkdir(parents=True, exist_ok=True)
        path = self._claim_path(workspace_id)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(claim, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    def _write_writable(self, workspace_id: str, writable_paths: tuple[str, ...]) -> None:
        assert self.writable_dir is not None
        self.writable_dir.mkdir(parents=True, exist_ok=True)
        path = self.writable_dir / f"{workspace_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(list(writable_paths)))
        tmp.replace(path)

    def _read_writable(self) -> dict[str, tuple[str, ...]]:
        if self.writable_dir is None or not self.writable_dir.is_dir():
            return {}
        kept = {}
        for path in self.writable_dir.glob("*.json"):
            try:
                kept[path.stem] = tuple(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:
                log.warning("writable_paths_unreadable", path=str(path), error=repr(exc))
        return kept

    def _remove_claim(self, workspace_id: str) -> None:
        self._claim_path(workspace_id).unlink(missing_ok=True)

    def _read_claims(self) -> dict[str, dict[str, Any]]:
        if self.claims_dir is None or not self.claims_dir.is_dir():
            return {}
        claims = {}
        for path in self.claims_dir.glob("*.json"):
            try:
                claims[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("pool_claim_unreadable", path=str(path), error=repr(exc))
        return claims

    def _remove_volume(self, volume: str) -> None:
        try:
            self.client.volumes.get(volume).remove(force=True)
        except docker.errors.NotFound:
            pass

    async def _container(self, workspace_id: str) -> Container:
        if not _WORKSPACE_ID.fullmatch(workspace_id):
            # Not an id of ours, and never to be put in the engine's URL ('/', '..', 16 MiB).
            raise errors.NotFound(f"workspace {workspace_id[:200]!r} not found")
        try:
            container = await _engine(self.client.containers.get, container_name(workspace_id))
        except docker.errors.NotFound as exc:
            raise errors.NotFound(f"workspace {workspace_id!r} not found") from exc
        if container.labels.get(LABEL_MANAGED) != "true" or container.labels.get(LABEL_OWNER) != self.owner:
            raise errors.NotFound(f"workspace {workspace_id!r} not found")
        return container

    async def _container_id(self, workspace_id: str) -> str | None:
        try:
            return (await self._container(workspace_id)).id
        except errors.NotFound:
            return None

    def _info(self, container: Container) -> WorkspaceInfo:
        labels = container.labels
        attrs = container.attrs
        state = attrs["State"]["Status"] if isinstance(attrs.get("State"), dict) else attrs.get("State", "")
        policy = _policy_from_label(labels.get(LABEL_POLICY))
        image = attrs.get("Config", {}).get("Image", "")
        workspace_id = labels[LABEL_ID]
        if workspace_id in self._writable:
            policy = replace(policy, writable_paths=self._writable[workspace_id])
        name = labels.get(LABEL_NAME, "")
        user_labels = json.loads(labels.get(LABEL_USER_LABELS) or "{}")
        pool_key = labels.get(LABEL_POOL, "")
        claim = self._claims.get(workspace_id) if pool_key else None
        if labels.get(LABEL_IO) == IO_MOUNT:
            self._io_workspaces.add(workspace_id)
        if claim is not None:
            name, user_labels, pool_key = claim.get("name", ""), dict(claim.get("labels", {})), ""
        expiry = json.loads(labels.get(LABEL_EXPIRY) or "{}")
        return WorkspaceInfo(
            id=workspace_id,
            name=name,
            image=image,
            state=state if state in STATES else "dead",
            backend=DOCKER,
            policy=policy,
            isolation=isolation_line(policy),
            created=_parse_created(attrs["Created"]),
            env=json.loads(labels.get(LABEL_ENV) or "{}"),
            labels=user_labels,
            pool_key=pool_key,
            parent_snapshot_id=labels.get(LABEL_PARENT_SNAPSHOT, ""),
            idle_timeout=expiry.get("idle_timeout"),
            ttl=expiry.get("ttl"),
        )


def snapshot_volume_name(snapshot_id: str) -> str:
    return SNAPSHOT_VOLUME_PREFIX + snapshot_id


def _snapshot_info(snapshot_id: str, meta: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        id=snapshot_id,
        name=meta.get("name", ""),
        workspace_id=meta["workspace_id"],
        image=meta["image"],
        image_ref=f"{SNAPSHOT_REPOSITORY}:{snapshot_id}",
        created=dt.datetime.fromisoformat(meta["created"]),
        policy=_policy_from_label(json.dumps(meta["policy"])),
        env=dict(meta.get("env", {})),
        files_bytes=int(meta.get("files_bytes", 0)),
    )


def _read_frames(sock: socket.socket, limit: int) -> bytes:
    """Everything an attach stream carries until it ends, keeping the last `limit` bytes."""
    payload = bytearray()
    for frame in _frames(sock):
        payload += frame
        del payload[:-limit]
    return bytes(payload)


def init_capabilities(policy: Policy) -> list[str]:
    """The container's capability set: the policy's, plus CAP_CHOWN for INIT_SCRIPT (running as
    root) when the workspace user is not root. Processes of a non-root user never hold it: they
    start with no capabilities, and no-new-privileges keeps setuid programs from gaining any."""
    caps = list(policy.capabilities)
    if policy.user.partition(":")[0] not in ("0", "root") and "CAP_CHOWN" not in caps:
        caps.append("CAP_CHOWN")
    return caps


def _frames(sock: socket.socket) -> Iterator[bytes]:
    """The payloads of a non-TTY attach stream's frames (8-byte header: stream id, 3 zero bytes,
    big-endian length), until the stream ends."""
    buf = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk
        while len(buf) >= 8:
            length = int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + length:
                break
            yield bytes(buf[8 : 8 + length])
            del buf[: 8 + length]


def _read_until_ready(sock: socket.socket) -> bytes | None:
    """Read the attach stream until READY_LINE (None) or its end; then what was printed, bounded."""
    payload = bytearray()
    try:
        for frame in _frames(sock):
            payload += frame
            if READY_LINE in payload:
                return None
            del payload[:-MAX_INIT_OUTPUT]
    except TimeoutError:
        payload += f" (not ready within {READY_TIMEOUT_SECONDS:.0f}s)".encode()
    return bytes(payload[-MAX_INIT_OUTPUT:])


def _start_failure(image: str, detail: str) -> errors.FailedPrecondition:
    """Why a workspace's main process did not come up, in the image's terms."""
    detail = detail[-1000:]
    if "/bin/sh" in detail and ("no such file" in detail.lower() or "not found" in detail.lower()):
        return errors.FailedPrecondition(
            f"image {image!r} has no /bin/sh: a workspace needs a POSIX shell at /bin/sh "
            "(distroless and scratch images lack one)"
        )
    if "firebox-error:" in detail:
        return errors.FailedPrecondition(f"image {image!r}: {detail.split('firebox-error:', 1)[1].strip()}")
    return errors.FailedPrecondition(
        f"the workspace container from image {image!r} did not start (check policy.user and the image): "
        f"{detail or 'its main process exited'}"
    )


def read_oom_kills(container_id: str) -> int | None:
    """The container's memory-cgroup OOM-kill counter, read from the host; None if unreadable."""
    candidates = [
        # cgroup v1 (this machine): `oom_kill N` in memory.oom_control.
        (Path("/sys/fs/cgroup/memory/docker") / container_id / "memory.oom_control"),
        # cgroup v2, cgroupfs and systemd drivers: `oom_kill N` in memory.events.
        (Path("/sys/fs/cgroup/docker") / container_id / "memory.events"),
        (Path("/sys/fs/cgroup/system.slice") / f"docker-{container_id}.scope" / "memory.events"),
    ]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def _workspace_source(container: Container, volume: str) -> Mount:
    """What the container has at /workspace: its named volume, or the directory of its own
    filesystem (a workspace with a disk limit) bind-mounted there."""
    for mount in container.attrs.get("Mounts") or []:
        if mount.get("Destination") == WORKDIR:
            if mount.get("Type") == "bind":
                return Mount(WORKDIR, mount["Source"], type="bind")
            return Mount(WORKDIR, mount.get("Name") or volume, type="volume")
    return Mount(WORKDIR, volume, type="volume")
