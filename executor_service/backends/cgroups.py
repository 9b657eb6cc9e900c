"""Per-workspace resource limits for the bwrap backend through cgroup v1 (pids, memory, cpu).

Available when the executor may write the cgroup v1 hierarchies (as root, on a cgroup-v1 host
like this project's CI). Each workspace gets `<controller>/firebox/<workspace-id>/` in the pids,
memory and cpu hierarchies; a sandbox enters them before bubblewrap starts (see `enter_argv`), so
every process it ever forks is counted. cgroup v2 hosts are not handled here: there the backend
reports pids and cpu as not enforced and caps memory per process instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from executor_service.backend import Policy
from firebox.common.logging import get_logger

log = get_logger("executor.backends.cgroups")

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("pids", "memory", "cpu")
# Optional: where the host has it, pausing a workspace freezes its cgroup (as Docker pause does).
FREEZER = "freezer"
FREEZE_TIMEOUT_SECONDS = 10.0
PARENT = "firebox"
CFS_PERIOD_US = 100_000
# The wrapper that moves itself into the cgroups, then becomes the sandbox. Arguments: the
# cgroup.procs files, "--", the command.
_ENTER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


class CgroupLimits:
    """Creates, fills and removes one workspace's cgroups (v1)."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root

    @classmethod
    def detect(cls, root: Path = ROOT) -> CgroupLimits | None:
        """The limiter when cgroup v1 pids/memory/cpu hierarchies are writable here, else None."""
        if (root / "cgroup.controllers").exists():
            return None  # cgroup v2 (unified): not handled
        probe = f"{PARENT}-probe-{os.getpid()}"
        try:
            for controller in CONTROLLERS:
                base = root / controller
                if not (base / "cgroup.procs").exists():
                    return None
                (base / PARENT).mkdir(exist_ok=True)
                (base / PARENT / probe).mkdir(exist_ok=True)
                (base / PARENT / probe).rmdir()
        except OSError:
            return None
        return cls(root)

    def _dir(self, controller: str, workspace_id: str) -> Path:
        return self.root / controller / PARENT / workspace_id

    def ensure(self, workspace_id: str, policy: Policy) -> None:
        """Create the workspace's cgroups if missing and set their limits (idempotent)."""
        pids = self._dir("pids", workspace_id)
        memory = self._dir("memory", workspace_id)
        cpu = self._dir("cpu", workspace_id)
        for directory in (pids, memory, cpu):
            directory.mkdir(parents=True, exist_ok=True)
        (pids / "pids.max").write_text(str(policy.pids_limit) if policy.pids_limit else "max")
        limit = str(policy.memory_bytes) if policy.memory_bytes else "-1"
        # memsw (memory + swap) set equal: no swap, so a hog meets the OOM killer. The kernel
        # wants memsw >= memory at every step, hence the order. memsw is absent without swap
        # accounting, and then there is no swap to worry about.
        mem, memsw = memory / "memory.limit_in_bytes", memory / "memory.memsw.limit_in_bytes"
        for path in (mem, memsw) if policy.memory_bytes else (memsw, mem):
            if path.exists():
                path.write_text(limit)
        (cpu / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        quota = policy.cpu_millis * CFS_PERIOD_US // 1000 if policy.cpu_millis else -1
        (cpu / "cpu.cfs_quota_us").write_text(str(quota))
        if self.has_freezer:
            self._dir(FREEZER, workspace_id).mkdir(parents=True, exist_ok=True)

    @property
    def has_freezer(self) -> bool:
        return (self.root / FREEZER / "cgroup.procs").exists()

    def _controllers(self) -> tuple[str, ...]:
        return (*CONTROLLERS, FREEZER) if self.has_freezer else CONTROLLERS

    def set_frozen(self, workspace_id: str, frozen: bool) -> None:
        """Freeze (or thaw) every process of the workspace; returns once the kernel says it is
        done. RuntimeError without a freezer hierarchy or when freezing does not complete."""
        if not self.has_freezer:
            raise RuntimeError("no cgroup v1 freezer hierarchy on this host")
        directory = self._dir(FREEZER, workspace_id)
        directory.mkdir(parents=True, exist_ok=True)
        wanted = "FROZEN" if frozen else "THAWED"
        deadline = time.monotonic() + FREEZE_TIMEOUT_SECONDS
        while True:
            # Freezing may stay FREEZING while a process is in an uninterruptible sleep: asking
            # again retries it.
            (directory / "freezer.state").write_text(wanted)
            if (directory / "freezer.state").read_text().strip() == wanted:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the workspace's cgroup did not become {wanted} within {FREEZE_TIMEOUT_SECONDS:.0f}s"
                )
            time.sleep(0.01)

    def enter_argv(self, workspace_id: str, argv: list[str]) -> list[str]:
        """`argv` run so that it is inside the workspace's cgroups from its first instruction."""
        procs = [str(self._dir(c, workspace_id) / "cgroup.procs") for c in self._controllers()]
        return ["/bin/sh", "-c", _ENTER, "firebox-cgroup", *procs, "--", *argv]

    def oom_kills(self, workspace_id: str) -> int | None:
        try:
            text = (self._dir("memory", workspace_id) / "memory.oom_control").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    def kill_all(self, workspace_id: str) -> None:
        """SIGKILL every process in the workspace (what stopping a container does)."""
        procs = self._dir("pids", workspace_id) / "cgroup.procs"
        for _ in range(20):
            try:
                pids = [int(p) for p in procs.read_text().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self, workspace_id: str) -> None:
        """Kill what is left and remove the cgroups."""
        if self.has_freezer:
            # A frozen process cannot die: thaw first.
            with contextlib.suppress(OSError, RuntimeError):
                self.set_frozen(workspace_id, False)
        self.kill_all(workspace_id)
        for controller in self._controllers():
            directory = self._dir(controller, workspace_id)
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # Killed processes leave their cgroup a moment after the signal.
                    time.sleep(0.02)
            else:
                log.warning("cgroup_not_removed", directory=str(directory))
