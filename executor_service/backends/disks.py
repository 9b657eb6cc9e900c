"""A size-limited /workspace for Docker workspaces: one sparse ext4 image per workspace, loop-mounted
on the host under <config-dir>/disks/<id> and bind-mounted into the container at /workspace.

Why this and not the engine's own options: `--storage-opt size` and the local volume driver's
`size` work only on overlay2 over xfs with project quotas (or on tmpfs, which would hold the files
in memory); this engine's backing filesystem is ext4 (`docker info`: extfs). A filesystem of its
own gives the workspace a real ENOSPC at its size, leaves other workspaces and the host's disk
alone (the image is sparse: it takes on disk only what was written, at most its size), and needs
only e2fsprogs and util-linux, present on every Debian. It needs root (mount) and dockerd in the
executor's mount namespace; where the filesystem cannot be made, the workspace gets the plain
volume and reports disk_bytes 0 (not enforced), said once in the log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from firebox.common.logging import get_logger

log = get_logger("executor.backends.disks")

_warned = False


class DiskUnavailable(Exception):
    """The size-limited filesystem cannot be made here (not root, no mkfs.ext4, no loop devices)."""


class WorkspaceDisks:
    """The images and mount points under `root` (blocking methods: call in a worker thread)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mountpoint(self, workspace_id: str) -> Path:
        return self.root / workspace_id

    def image(self, workspace_id: str) -> Path:
        return self.root / f"{workspace_id}.img"

    def prepare(self, workspace_id: str, size: int, user: str) -> Path:
        """Make and mount the workspace's filesystem of `size` bytes, its root owned by `user`
        (UID[:GID]; a name leaves it open to all, sticky). The mount point, for a bind mount."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        image, mountpoint = self.image(workspace_id), self.mountpoint(workspace_id)
        uid, _, gid = user.partition(":")
        owner = f"root_owner={uid}:{gid or uid}," if uid.isdigit() and (not gid or gid.isdigit()) else ""
        try:
            with open(image, "wb") as f:
                f.truncate(size)
            _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", f"{owner}lazy_itable_init=1,nodiscard", str(image))
            mountpoint.mkdir(exist_ok=True)
            _run("mount", "-o", "loop,nosuid,nodev", str(image), str(mountpoint))
        except (OSError, DiskUnavailable) as exc:
            self.remove(workspace_id)
            _warn_once(str(exc))
            raise DiskUnavailable(str(exc)) from exc
        with contextlib.suppress(OSError):
            (mountpoint / "lost+found").rmdir()
        if not owner:
            mountpoint.chmod(0o1777)
        return mountpoint

    def ensure_mounted(self, workspace_id: str) -> None:
        """After a host restart the image is there but not mounted: mount it again."""
        image, mountpoint = self.image(workspace_id), self.mountpoint(workspace_id)
        if not image.exists() or os.path.ismount(mountpoint):
            return
        mountpoint.mkdir(exist_ok=True)
        try:
            _run("mount", "-o", "loop,nosuid,nodev", str(image), str(mountpoint))
        except DiskUnavailable as exc:
            log.error("workspace_disk_not_mounted", workspace_id=workspace_id, error=str(exc))

    def remove_others(self, present: set[str]) -> None:
        """At start-up: the filesystems of workspaces removed outside Firebox."""
        for image in self.root.glob("*.img") if self.root.is_dir() else ():
            if image.stem not in present:
                self.remove(image.stem)

    def remove(self, workspace_id: str) -> None:
        """Unmount (the loop device goes with it) and delete the image. Idempotent."""
        mountpoint = self.mountpoint(workspace_id)
        if os.path.ismount(mountpoint):
            try:
                _run("umount", str(mountpoint))
            except DiskUnavailable:
                # Still busy (a container being removed): detach now, freed once unused.
                with contextlib.suppress(DiskUnavailable):
                    _run("umount", "-l", str(mountpoint))
        if not os.path.ismount(mountpoint):
            shutil.rmtree(mountpoint, ignore_errors=True)
        self.image(workspace_id).unlink(missing_ok=True)


def _run(*argv: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiskUnavailable(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        raise DiskUnavailable(f"{argv[0]} failed: {done.stderr.decode(errors='replace').strip()[:300]}")


def _warn_once(error: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "workspace_disk_limit_unavailable",
            error=error,
            hint="workspaces get an unlimited /workspace (reported as disk_bytes 0); the executor needs "
            "root, mkfs.ext4 and loop devices, with dockerd in its mount namespace",
        )
