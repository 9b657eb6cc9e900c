"""Workspaces over a backend: validation, defaults, ids, and closing sessions on stop/delete.

The backend (the Docker engine, or the bwrap metadata files) is the truth about a workspace; this
manager keeps the last answer for each so that Execute can check "is it running?" without asking
the engine on every command. Get, List, Start, Stop and Delete always ask the backend.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Protocol

from executor_service.backend import Policy, SnapshotInfo, WorkspaceBackend, WorkspaceInfo, WorkspaceSpec
from executor_service.ceiling import ALL_CAPABILITIES, PolicyCeiling
from executor_service.expiry import WorkspaceExpiry, check_seconds
from executor_service.pool import WarmPool
from firebox.common import errors
from firebox.common.limits import quote
from firebox.common.logging import get_logger
from firebox.common.secrets import SecretPolicy, is_valid_env_name
from firebox.common.workspace_paths import normalize_writable_paths

log = get_logger("executor.workspaces")

ID_PREFIX = "ws_"
SNAPSHOT_ID_PREFIX = "sn_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$")
# Linux capabilities (capabilities(7)), so that a typo is refused here on every backend.
KNOWN_CAPABILITIES = frozenset(
    "CAP_" + name
    for name in (
        "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
        "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
        "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME "
        "SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG "
        "WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
    ).split()
)
# Snapshot ids as this manager makes them ("sn_" + hex), a little wider; anything else is unknown.
_SNAPSHOT_ID = re.compile(r"^sn_[A-Za-z0-9_.-]{1,64}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
MAX_LABELS = 64
MAX_LABEL_VALUE = 1024
MAX_ENV = 256
MAX_ENV_VALUE = 32 * 1024
# Docker refuses memory limits under 6 MiB; a shell needs a few MiB anyway.
MIN_MEMORY_BYTES = 6 * 1024 * 1024
MIN_TMP_BYTES = 1024 * 1024
# A filesystem's own metadata needs a few MiB.
MIN_DISK_BYTES = 16 * 1024 * 1024


def _check_name(name: str) -> None:
    """A workspace's or snapshot's optional name."""
    if name and not _NAME.match(name):
        raise errors.InvalidArgument(
            "name", f"{quote(name)}: use letters, digits, '.', '_', '-' (at most 63, starting alphanumeric)"
        )


def new_workspace_id() -> str:
    return ID_PREFIX + secrets.token_hex(8)


class SessionCloser(Protocol):
    """What the manager needs from the session manager: end every session of a workspace."""

    async def close_workspace(self, workspace_id: str) -> None: ...

    def count(self, workspace_id: str | None = None) -> int: ...


@dataclass(frozen=True)
class PolicyOverrides:
    """The fields a client set in a request's IsolationPolicy; None = take the default."""

    network: bool | None = None
    read_only: bool | None = None
    user: str | None = None
    memory_bytes: int | None = None
    pids_limit: int | None = None
    cpu_millis: int | None = None
    capabilities: tuple[str, ...] | None = None
    no_new_privileges: bool | None = None
    read_only_root: bool | None = None
    tmp_bytes: int | None = None
    writable_paths: tuple[str, ...] | None = None
    disk_bytes: int | None = None


def validate_env(env: Mapping[str, str], field: str, secret_policy: SecretPolicy) -> None:
    """Invalid or secret variable names -> InvalidArgument naming the field and the variables."""
    if len(env) > MAX_ENV:
        raise errors.InvalidArgument(field, f"at most {MAX_ENV} variables, got {len(env)}")
    invalid = sorted(name for name in env if not is_valid_env_name(name))
    if invalid:
        raise errors.InvalidArgument(
            field,
            f"invalid variable name(s) {', '.join(repr(n) for n in invalid)}: "
            "use letters, digits and '_', not starting with a digit",
        )
    refused = secret_policy.refused(env)
    if refused:
        raise errors.InvalidArgument(
            field,
            f"variable(s) {', '.join(refused)} look like secrets (patterns "
            f"{' '.join(secret_policy.deny_patterns)}) and are refused; "
            "the executor's operator can allow names with --env-allow",
        )
    for name, value in env.items():
        if len(value) > MAX_ENV_VALUE:
            raise errors.InvalidArgument(f"{field}[{name}]", f"value longer than {MAX_ENV_VALUE} bytes")
        if "\x00" in value:
            raise errors.InvalidArgument(f"{field}[{name}]", "value contains a NUL byte")


