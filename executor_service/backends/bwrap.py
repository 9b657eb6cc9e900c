"""Workspaces as bubblewrap sandboxes, for machines without a Docker engine.

A workspace is a directory `<config-dir>/workspaces/<id>/`: `files/` is mounted at /workspace and
`workspace.json` holds the spec and state, so a restarted executor adopts it. The root is the
host's /usr, read-only: a snapshot is a copy of `files/` (and the spec) under
`<config-dir>/snapshots/<id>/`, and a fork starts from a copy of that. "Running" means
commands may be started; each session is one `bwrap` process (through A1's PipeTransport) with new
namespaces, read-only host system directories and only the variables it is given.

Resource limits: where the executor may manage cgroup v1 (as root on a cgroup-v1 host, see
cgroups.py) each workspace gets its own pids, memory (no swap; OOM kills are counted) and CPU
limits, as a container would. Elsewhere what cannot be enforced is reported as such: `cpu_millis`
and `pids_limit` read 0 (unlimited), the isolation line says so, and memory is capped per process
through RLIMIT_AS (address space, not resident memory), so a hog sees allocation failures rather
than the OOM killer.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import json
import os
import shutil
import socket
from dataclasses import asdict, replace
from pathlib import Path

from executor_service.backend import (
    BWRAP,
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
from executor_service.backends.cgroups import CgroupLimits
from executor_service.backends.mountns import MountError, open_below
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.backends.bwrap")

METADATA = "workspace.json"
SNAPSHOTS = "snapshots"
SNAPSHOT_METADATA = "snapshot.json"
FILES = "files"
WORKDIR = "/workspace"
# Host system directories bound read-only; the merged-/usr symlinks are recreated as symlinks.
# Not /etc: in the user namespace host-root files appear owned by the sandbox user, so a bound
# /etc would expose /etc/shadow and friends.
SYSTEM_DIRS = ("/usr",)
MERGED_USR_LINKS = ("/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# /dev/shm's size, as Docker's default shm_size.
SHM_BYTES = 64 * 1024 * 1024


def enforced(policy: Policy, with_cgroups: bool) -> Policy:
    """The policy as this backend can enforce it: what it cannot do is set to 0 / false."""
    # No size limit for the files directory here (the docker backend has one: backends/disks.py).
    policy = replace(policy, no_new_privileges=True, disk_bytes=0)
    return policy if with_cgroups else replace(policy, pids_limit=0, cpu_millis=0)


def isolation_line(policy: Policy, with_cgroups: bool) -> str:
    parts = ["bubblewrap sandbox (weaker than a container)", "new namespaces"]
    parts.append("network on" if policy.network else "no network")
    parts.append(f"user {policy.user}")
    parts.append(
        "caps " + ",".join(policy.capabilities) if policy.capabilities else "all capabilities dropped"
    )
    parts.append("no-new-privileges")
    if with_cgroups:
        memory = f"{policy.memory_bytes // (1024 * 1024)}MiB" if policy.memory_bytes else "unlimited"
        parts.append(f"cgroup limits: memory {memory}")
        parts.append(f"pids {policy.pids_limit or 'unlimited'}")
        parts.append(f"cpu {policy.cpu_millis or 'unlimited'}{'m' if policy.cpu_millis else ''}")
    else:
        parts.append(
            f"address space {policy.memory_bytes // (1024 * 1024)}MiB per process (RLIMIT_AS)"
            if policy.memory_bytes
            else "memory unlimited"
        )
        parts.append("NO pids or cpu limit (needs cgroup v1 and root)")
    parts.append("read-only root" if policy.read_only_root else "writable root")
    parts.append(workspace_access(policy))
    parts.append(f"/tmp tmpfs {policy.tmp_bytes // (1024 * 1024)}MiB")
    return ", ".join(parts)


def _open_writable(files_dir: Path, writable_paths: tuple[str, ...]) -> dict[str, int]:
    """An O_PATH fd per writable path's directory (made when missing), opened without following
    any symlink the sandbox may have planted."""
    if not writable_paths:
        return {}
    root = os.open(files_dir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    fds: dict[str, int] = {}
    try:
        owner = (os.fstat(root).st_uid, os.fstat(root).st_gid)
        for path in writable_paths:
            fds[path] = open_below(root, path, create=True, owner=owner)
    except MountError as exc:
        for fd in fds.values():
            os.close(fd)
        raise errors.FailedPrecondition(f"writable path: {exc}") from None
    finally:
        os.close(root)
    return fds


def _snapshot_info(meta: dict[str, object]) -> SnapshotInfo:
    raw = {k: v for k, v in dict(meta["policy"]).items() if k in Policy.__dataclass_fields__}  # type: ignore[call-overload]
    raw["capabilities"] = tuple(raw.get("capabilities", ()))
    snapshot_id = str(meta["id"])
    return SnapshotInfo(
        id=snapshot_id,
        name=str(meta.get("name", "")),
        workspace_id=str(meta["workspace_id"]),
        image=str(meta["image"]),
        image_ref=str(meta["image"]),
        created=dt.datetime.fromisoformat(str(meta["created"])),
        policy=Policy(**raw),
        env=dict(meta.get("env", {})),  # type: ignore[call-overload]
        files_bytes=int(meta.get("files_bytes", 0)),  # type: ignore[call-overload]
    )


def _uid_gid(user: str) -> tuple[int, int]:
    uid_text, _, gid_text = user.partition(":")
    if not uid_text.isdigit() or (gid_text and not gid_text.isdigit()):
        raise errors.InvalidArgument(
            "policy.user", f"the bwrap backend needs numeric UID[:GID], got {user!r}"
        )
    uid = int(uid_text)
    return uid, int(gid_text) if gid_text else uid


def sandbox_argv(
    files_dir: Path,
    policy: Policy,
    argv: list[str],
    env: dict[str, str],
    rlimit_memory: bool = True,
    writable_fds: dict[str, int] | None = None,
    new_session: bool = True,
) -> list[str]:
    """The full command line: bwrap around `argv`, inside prlimit when memory is capped per
    process (`rlimit_memory`, used when there are no cgroups). With writable paths /workspace
    is bound read-only and each path's directory, passed as an open fd (`writable_fds`, path
    -> fd, so a symlink swapped in cannot redirect it), writable on top."""
    uid, gid = _uid_gid(policy.user)
    cmd: list[str] = []
    if policy.memory_bytes and rlimit_memory:
        cmd += ["prlimit", f"--as={policy.memory_bytes}", "--"]
    cmd += ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent"]
    if new_session:
        cmd.append("--new-session")
    if policy.network:
        cmd.append("--share-net")
    for directory in SYSTEM_DIRS:
        if os.path.isdir(directory):
            cmd += ["--ro-bind", directory, directory]
    for link in MERGED_USR_LINKS:
        if os.path.islink(link):
            cmd += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            cmd += ["--ro-bind", link, link]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    # bubblewrap's /dev is an unbounded tmpfs the workspace user owns: /dev/shm gets its own,
    # the size Docker gives a container's.
    cmd += ["--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    cmd += ["--perms", "1777", "--size", str(policy.tmp_bytes), "--tmpfs", "/tmp"]
    cmd += ["--ro-bind" if policy.read_only or policy.writable_paths else "--bind", str(files_dir), WORKDIR]
    for path, fd in (writable_fds or {}).items():
        cmd += ["--bind-fd", str(fd), f"{WORKDIR}/{path}"]
    if policy.read_only_root:
        cmd += ["--remount-ro", "/"]
    cmd += ["--chdir", WORKDIR, "--uid", str(uid), "--gid", str(gid)]
    cmd += ["--cap-drop", "ALL"]
    for cap in policy.capabilities:
        cmd += ["--cap-add", cap if cap.upper().startswith("CAP_") else f"CAP_{cap.upper()}"]
    cmd.append("--clearenv")
    full_env = {"PATH": DEFAULT_PATH, "HOME": WORKDIR, **env}
    for key, value in full_env.items():
        cmd += ["--setenv", key, value]
    cmd.append("--")
    cmd += argv
    return cmd


class BwrapBackend:
    """The bubblewrap workspace backend (see module docstring)."""

    name = BWRAP
    has_warm_pool = False

    def __init__(self, root: Path, cgroups: CgroupLimits | None = None, owner: str = "") -> None:
        self.root = root
        self.cgroups = cgroups
        self.owner = owner
        self.pool_members: builtins.list[WorkspaceInfo] = []
        # One lock per workspace directory keeps metadata writes whole.
        self._lock = asyncio.Lock()

    def _dir(self, workspace_id: str) -> Path:
        if not workspace_id or "/" in workspace_id or workspace_id.startswith("."):
            raise errors.NotFound(f"workspace {workspace_id!r} not found")
        return self.root / workspace_id

    async def claim(self, member: WorkspaceInfo, name: str, labels: dict[str, str]) -> WorkspaceInfo:
        raise errors.FailedPrecondition("the bwrap backend keeps no warm pool")

    async def create(self, spec: WorkspaceSpec, pool_key: str = "") -> WorkspaceInfo:
        if pool_key:
            raise errors.FailedPrecondition("the bwrap backend keeps no warm pool")
        _uid_gid(spec.policy.user)
        policy = enforced(spec.policy, self.cgroups is not None)
        info = WorkspaceInfo(
            id=spec.id,
            name=spec.name,
            image=spec.image,
            state="running",
            backend=BWRAP,
            policy=policy,
            isolation=isolation_line(policy, self.cgroups is not None),
            created=dt.datetime.now(dt.UTC),
            env=dict(spec.env),
            labels=dict(spec.labels),
            parent_snapshot_id=spec.snapshot.id if spec.snapshot is not None else "",
            idle_timeout=spec.idle_timeout,
            ttl=spec.ttl,
        )
        directory = self._dir(spec.id)

        def make() -> None:
            # Owned by the executor's own uid: the user namespace maps the sandbox user onto it,
            # so inside the files belong to the sandbox user.
            if spec.snapshot is not None:
                directory.mkdir(parents=True)
                shutil.copytree(
                    self._snapshot_dir(spec.snapshot.id) / FILES, directory / FILES, symlinks=True
                )
            else:
                (directory / FILES).mkdir(parents=True)
            self._write(info, spec.policy)

        async with self._lock:
            await asyncio.to_thread(make)
        if self.cgroups is not None:
            await asyncio.to_thread(self.cgroups.ensure, spec.id, spec.policy)
        return info

    async def get(self, workspace_id: str) -> WorkspaceInfo:
        return await asyncio.to_thread(self._read, workspace_id)

    async def list(self) -> list[WorkspaceInfo]:
        def read_all() -> list[WorkspaceInfo]:
            if not self.root.is_dir():
                return []
            infos = []
            for entry in sorted(self.root.iterdir()):
                if (entry / METADATA).is_file():
                    try:
                        infos.append(self._read(entry.name))
                    except (errors.NotFound, ValueError, KeyError) as exc:
                        log.warning("workspace_unreadable", directory=str(entry), error=repr(exc))
            return infos

        return await asyncio.to_thread(read_all)

    async def start(self, workspace_id: str) -> WorkspaceInfo:
        return await self._set_state(workspace_id, "running")

    async def pause(self, workspace: WorkspaceInfo) -> WorkspaceInfo:
        """Freeze the workspace's cgroup (cgroup v1 freezer). Without one there is no way to stop
        every process a sandbox forked (they may leave its process group): FailedPrecondition."""
        workspace_id = workspace.id
        info = await self.get(workspace_id)
        if info.state == "paused":
            return info
        if info.state != "running":
            raise errors.FailedPrecondition(f"workspace {workspace_id} is {info.state}, not running")
        if self.cgroups is None or not self.cgroups.has_freezer:
            raise errors.FailedPrecondition(
                "pausing a bwrap workspace needs the cgroup v1 freezer (the executor as root on a "
                "cgroup-v1 host); it is not available here"
            )
        await asyncio.to_thread(self.cgroups.ensure, workspace_id, info.policy)
        try:
            await asyncio.to_thread(self.cgroups.set_frozen, workspace_id, True)
        except RuntimeError as exc:
            await asyncio.to_thread(self.cgroups.set_frozen, workspace_id, False)
            raise errors.Unavailable(f"pausing workspace {workspace_id} failed: {exc}") from exc
        return await self._set_state(workspace_id, "paused")

    async def resume(self, workspace: WorkspaceInfo) -> WorkspaceInfo:
        workspace_id = workspace.id
        info = await self.get(workspace_id)
        if info.state == "running":
            return info
        if info.state != "paused":
            raise errors.FailedPrecondition(
                f"workspace {workspace_id} is {info.state}, not paused; start it with StartWorkspace"
            )
        if self.cgroups is not None and self.cgroups.has_freezer:
            try:
                await asyncio.to_thread(self.cgroups.set_frozen, workspace_id, False)
            except RuntimeError as exc:
                raise errors.Unavailable(f"resuming workspace {workspace_id} failed: {exc}") from exc
        return await self._set_state(workspace_id, "running")

    # ---- snapshots ---------------------------------------------------------------------------

    def _snapshot_dir(self, snapshot_id: str) -> Path:
        if not snapshot_id or "/" in snapshot_id or snapshot_id.startswith("."):
            raise errors.NotFound(f"snapshot {snapshot_id!r} not found")
        return self.root.parent / SNAPSHOTS / snapshot_id

    async def build_image(self, spec: BuildSpec, on_output: OutputSink | None = None) -> BuiltImage:
        """Nothing here can run a Dockerfile: the sandbox's root is the host's."""
        raise errors.FailedPrecondition(
            "building an image from a Dockerfile needs the docker backend; this executor runs "
            "bubblewrap sandboxes (give the devcontainer an image instead)"
        )

    async def create_snapshot(self, workspace: WorkspaceInfo, snapshot_id: str, name: str) -> SnapshotInfo:
        """A copy of the workspace's files (the rest of its root is the host's, read-only). A
        running workspace is frozen meanwhile where the freezer allows, so the copy is of one
        moment."""
        frozen = workspace.state == "running" and self.cgroups is not None and self.cgroups.has_freezer
        if frozen:
            await asyncio.to_thread(self.cgroups.set_frozen, workspace.id, True)  # type: ignore[union-attr]
        try:
            return await asyncio.to_thread(self._snapshot, workspace, snapshot_id, name)
        finally:
            if frozen:
                await asyncio.to_thread(self.cgroups.set_frozen, workspace.id, False)  # type: ignore[union-attr]

    def _snapshot(self, workspace: WorkspaceInfo, snapshot_id: str, name: str) -> SnapshotInfo:
        target = self._snapshot_dir(snapshot_id)
        partial = target.with_name(f".{snapshot_id}.partial")
        try:
            shutil.copytree(self._dir(workspace.id) / FILES, partial / FILES, symlinks=True)
            size = sum(p.lstat().st_size for p in (partial / FILES).rglob("*") if not p.is_dir())
            meta = {
                "id": snapshot_id,
                "name": name,
                "workspace_id": workspace.id,
                "image": workspace.image,
                "created": dt.datetime.now(dt.UTC).isoformat(),
                "policy": asdict(workspace.policy),
                "env": workspace.env,
                "files_bytes": size,
            }
            (partial / SNAPSHOT_METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True))
            # Whole or absent: a crash mid-copy leaves only a .partial directory.
            os.replace(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return _snapshot_info(meta)

    async def list_snapshots(self) -> builtins.list[SnapshotInfo]:
        def read_all() -> list[SnapshotInfo]:
            base = self.root.parent / SNAPSHOTS
            found = []
            for entry in sorted(base.iterdir()) if base.is_dir() else []:
                if entry.name.startswith("."):
                    continue
                try:
                    found.append(_snapshot_info(json.loads((entry / SNAPSHOT_METADATA).read_text())))
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("snapshot_unreadable", directory=str(entry), error=repr(exc))
            return found

        return await asyncio.to_thread(read_all)

    async def get_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        path = self._snapshot_dir(snapshot_id) / SNAPSHOT_METADATA
        try:
            return _snapshot_info(json.loads(await asyncio.to_thread(path.read_text)))
        except FileNotFoundError as exc:
            raise errors.NotFound(f"snapshot {snapshot_id!r} not found") from exc

    async def delete_snapshot(self, snapshot_id: str) -> None:
        await self.get_snapshot(snapshot_id)
        await asyncio.to_thread(shutil.rmtree, self._snapshot_dir(snapshot_id))

    async def stop(self, workspace_id: str) -> WorkspaceInfo:
        # Its bwrap processes are the sessions, which the workspace manager closes first; with
        # cgroups anything left behind is killed too, as stopping a container would.
        info = await self._set_state(workspace_id, "exited")
        if self.cgroups is not None:
            if self.cgroups.has_freezer:
                await asyncio.to_thread(self.cgroups.set_frozen, workspace_id, False)
            await asyncio.to_thread(self.cgroups.kill_all, workspace_id)
        return info

    async def delete(self, workspace_id: str) -> None:
        directory = self._dir(workspace_id)
        async with self._lock:
            if not (directory / METADATA).is_file():
                raise errors.NotFound(f"workspace {workspace_id!r} not found")
            if self.cgroups is not None:
                await asyncio.to_thread(self.cgroups.remove, workspace_id)
            await asyncio.to_thread(shutil.rmtree, directory)

    async def adopt(self) -> builtins.list[WorkspaceInfo]:
        """At start-up: every workspace directory is adopted in the state it was left in."""
        return await self.list()

    async def open_shell(
        self,
        workspace: WorkspaceInfo,
        argv: builtins.list[str],
        env: dict[str, str],
        *,
        session: bool = False,
    ) -> ShellTransport:
        from executor_service.backends.local_transports import PipeTransport

        files_dir = self._dir(workspace.id) / FILES
        writable_fds = await asyncio.to_thread(_open_writable, files_dir, workspace.policy.writable_paths)
        try:
            command = sandbox_argv(
                files_dir, workspace.policy, argv, env, self.cgroups is None, writable_fds=writable_fds
            )
            if self.cgroups is not None:
                # Idempotent: after a reboot the cgroups of an adopted workspace are gone.
                await asyncio.to_thread(self.cgroups.ensure, workspace.id, workspace.policy)
                command = self.cgroups.enter_argv(workspace.id, command)
            # bwrap itself gets a minimal environment: nothing of the executor's leaks through it.
            return await PipeTransport.spawn(
                command, env={"PATH": DEFAULT_PATH}, pass_fds=tuple(writable_fds.values())
            )
        finally:
            for fd in writable_fds.values():
                os.close(fd)

    async def set_writable_paths(
        self, workspace: WorkspaceInfo, writable_paths: tuple[str, ...], *, sessions_open: bool
    ) -> WorkspaceInfo:
        """Each process gets its mounts when it starts, so a change reaches new processes only:
        refused while shell sessions are open (they would keep the old view)."""
        if sessions_open:
            raise errors.FailedPrecondition(
                f"workspace {workspace.id} has open shell sessions, and the bwrap backend cannot change "
                "what a running sandbox sees; close them (CloseSession) first, or use the docker backend"
            )

        def update() -> WorkspaceInfo:
            path = self._dir(workspace.id) / METADATA
            try:
                data = json.loads(path.read_text())
            except FileNotFoundError as exc:
                raise errors.NotFound(f"workspace {workspace.id!r} not found") from exc
            # Checked (and made) now, so a bad path is refused here rather than by the next command.
            for fd in _open_writable(self._dir(workspace.id) / FILES, writable_paths).values():
                os.close(fd)
            data["policy"]["writable_paths"] = list(writable_paths)
            self._write_data(workspace.id, data)
            return self._read(workspace.id)

        async with self._lock:
            return await asyncio.to_thread(update)

    async def open_tty(
        self, workspace: WorkspaceInfo, argv: builtins.list[str], env: dict[str, str], rows: int, cols: int
    ) -> TtyTransport:
        from executor_service.backends.local_transports import PtyTransport

        files_dir = self._dir(workspace.id) / FILES
        # The program must lead a session INSIDE the sandbox's pid namespace, with the terminal
        # as its controlling terminal: util-linux's setsid (from the host's /usr) does both (and
        # waits, should it have to fork). Taken outside, the terminal's process groups would be
        # invisible inside, and an interactive shell could not hand the terminal back on exit.
        # No --new-session: it would leave the terminal behind, and the terminal is the
        # program's own, so TIOCSTI reaches nothing else.
        command = sandbox_argv(
            files_dir,
            workspace.policy,
            ["setsid", "--wait", "--ctty", *argv],
            env,
            rlimit_memory=self.cgroups is None,
            new_session=False,
        )
        if self.cgroups is not None:
            await asyncio.to_thread(self.cgroups.ensure, workspace.id, workspace.policy)
            command = self.cgroups.enter_argv(workspace.id, command)
        return await PtyTransport.spawn(command, {"PATH": DEFAULT_PATH}, rows, cols)

    async def connect_port(self, workspace: WorkspaceInfo, port: int) -> socket.socket:
        from executor_service import ports

        if not workspace.policy.network:
            # --unshare-all gives every bwrap process a network namespace of its own: there is
            # no one namespace of the workspace to enter.
            raise errors.FailedPrecondition(
                "the bwrap backend cannot forward ports of a workspace without network (each of "
                "its processes has a network namespace of its own); use the docker backend or "
                "policy.network"
            )
        # With network, sandboxes share the host's network namespace.
        return await ports.connect(None, port)

    async def oom_kills(self, workspace: WorkspaceInfo) -> int | None:
        if self.cgroups is None:
            return None
        return await asyncio.to_thread(self.cgroups.oom_kills, workspace.id)

    async def close(self) -> None:
        return None

    # ---- metadata ----------------------------------------------------------------------------

    def _write(self, info: WorkspaceInfo, requested: Policy) -> None:
        """Metadata with the policy as requested: what is enforced of it is decided when read,
        so a workspace adopted where cgroups are (or are no longer) available reports the truth."""
        self._write_data(
            info.id,
            {
                "id": info.id,
                "name": info.name,
                "image": info.image,
                "state": info.state,
                "policy": asdict(requested),
                "created": info.created.isoformat(),
                "env": info.env,
                "parent_snapshot_id": info.parent_snapshot_id,
                "idle_timeout": info.idle_timeout,
                "ttl": info.ttl,
                "labels": info.labels,
            },
        )

    def _write_data(self, workspace_id: str, data: dict[str, object]) -> None:
        directory = self._dir(workspace_id)
        tmp = directory / (METADATA + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, directory / METADATA)

    def _read(self, workspace_id: str) -> WorkspaceInfo:
        path = self._dir(workspace_id) / METADATA
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise errors.NotFound(f"workspace {workspace_id!r} not found") from exc
        raw_policy = {k: v for k, v in data["policy"].items() if k in Policy.__dataclass_fields__}
        raw_policy["capabilities"] = tuple(raw_policy.get("capabilities", ()))
        raw_policy["writable_paths"] = tuple(raw_policy.get("writable_paths", ()))
        policy = enforced(Policy(**raw_policy), self.cgroups is not None)
        return WorkspaceInfo(
            id=data["id"],
            name=data["name"],
            image=data["image"],
            state=data["state"],
            backend=BWRAP,
            policy=policy,
            isolation=isolation_line(policy, self.cgroups is not None),
            created=dt.datetime.fromisoformat(data["created"]),
            env=data["env"],
            labels=data["labels"],
            parent_snapshot_id=data.get("parent_snapshot_id", ""),
            idle_timeout=data.get("idle_timeout"),
            ttl=data.get("ttl"),
        )

    async def _set_state(self, workspace_id: str, state: str) -> WorkspaceInfo:
        def update() -> WorkspaceInfo:
            path = self._dir(workspace_id) / METADATA
            try:
                data = json.loads(path.read_text())
            except FileNotFoundError as exc:
                raise errors.NotFound(f"workspace {workspace_id!r} not found") from exc
            data["state"] = state
            self._write_data(workspace_id, data)
            return self._read(workspace_id)

        async with self._lock:
            return await asyncio.to_thread(update)
