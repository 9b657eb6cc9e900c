"""A cgroup of its own for every process the executor starts in a container (a `docker exec`):
whatever it forks is found by cgroup membership, which nothing inside the container can shed.

A shell's children used to be found by process group and by an environment marker; a daemon
that calls setsid and clears its environment (`env -i setsid sleep 1000 &`) escaped both and
outlived CloseSession. Cgroup membership is inherited by every fork, and a process in the
container cannot move itself out: cgroupfs is mounted read-only there and the workspace has no
capabilities. The executor (on the host, as root) creates the child cgroup inside the container's
own, so the container's limits still apply to it (cgroups are hierarchical), and moves the exec'd
process in before that process has forked anything (the shell protocol's first step is to read
its nonce from the executor). Closing kills everything left in it and removes it.

cgroup v1 (this machine: the `pids` hierarchy holds the child) and v2 (the unified hierarchy;
`cgroup.kill` where the kernel has it) are both handled. Where the executor cannot write the
hierarchy (not root, or itself in a container without the host's cgroupfs), `create` returns
None and processes are found the old way, said once in the log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from firebox.common.logging import get_logger

log = get_logger("executor.containment")

CGROUP_ROOT = Path("/sys/fs/cgroup")
CHILD_PREFIX = "firebox-exec-"
# Kill rounds before giving up on an empty cgroup (a process forking as fast as it is killed
# is held by the pids limit; each round kills what the previous one raced with).
KILL_ROUNDS = 50
_warned = False


class ExecCgroup:
    """The cgroup of one exec'd process and everything it forks (see the module docstring)."""

    def __init__(self, path: Path, root_pid: int) -> None:
        self.path = path
        self.root_pid = root_pid

    @classmethod
    def create(cls, host_pid: int) -> ExecCgroup | None:
        """Move `host_pid` (a process just exec'd in a container) into a new child of its cgroup.
        None when that cannot be done here. Blocking: call in a worker thread."""
        try:
            parent = _own_cgroup_dir(host_pid)
            if parent is None:
                raise OSError("no pids (v1) or unified (v2) cgroup hierarchy found")
            path = parent / f"{CHILD_PREFIX}{host_pid}"
            path.mkdir(exist_ok=True)
            try:
                (path / "cgroup.procs").write_text(f"{host_pid}\n")
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                raise
        except (FileNotFoundError, ProcessLookupError):
            return None  # the process has exited already: nothing to contain
        except OSError as exc:
            _warn_once(repr(exc))
            return None
        return cls(path, host_pid)

    def pids(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(line) for line in text.split()]

    def kill_strays(self) -> int:
        """Kill every process in the cgroup but the exec'd one and its direct children (a shell's
        own loops): what a finished command left behind, daemons included. Blocking."""
        killed = 0
        for pid in self.pids():
            if pid == self.root_pid or _parent(pid) == self.root_pid:
                continue
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        return killed

    def destroy(self) -> int:
        """Kill everything in the cgroup and remove it. Blocking; idempotent."""
        killed = 0
        kill_file = self.path / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1\n")
        for _ in range(KILL_ROUNDS):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            time.sleep(0.01)
        for _ in range(KILL_ROUNDS):
            try:
                self.path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # the last killed processes are still being reaped
                time.sleep(0.01)
        return killed


def _own_cgroup_dir(pid: int) -> Path | None:
    """Where `pid`'s cgroup is on the host: v1's pids hierarchy, else the v2 unified one."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    unified: str | None = None
    for line in lines:
        _, controllers, relative = line.split(":", 2)
        if "pids" in controllers.split(",") and (CGROUP_ROOT / "pids").is_dir():
            return CGROUP_ROOT / "pids" / relative.lstrip("/")
        if controllers == "":
            unified = relative
    if unified is not None and (CGROUP_ROOT / "cgroup.controllers").exists():
        return CGROUP_ROOT / unified.lstrip("/")
    return None


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _warn_once(error: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "exec_cgroups_unavailable",
            error=error,
            hint="processes that leave a shell's process group and clear their environment may outlive "
            "their session; run the executor as root on the host for per-exec cgroups",
        )