def decide_policy(default: Policy, overrides: PolicyOverrides) -> Policy:
    """The default policy with the client's overrides applied and checked."""
    values = {f.name: getattr(overrides, f.name) for f in fields(PolicyOverrides)}
    policy = default.with_overrides(**values)
    if not _USER.match(policy.user):
        raise errors.InvalidArgument(
            "policy.user", f"expected UID[:GID] or a user name, got {quote(policy.user)}"
        )
    if policy.memory_bytes < 0 or 0 < policy.memory_bytes < MIN_MEMORY_BYTES:
        raise errors.InvalidArgument(
            "policy.memory_bytes", f"0 (unlimited) or at least {MIN_MEMORY_BYTES}, got {policy.memory_bytes}"
        )
    if policy.pids_limit < 0:
        raise errors.InvalidArgument("policy.pids_limit", f"0 (unlimited) or more, got {policy.pids_limit}")
    cpus = os.cpu_count() or 1
    if policy.cpu_millis < 0 or policy.cpu_millis > cpus * 1000:
        raise errors.InvalidArgument(
            "policy.cpu_millis", f"0 (unlimited) up to {cpus * 1000} on this machine, got {policy.cpu_millis}"
        )
    if policy.tmp_bytes < MIN_TMP_BYTES:
        raise errors.InvalidArgument("policy.tmp_bytes", f"at least {MIN_TMP_BYTES}, got {policy.tmp_bytes}")
    if policy.disk_bytes < 0 or 0 < policy.disk_bytes < MIN_DISK_BYTES:
        raise errors.InvalidArgument(
            "policy.disk_bytes", f"0 (unlimited) or at least {MIN_DISK_BYTES}, got {policy.disk_bytes}"
        )
    caps = []
    for cap in policy.capabilities:
        upper = cap.upper()
        name = upper if upper.startswith("CAP_") else f"CAP_{upper}"
        if name not in KNOWN_CAPABILITIES:
            raise errors.InvalidArgument(
                "policy.capabilities", f"not a Linux capability: {quote(cap)} (e.g. NET_BIND_SERVICE, CHOWN)"
            )
        caps.append(name)
    writable_paths = normalize_writable_paths(policy.writable_paths)
    if writable_paths and policy.read_only:
        raise errors.InvalidArgument(
            "policy.writable_paths", "a read-only workspace (policy.read_only) has no writable paths"
        )
    return Policy(
        **{
            **{f.name: getattr(policy, f.name) for f in fields(Policy)},
            "capabilities": tuple(caps),
            "writable_paths": writable_paths,
        }
    )


