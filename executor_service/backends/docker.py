"""Workspaces as Docker containers, through the docker SDK.

Each workspace is one container labelled as Firebox's, its files on a named volume mounted at
/workspace that outlives the container. Everything needed to rebuild a workspace after a restart
(spec, policy, env, name) lives in the container's labels, so the engine is the only state: a new
executor adopts every labelled container it finds. The container's main process is docker-init
(tini) running an idle shell loop; commands and sessions come in through `docker exec`.

Every SDK call is blocking, so each runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount

from executor_service.backend import (
    DOCKER,
    LABEL_ID,
    LABEL_MANAGED,
    LABEL_NAME,
    STATES,
    Policy,
    ShellTransport,
    WorkspaceInfo,
    WorkspaceSpec,
)
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

CONTAINER_PREFIX = "firebox-"
VOLUME_PREFIX = "firebox-ws-"
WORKDIR = "/workspace"
# The idle main process: exits at once on SIGTERM (tini forwards it), so stop takes no timeout.
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
STOP_TIMEOUT_SECONDS = 3
IMAGE_HELP = "build it with `make images` (scripts/build-images.sh) or load it with `docker load`"


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

    def __init__(self, client: docker.DockerClient | None = None, owner: str = "default") -> None:
        self.client = client or docker.from_env()
        self.owner = owner
        self._filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={owner}"]}

    # ---- workspace lifecycle -------------------------------------------------------------------

    async def create(self, spec: WorkspaceSpec) -> WorkspaceInfo:
        # Create first and look at the image only when the engine misses it: one call less on the
        # common path (create-to-running is measured against a bare SDK create+start).
        try:
            container = await asyncio.to_thread(self._create_and_start, spec)
        except docker.errors.ImageNotFound:
            await self._ensure_image(spec.image)
            container = await asyncio.to_thread(self._create_and_start, spec)
        return self._info(container)

    async def get(self, workspace_id: str) -> WorkspaceInfo:
        return self._info(await self._container(workspace_id))

    async def list(self) -> list[WorkspaceInfo]:
        containers = await asyncio.to_thread(self.client.containers.list, all=True, filters=self._filters)
        infos = []
        for container in containers:
            try:
                infos.append(self._info(container))
            except (KeyError, ValueError) as exc:
                log.warning("workspace_unreadable", container=container.name, error=repr(exc))
        return infos

    async def start(self, workspace_id: str) -> WorkspaceInfo:
        container = await self._container(workspace_id)
        await asyncio.to_thread(container.start)
        await asyncio.to_thread(container.reload)
        return self._info(container)

    async def stop(self, workspace_id: str) -> WorkspaceInfo:
        container = await self._container(workspace_id)
        await asyncio.to_thread(container.stop, timeout=STOP_TIMEOUT_SECONDS)
        await asyncio.to_thread(container.reload)
        return self._info(container)

    async def delete(self, workspace_id: str) -> None:
        container = await self._container(workspace_id)
        volume = container.labels.get(LABEL_VOLUME) or volume_name(workspace_id)
        await asyncio.to_thread(container.remove, force=True)
        await asyncio.to_thread(self._remove_volume, volume)

    async def adopt(self) -> list[WorkspaceInfo]:
        """At start-up: every labelled container is a workspace of this executor. Volumes whose
        container is gone are reported, not deleted: their files may still matter to someone."""
        infos = await self.list()
        volumes = await asyncio.to_thread(self.client.volumes.list, filters=self._filters)
        in_use = {volume_name(i.id) for i in infos}
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
        self, workspace: WorkspaceInfo, argv: list[str], env: dict[str, str]
    ) -> ShellTransport:
        from executor_service.transports import DockerExecTransport

        return await DockerExecTransport.open(
            self.client,
            container_name(workspace.id),
            argv=argv,
            env=env,
            user=workspace.policy.user,
            workdir=WORKDIR,
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
            await asyncio.to_thread(self.client.images.get, image)
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
            await asyncio.to_thread(self.client.images.pull, repository or image, tag=tag or None)
        except (docker.errors.APIError, docker.errors.DockerException) as exc:
            reason = getattr(exc, "explanation", None) or str(exc)
            raise errors.FailedPrecondition(
                f"image {image!r} is not present and cannot be pulled ({reason}); {IMAGE_HELP}"
            ) from exc

    def _create_and_start(self, spec: WorkspaceSpec) -> Container:
        policy = spec.policy
        volume = volume_name(spec.id)
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
        host_config: dict[str, Any] = {
            "network_mode": "bridge" if policy.network else "none",
            "cap_drop": ["ALL"],
            "cap_add": list(policy.capabilities) or None,
            "security_opt": ["no-new-privileges"] if policy.no_new_privileges else None,
            "read_only": policy.read_only_root,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={policy.tmp_bytes},mode=1777"},
            # The engine creates the labelled volume with the container: no separate call.
            "mounts": [
                Mount(
                    WORKDIR,
                    volume,
                    type="volume",
                    read_only=policy.read_only,
                    labels={LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_ID: spec.id},
                )
            ],
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
            if exc.status_code == 400:
                raise errors.InvalidArgument("policy", f"the engine refused it: {exc.explanation}") from exc
            raise
        try:
            container.start()
        except docker.errors.APIError as exc:
            container.remove(force=True)
            self._remove_volume(volume)
            raise errors.FailedPrecondition(
                f"the workspace container did not start (check policy.user and the image): {exc.explanation}"
            ) from exc
        container.reload()
        return container

    def _remove_volume(self, volume: str) -> None:
        try:
            self.client.volumes.get(volume).remove(force=True)
        except docker.errors.NotFound:
            pass

    async def _container(self, workspace_id: str) -> Container:
        try:
            container = await asyncio.to_thread(self.client.containers.get, container_name(workspace_id))
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
        return WorkspaceInfo(
            id=labels[LABEL_ID],
            name=labels.get(LABEL_NAME, ""),
            image=image,
            state=state if state in STATES else "dead",
            backend=DOCKER,
            policy=policy,
            isolation=isolation_line(policy),
            created=_parse_created(attrs["Created"]),
            env=json.loads(labels.get(LABEL_ENV) or "{}"),
            labels=json.loads(labels.get(LABEL_USER_LABELS) or "{}"),
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
