"""Choosing a workspace backend: docker when its engine answers, else bubblewrap."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from executor_service.backend import BWRAP, DOCKER
from executor_service.backends.bwrap import BwrapBackend
from executor_service.backends.cgroups import CgroupLimits
from executor_service.backends.docker import DockerBackend
from firebox.common.logging import get_logger

if TYPE_CHECKING:
    import docker

log = get_logger("executor.backends")

PING_TIMEOUT_SECONDS = 3
# For every later engine call (a pull or a slow container start may take a while).
ENGINE_TIMEOUT_SECONDS = 120

Backend = DockerBackend | BwrapBackend


class BackendUnavailable(RuntimeError):
    """The configured backend cannot run on this machine; the message says what to do."""


def _docker_client() -> docker.DockerClient:
    import docker

    # A short timeout while the engine is asked for its version and pinged: the answer decides
    # the backend at start-up, and an engine that hangs must not hold the executor for a minute.
    client = docker.from_env(timeout=PING_TIMEOUT_SECONDS)
    try:
        client.ping()
    except Exception:
        client.close()
        raise
    client.api.timeout = ENGINE_TIMEOUT_SECONDS
    return client


def instance_id(config_dir: Path) -> str:
    """This executor's identity, kept in its config dir: it owns the Docker workspaces labelled with
    it, and a restart with the same config dir adopts them."""
    path = config_dir / "instance-id"
    try:
        existing = path.read_text().strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    config_dir.mkdir(parents=True, exist_ok=True)
    new = "ex_" + secrets.token_hex(8)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new + "\n")
    tmp.replace(path)
    return new


def engine_shares_filesystem() -> bool:
    """The Docker engine runs in this process's mount namespace, so a bind mount's source path
    means to it what it means here (not so when the executor runs in a container of its own).
    Blocking: reads /proc."""
    try:
        ours = os.readlink("/proc/self/ns/mnt")
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/comm") as f:
                    if f.read().strip() != "dockerd":
                        continue
                if os.readlink(f"/proc/{entry.name}/ns/mnt") == ours:
                    return True
            except OSError:
                continue
    except OSError:
        pass
    return False


async def choose_backend(choice: str, config_dir: Path, session_io: str = "auto") -> Backend:
    """Build the backend `choice` names ("auto", "docker" or "bwrap") for the executor whose
    state lives in `config_dir`; `session_io` decides how docker session shells move their bytes
    (see executor_service/config.py)."""
    workspaces_dir = config_dir / "workspaces"
    if choice in ("auto", DOCKER):
        try:
            client = await asyncio.to_thread(_docker_client)
            log.info("backend_chosen", backend=DOCKER, requested=choice)
            owner = await asyncio.to_thread(instance_id, config_dir)
            shares = await asyncio.to_thread(engine_shares_filesystem)
            fifo = session_io == "fifo" or (session_io == "auto" and shares)
            log.info("session_io", mode="fifo" if fifo else "attach", requested=session_io)
            # A bind mount's source must be an absolute host path.
            resolved = await asyncio.to_thread(config_dir.resolve)
            io_dir = resolved / "io" if fifo else None
            if not shares:
                # A loop mount made here would not be what dockerd binds: no /workspace size limits.
                log.warning("workspace_disk_limits_off", reason="dockerd runs in another mount namespace")
            return DockerBackend(
                client,
                owner,
                claims_dir=config_dir / "pool-claims",
                io_dir=io_dir,
                writable_dir=config_dir / "writable-paths",
                disks_dir=resolved / "disks" if shares else None,
            )
        except Exception as exc:
            if choice == DOCKER:
                raise BackendUnavailable(
                    f"--backend docker: the Docker engine does not answer ({exc}); start it "
                    "(`make docker` or scripts/start-docker.sh) or choose --backend bwrap"
                ) from exc
            log.warning(
                "DOCKER ENGINE NOT AVAILABLE: FALLING BACK TO BUBBLEWRAP, WEAKER ISOLATION "
                "(see each Workspace's isolation line for what is enforced)",
                backend=BWRAP,
                docker_error=str(exc),
            )
    if shutil.which("bwrap") is None:
        raise BackendUnavailable("bubblewrap is not installed (`apt-get install bubblewrap`)")
    if choice == BWRAP:
        log.warning("backend_bwrap_weaker_isolation", backend=BWRAP, detail="a sandbox, not a container")
    cgroups = await asyncio.to_thread(CgroupLimits.detect)
    if cgroups is None:
        log.warning(
            "bwrap_without_cgroups",
            detail="cgroup v1 is not writable here: no pids or CPU limits, memory only per process",
        )
    return BwrapBackend(workspaces_dir, cgroups, owner=await asyncio.to_thread(instance_id, config_dir))