class WorkspaceManager:
    """Create, find, start, stop and delete workspaces (see module docstring)."""

    def __init__(
        self,
        backend: WorkspaceBackend,
        default_image: str,
        default_policy: Policy,
        secret_policy: SecretPolicy,
        sessions: SessionCloser | None = None,
        warm_pool_size: int = 0,
        ceiling: PolicyCeiling | None = None,
    ) -> None:
        self.backend = backend
        self.default_image = default_image
        self.default_policy = default_policy
        # What a request may loosen; by default nothing above the default policy.
        self.ceiling = ceiling or PolicyCeiling.of(default_policy)
        unknown = self.ceiling.capabilities - KNOWN_CAPABILITIES - {ALL_CAPABILITIES}
        if unknown:
            raise errors.InvalidArgument(
                "policy ceiling", f"not Linux capabilities: {', '.join(sorted(unknown))}"
            )
        self.secret_policy = secret_policy
        # One snapshot at a time: the name check and the engine's pause/commit/unpause of a
        # workspace must not interleave with another's (two at once on one container met "already
        # paused" from the engine; two with one name both passed the check).
        self._snapshotting = asyncio.Lock()
        # Set after construction when the session manager needs this manager too.
        self.sessions = sessions
        # Set after adoption (it needs the known workspaces): told of every use, start and delete.
        self.expiry: WorkspaceExpiry | None = None
        self._known: dict[str, WorkspaceInfo] = {}
        # Names of workspaces being created: two creates of one name cannot both pass the check.
        self._creating_names: set[str] = set()
        # Only a backend that can claim a member (docker) has a pool; with size 0 it exists just to
        # remove members an earlier run left.
        self.pool: WarmPool | None = None
        if backend.has_warm_pool:
            self.pool = WarmPool(backend, warm_pool_size, default_image, default_policy, new_workspace_id)
        elif warm_pool_size:
            log.warning(
                "warm_pool_unsupported", backend=backend.name, detail="only the docker backend has one"
            )

    async def adopt(self) -> list[WorkspaceInfo]:
        """Take over every workspace the backend holds (after a restart nothing is orphaned)."""
        infos = await self.backend.adopt()
        self._known = {info.id: info for info in infos}
        for info in infos:
            log.info("workspace_adopted", workspace_id=info.id, name=info.name, state=info.state)
        if self.pool is not None:
            await self.pool.adopt(self.backend.pool_members)
            self.pool.start()
        return infos

    async def close(self) -> None:
        """Stop background work (the pool's refill); workspaces keep running."""
        if self.pool is not None:
            await self.pool.close()

    async def create(
        self,
        name: str = "",
        image: str = "",
        policy: PolicyOverrides | None = None,
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        snapshot_id: str = "",
        idle_timeout: float | None = None,
        ttl: float | None = None,
    ) -> WorkspaceInfo:
        """A new running workspace; with `snapshot_id`, a fork of that snapshot: its image,
        files, policy and env, with `policy` and `env` applied on top. `idle_timeout` and `ttl`
        in seconds (0: never; None: the server's defaults, see expiry.py)."""
        idle_timeout = check_seconds("idle_timeout", idle_timeout)
        ttl = check_seconds("ttl", ttl)
        env = dict(env or {})
        labels = dict(labels or {})
        _check_name(name)
        snapshot = None
        base_policy = self.default_policy
        if snapshot_id:
            if image:
                raise errors.InvalidArgument(
                    "image", "must be empty with snapshot_id (a fork has its snapshot's)"
                )
            snapshot = await self._snapshot(snapshot_id)
            image, base_policy, env = snapshot.image, snapshot.policy, {**snapshot.env, **env}
        image = image or self.default_image
        if not _IMAGE.match(image):
            raise errors.InvalidArgument("image", f"not an image reference: {quote(image)}")
        validate_env(env, "env", self.secret_policy)
        self._validate_labels(labels)
        decided = decide_policy(base_policy, policy or PolicyOverrides())
        # A fork starts from its snapshot's policy, which met the ceiling when its workspace was made.
        self.ceiling.check(base_policy, decided)
        if name:
            # The known set is complete: adopt() filled it and every create/delete goes through here.
            # Checked and reserved with no await in between, so concurrent creates cannot both pass.
            if name in self._creating_names:
                raise errors.AlreadyExists(f"a workspace named {quote(name)} is being created")
            for existing in self._known.values():
                if existing.name == name:
                    raise errors.AlreadyExists(f"a workspace named {quote(name)} exists: {existing.id}")
            self._creating_names.add(name)
        try:
            # Pool members carry no expiry of their own: they take the server's defaults.
            own = snapshot is not None or idle_timeout is not None or ttl is not None
            info = None if own else await self._take_from_pool(name, image, decided, env, labels)
            pooled = info is not None
            if info is None:
                spec = WorkspaceSpec(
                    id=new_workspace_id(),
                    name=name,
                    image=image,
                    policy=decided,
                    env=env,
                    labels=labels,
                    snapshot=snapshot,
                    idle_timeout=idle_timeout,
                    ttl=ttl,
                )
                info = await self.backend.create(spec)
            self._known[info.id] = info
            if self.expiry is not None:
                self.expiry.touch(info.id)
        finally:
            self._creating_names.discard(name)
        log.info(
            "workspace_created",
            workspace_id=info.id,
            name=name,
            image=image,
            isolation=info.isolation,
            from_pool=pooled,
            parent_snapshot_id=snapshot_id,
        )
        return info

    async def _take_from_pool(
        self, name: str, image: str, policy: Policy, env: dict[str, str], labels: dict[str, str]
    ) -> WorkspaceInfo | None:
        if self.pool is None or not self.pool.matches(image, policy, env):
            return None
        member = self.pool.take()
        if member is None:
            return None
        try:
            return await self.backend.claim(member, name, labels)
        except Exception:
            # Not handed to anyone: it stays a labelled pool member, and the next start takes it back.
            log.exception("pool_claim_failed", workspace_id=member.id)
            return None

    async def get(self, workspace_id: str) -> WorkspaceInfo:
        self._check_id(workspace_id)
        try:
            info = await self.backend.get(workspace_id)
        except errors.NotFound:
            self._known.pop(workspace_id, None)
            raise
        self._known[workspace_id] = info
        return info

    def count_by_state(self) -> dict[str, int]:
        """Workspaces by state as last seen (no engine call: read at every metrics scrape)."""
        counts: dict[str, int] = {}
        for info in self._known.values():
            counts[info.state] = counts.get(info.state, 0) + 1
        return counts

    async def list(self) -> list[WorkspaceInfo]:
        infos = await self.backend.list()
        self._known = {info.id: info for info in infos}
        return sorted(infos, key=lambda i: (i.created, i.id))

    async def start(self, workspace_id: str) -> WorkspaceInfo:
        self._check_id(workspace_id)
        if (await self.backend.get(workspace_id)).state == "paused":
            return await self.resume(workspace_id)
        info = await self.backend.start(workspace_id)
        self._known[workspace_id] = info
        if self.expiry is not None:
            self.expiry.started(workspace_id)
        log.info("workspace_started", workspace_id=workspace_id, state=info.state)
        return info

    async def pause(self, workspace_id: str) -> WorkspaceInfo:
        """Freeze the workspace; its processes and sessions stay as they are."""
        info = await self.backend.pause(await self._last_known(workspace_id))
        self._known[workspace_id] = info
        log.info("workspace_paused", workspace_id=workspace_id, state=info.state)
        return info

    async def resume(self, workspace_id: str) -> WorkspaceInfo:
        info = await self.backend.resume(await self._last_known(workspace_id))
        self._known[workspace_id] = info
        log.info("workspace_resumed", workspace_id=workspace_id, state=info.state)
        return info

    # ---- snapshots ----

    async def create_snapshot(self, workspace_id: str, name: str = "") -> SnapshotInfo:
        self._check_id(workspace_id)
        _check_name(name)
        async with self._snapshotting:
            if name and any(s.name == name for s in await self.backend.list_snapshots()):
                raise errors.AlreadyExists(f"a snapshot named {name!r} exists")
            info = await self.get(workspace_id)
            snapshot = await self.backend.create_snapshot(
                info, SNAPSHOT_ID_PREFIX + secrets.token_hex(8), name
            )
        log.info(
            "snapshot_created",
            snapshot_id=snapshot.id,
            workspace_id=workspace_id,
            name=name,
            files_bytes=snapshot.files_bytes,
        )
        return snapshot

    async def list_snapshots(self, workspace_id: str = "") -> builtins.list[SnapshotInfo]:
        snapshots = await self.backend.list_snapshots()
        if workspace_id:
            snapshots = [s for s in snapshots if s.workspace_id == workspace_id]
        return sorted(snapshots, key=lambda s: (s.created, s.id))

    async def delete_snapshot(self, snapshot_id: str) -> None:
        if not snapshot_id:
            raise errors.InvalidArgument("snapshot_id", "required")
        await self._snapshot(snapshot_id)
        await self.backend.delete_snapshot(snapshot_id)
        log.info("snapshot_deleted", snapshot_id=snapshot_id)

    async def _snapshot(self, snapshot_id: str) -> SnapshotInfo:
        if not _SNAPSHOT_ID.match(snapshot_id):
            # Never put into an image reference or a path.
            raise errors.NotFound(f"snapshot {snapshot_id[:100]!r} not found")
        return await self.backend.get_snapshot(snapshot_id)

    async def _last_known(self, workspace_id: str) -> WorkspaceInfo:
        self._check_id(workspace_id)
        return self._known.get(workspace_id) or await self.get(workspace_id)

    async def _thawed(self, workspace_id: str) -> None:
        """NotFound if unknown; a paused workspace is resumed, so that its sessions can be
        closed (a frozen shell cannot end) before it stops or goes."""
        if (await self.backend.get(workspace_id)).state == "paused":
            await self.resume(workspace_id)

    async def stop(self, workspace_id: str) -> WorkspaceInfo:
        self._check_id(workspace_id)
        await self._thawed(workspace_id)  # NotFound before touching sessions
        if self.sessions is not None:
            await self.sessions.close_workspace(workspace_id)
        info = await self.backend.stop(workspace_id)
        self._known[workspace_id] = info
        log.info("workspace_stopped", workspace_id=workspace_id, state=info.state)
        return info

    async def delete(self, workspace_id: str) -> None:
        self._check_id(workspace_id)
        await self._thawed(workspace_id)
        if self.sessions is not None:
            await self.sessions.close_workspace(workspace_id)
        await self.backend.delete(workspace_id)
        self._known.pop(workspace_id, None)
        if self.expiry is not None:
            self.expiry.forget(workspace_id)
        log.info("workspace_deleted", workspace_id=workspace_id)

    async def set_writable_paths(self, workspace_id: str, paths: builtins.list[str]) -> WorkspaceInfo:
        """Replace a workspace's writable paths (see IsolationPolicy.writable_paths)."""
        self._check_id(workspace_id)
        writable_paths = normalize_writable_paths(paths, "writable_paths")
        info = await self.get(workspace_id)
        if info.policy.read_only:
            # Even an empty list: it would make all of /workspace writable.
            raise errors.FailedPrecondition(
                f"workspace {workspace_id} is read-only (policy.read_only); it has no writable paths"
            )
        info = await self.backend.set_writable_paths(
            info, writable_paths, sessions_open=self.session_count(workspace_id) > 0
        )
        self._known[workspace_id] = info
        log.info("writable_paths_set", workspace_id=workspace_id, writable_paths=list(writable_paths))
        return info

    async def require_running(
        self, workspace_id: str, field: str = "workspace_id", *, resume: bool = False
    ) -> WorkspaceInfo:
        """The workspace, for starting a command in it: NotFound if unknown, FailedPrecondition
        unless running (a paused one is resumed first when `resume`). Uses the last known state;
        asks the backend only when it is not running."""
        if not workspace_id:
            raise errors.InvalidArgument(field, "required")
        info = self._known.get(workspace_id)
        if info is None or info.state != "running":
            info = await self.get(workspace_id)
        if self.expiry is not None:
            self.expiry.touch(workspace_id)
        if info.state == "paused":
            if not resume:
                raise errors.FailedPrecondition(
                    f"workspace {workspace_id} is paused; resume it with ResumeWorkspace "
                    "(or set resume_workspace on the Execute request)"
                )
            info = await self.resume(workspace_id)
        if info.state != "running":
            raise errors.FailedPrecondition(
                f"workspace {workspace_id} is {info.state}, not running; start it with StartWorkspace"
            )
        return info

    def known(self) -> builtins.list[WorkspaceInfo]:
        """The last answer for every workspace, without asking the backend."""
        return list(self._known.values())

    def session_count(self, workspace_id: str | None = None) -> int:
        return self.sessions.count(workspace_id) if self.sessions is not None else 0

    @property
    def count(self) -> int:
        return len(self._known)

    def _check_id(self, workspace_id: str) -> None:
        if not workspace_id:
            raise errors.InvalidArgument("workspace_id", "required")

    def _validate_labels(self, labels: Mapping[str, str]) -> None:
        if len(labels) > MAX_LABELS:
            raise errors.InvalidArgument("labels", f"at most {MAX_LABELS}, got {len(labels)}")
        for key, value in labels.items():
            if not _LABEL_KEY.match(key):
                raise errors.InvalidArgument("labels", f"invalid key {quote(key)}")
            if len(value) > MAX_LABEL_VALUE:
                raise errors.InvalidArgument(f"labels[{key}]", f"value longer than {MAX_LABEL_VALUE}")
