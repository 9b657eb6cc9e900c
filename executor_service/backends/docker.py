"""Workspaces as Docker containers, through the docker SDK.

Each workspace is one container labelled as Firebox's, its files on a named volume mounted at
/workspace that outlives the container. Everything needed to rebuild a workspace after a restart
(spec, policy, env, name) lives in the container's labels, so the engine is the only state: a new
executor adopts every labelled container it finds. The container's main process is docker-init
(tini) running an idle shell loop; commands and sessions come in through `docker exec`.

Warm-pool members (executor_service/pool.py) are ordinary workspace containers with one more label,
LABEL_POOL. Labels cannot change on a container, so when a client takes a member the name and
labels it asked for are written to a claim file, <config-dir>/pool-claims/<id>.json (atomic, synced),
and read from there: a pooled container with a claim file is a workspace like any other, one
without is a member still waiting in the pool (never listed, never found by id).

Session shells move their bytes through FIFOs when the backend has an `io_dir` (transports.py,
FifoTransport): each workspace gets `io_dir/<id>` bind-mounted read-only at IO_MOUNT (a FIFO opens
read-write on a read-only mount; the workspace cannot create or remove anything there), marked by
LABEL_IO. Workspaces made without it (older ones, or with --session-io attach) use the docker exec
socket, as do file transfers.

Every SDK call is blocking, so each runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.types import Mount

from executor_service.backend import (
    DOCKER,
    LABEL_ID,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_POOL,
    STATES,
    Policy,
    ShellTransport,
    WorkspaceInfo,
    WorkspaceSpec,
)
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

CONTAINER_PREFIX = "firebox-"
VOLUME_PREFIX = "firebox-ws-"
WORKDIR = "/workspace"
# The idle main process: exits at once on SIGTERM (tini forwards it), so stop takes no timeout.
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
STOP_TIMEOUT_SECONDS = 3
IMAGE_HELP = "build it with `make images` (scripts/build-images.sh) or load it with `docker load`"


# What a workspace id can look like ("ws_" + hex; a little wider so that any id this backend ever
# made still resolves).
_WORKSPACE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
T = TypeVar("T")


async def _engine(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking SDK call in a worker thread. An engine that does not answer (socket gone,
    connection reset) is UNAVAILABLE naming it, not an unknown error."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise errors.Unavailable(f"the Docker engine is not answering ({exc}); is dockerd running?") from exc


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
    parts.append(f"memory {_limit(policy.memory_bytes, 'MiB', 1024 * 1024)}")
    parts.append(f"pids {policy.pids_limit or 'unlimited'}")
    parts.append(f"cpu {_limit(policy.cpu_millis, 'm', 1)}")
    parts.append("read-only root" if policy.read_only_root else "writable root")
    parts.append("/workspace read-only" if policy.read_only else "/workspace writable")
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
    if "capabilities" in known:
        known["capabilities"] = tuple(known["capabilities"])
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
        # Where taken warm-pool members keep their name and labels; None = no pool possible.
        self.claims_dir = claims_dir
        self._claims: dict[str, dict[str, Any]] = {}
        # Filled by adopt(): pool members found waiting, for the pool to take back or remove.
        self.pool_members: list[WorkspaceInfo] = []

    # ---- workspace lifecycle -------------------------------------------------------------------

    async def create(self, spec: WorkspaceSpec, pool_key: str = "") -> WorkspaceInfo:
        """Create and start the workspace; with `pool_key`, as a member of that warm pool."""
        # Create first and look at the image only when the engine misses it: one call less on the
        # common path (create-to-running is measured against a bare SDK create+start).
        try:
            container = await _engine(self._create_and_start, spec, pool_key)
        except docker.errors.ImageNotFound:
            await self._ensure_image(spec.image)
            container = await _engine(self._create_and_start, spec, pool_key)
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

    async def _list_all(self) -> list[WorkspaceInfo]:
        # The SDK lists, then inspects each container: one removed in between is simply gone from
        # the answer (ignore_removed), not a NotFound escaping a List.
        containers = await _engine(
            self.client.containers.list, all=True, filters=self._filters, ignore_removed=True
        )
        infos = []
        for container in containers:
            try:
                infos.append(self._info(container))
            except (KeyError, ValueError) as exc:
                log.warning("workspace_unreadable", container=container.name, error=repr(exc))
        return infos

    async def start(self, workspace_id: str) -> WorkspaceInfo:
        container = await self._container(workspace_id)
        await _engine(container.start)
        await _engine(container.reload)
        return self._info(container)

    async def stop(self, workspace_id: str) -> WorkspaceInfo:
        container = await self._container(workspace_id)
        await _engine(container.stop, timeout=STOP_TIMEOUT_SECONDS)
        await _engine(container.reload)
        return self._info(container)

    async def delete(self, workspace_id: str) -> None:
        container = await self._container(workspace_id)
        volume = container.labels.get(LABEL_VOLUME) or volume_name(workspace_id)
        try:
            await _engine(container.remove, force=True)
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
        if self.io_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self.io_dir / workspace_id, True)

    async def adopt(self) -> list[WorkspaceInfo]:
        """At start-up: every labelled container is a workspace of this executor, except pool
        members nobody took (kept in `pool_members` for the pool). Volumes whose container is gone
        are reported, not deleted: their files may still matter to someone."""
        self._claims = await asyncio.to_thread(self._read_claims)
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
        volumes = await _engine(self.client.volumes.list, filters=self._filters)
        in_use = {volume_name(i.id) for i in everything}
        for volume in volumes:
            if volume.name not in in_use:
                log.warning(
                    "workspace_volume_without_container",
                    volume=volume.name,
                    hint="its workspace was removed outside Firebox; `docker volume rm` it if unneeded",
                )
        return infos

    # ---- commands ----------------------------------------------------------------------------

    async def open_shell(
        self, workspace: WorkspaceInfo, argv: list[str], env: dict[str, str], *, session: bool = False
    ) -> ShellTransport:
        """`argv` in the workspace. A `session` shell (long-lived, many small frames) gets the
        FIFO path when the workspace has it."""
        from executor_service.transports import DockerExecTransport, FifoTransport, FifoUnavailable

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

    async def oom_kills(self, workspace: WorkspaceInfo) -> int | None:
        container_id = await self._container_id(workspace.id)
        if container_id is None:
            return None
        return await asyncio.to_thread(read_oom_kills, container_id)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)

    # ---- helpers -----------------------------------------------------------------------------

    async def _ensure_image(self, image: str) -> None:
        try:
            await _engine(self.client.images.get, image)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise errors.FailedPrecondition(
                f"image {image!r} cannot be inspected: {exc.explanation}"
            ) from exc
        repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        try:
            log.info("pulling_image", image=image)
            await _engine(self.client.images.pull, repository or image, tag=tag or None)
        except (docker.errors.APIError, docker.errors.DockerException) as exc:
            reason = getattr(exc, "explanation", None) or str(exc)
            raise errors.FailedPrecondition(
                f"image {image!r} is not present and cannot be pulled ({reason}); {IMAGE_HELP}"
            ) from exc

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
        host_config: dict[str, Any] = {
            "network_mode": "bridge" if policy.network else "none",
            "cap_drop": ["ALL"],
            "cap_add": list(policy.capabilities) or None,
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
                spec.image,
                command=IDLE_COMMAND,
                name=container_name(spec.id),
                labels=labels,
                environment=dict(spec.env),
                user=policy.user,
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
            container.start()
        except docker.errors.APIError as exc:
            container.remove(force=True)
            self._remove_volume(volume)
            self._remove_disk(spec.id)
            raise errors.FailedPrecondition(
                f"the workspace container did not start (check policy.user and the image): {exc.explanation}"
            ) from exc
        container.reload()
        return container

    def _workspace_mount(self, spec: WorkspaceSpec, volume: str) -> tuple[Mount, Policy]:
        """/workspace: a named volume, or with policy.disk_bytes a filesystem of that size of its
        own (backends/disks.py), bind-mounted. The policy in force comes back with it: disk_bytes
        0 where the limit cannot be made here."""
        policy = spec.policy
        if policy.disk_bytes:
            if self.disks is not None:
                try:
                    source = self.disks.prepare(spec.id, policy.disk_bytes, policy.user)
                    return Mount(WORKDIR, str(source), type="bind", read_only=policy.read_only), policy
                except DiskUnavailable:
                    pass
            policy = replace(policy, disk_bytes=0)
        labels = {LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_ID: spec.id}
        return Mount(WORKDIR, volume, type="volume", read_only=policy.read_only, labels=labels), policy

    def _remove_disk(self, workspace_id: str) -> None:
        if self.disks is not None:
            self.disks.remove(workspace_id)

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
        name = labels.get(LABEL_NAME, "")
        user_labels = json.loads(labels.get(LABEL_USER_LABELS) or "{}")
        pool_key = labels.get(LABEL_POOL, "")
        claim = self._claims.get(workspace_id) if pool_key else None
        if labels.get(LABEL_IO) == IO_MOUNT:
            self._io_workspaces.add(workspace_id)
        if claim is not None:
            name, user_labels, pool_key = claim.get("name", ""), dict(claim.get("labels", {})), ""
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
