"""Writable paths inside a running container: bind mounts made in its mount namespace.

Why this mechanism: a workspace's writable paths must hold for every process (shell sessions,
`docker exec`, file transfers), and must be changeable on a live workspace without losing its
shell sessions' state. Docker fixes a container's mounts at create (and 20.10 cannot mount a
volume's subdirectory), and the workspace's processes have no CAP_SYS_ADMIN to mount anything
themselves. So the executor, as root on the engine's host, enters the container's mount
namespace and arranges it there: /workspace is remounted read-only (a per-mount flag; the
volume itself stays writable) and each writable path gets a writable bind mount of itself on
top. `docker exec` joins that namespace, so every later process sees it; a session shell
re-enters its working directory before each command (shell.py), so it sees it too without
losing anything. The mounts live as long as the container runs; the backend applies them again
after every start and at adoption.

Run as `python -m executor_service.backends.mountns PID PATHS_JSON`: setns(2) into a mount
namespace needs a single-threaded process, which the executor is not. Paths are resolved one
component at a time with O_NOFOLLOW from /workspace, and mounted through /proc/self/fd of the
host's /proc, so a symlink planted in the workspace cannot point a mount anywhere else.
Missing directories are created (owned like /workspace) in a private copy of the namespace
where /workspace is writable, so nothing is writable elsewhere even for a moment.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

WORKDIR = "/workspace"
CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MNT_DETACH = 0x2
# Per-mount options a remount must repeat, or it would drop them.
_KEPT_OPTIONS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}
_DIRECTORY = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class MountError(Exception):
    """What went wrong, in words for the client."""


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise MountError(f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, flags: int, what: str) -> None:
    _check(
        _libc.mount(source.encode() if source else None, target.encode(), None, ctypes.c_ulong(flags), None),
        what,
    )


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mounts() -> list[tuple[str, str, str, int]]:
    """(device, root, mount point, kept flags) of every mount in the current namespace, read
    from the host's /proc (the cwd)."""
    mounts = []
    with open("self/mountinfo") as f:
        for line in f:
            fields = line.split()
            flags = sum(flag for name, flag in _KEPT_OPTIONS.items() if name in fields[5].split(","))
            mounts.append((fields[2], _unescape(fields[3]), _unescape(fields[4]), flags))
    return mounts


def open_below(root_fd: int, path: str, create: bool, owner: tuple[int, int]) -> int:
    """An O_PATH fd of `path` below `root_fd`, one component at a time, never following a
    symlink; with `create`, missing directories are made, owned by `owner`. MountError when a
    component is a symlink or not a directory. (The bubblewrap backend binds these fds too.)"""
    fd = os.dup(root_fd)
    for part in path.split("/"):
        try:
            try:
                child = os.open(part, _DIRECTORY, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
                child = os.open(part, _DIRECTORY, dir_fd=fd)
        except NotADirectoryError:
            raise MountError(f"{WORKDIR}/{path}: {part!r} is not a directory") from None
        except OSError as exc:
            # ELOOP: a symlink, which a writable path may not go through.
            raise MountError(f"{WORKDIR}/{path}: {exc.strerror} at {part!r}") from None
        finally:
            os.close(fd)
        fd = child
    return fd


def apply(pid: int, writable_paths: list[str]) -> None:
    """Make the container's /workspace read-only but for `writable_paths` (all of it writable
    when empty), replacing whatever an earlier call set up."""
    namespace = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.umask(0o022)

    def enter() -> int:
        _check(_libc.setns(namespace, CLONE_NEWNS), "entering the workspace's mount namespace")
        os.fchdir(host_proc)
        return os.open(WORKDIR, _DIRECTORY)

    workspace = enter()
    stat = os.fstat(workspace)
    owner = (stat.st_uid, stat.st_gid)
    if writable_paths:
        # Missing directories, made in a private copy of the namespace with /workspace writable.
        _check(_libc.unshare(CLONE_NEWNS), "copying the mount namespace")
        _mount(None, "/", MS_REC | MS_PRIVATE, "making the copy private")
        copy = os.open(WORKDIR, _DIRECTORY)
        _mount(None, f"self/fd/{copy}", MS_REMOUNT | MS_BIND, "opening /workspace in the copy")
        copy = os.open(WORKDIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        for path in writable_paths:
            os.close(open_below(copy, path, create=True, owner=owner))
        workspace = enter()

    mounts = _mounts()
    base = [m for m in mounts if m[2] == WORKDIR]
    if not base:
        raise MountError(f"the workspace has no {WORKDIR} mount")
    device, root, _point, kept = base[-1]
    # Ours: binds of the workspace's own files below /workspace, deepest first.
    ours = sorted(
        (m[2] for m in mounts if m[2].startswith(WORKDIR + "/") and m[0] == device and m[1].startswith(root)),
        key=len,
        reverse=True,
    )
    read_only = MS_RDONLY if writable_paths else 0
    _mount(None, f"self/fd/{workspace}", MS_REMOUNT | MS_BIND | kept | read_only, f"remounting {WORKDIR}")
    for point in ours:
        _check(_libc.umount2(point.encode(), MNT_DETACH), f"unmounting {point}")
    for path in writable_paths:
        below = open_below(workspace, path, create=False, owner=owner)
        _mount(f"self/fd/{below}", f"self/fd/{below}", MS_BIND, f"binding {WORKDIR}/{path}")
        parent, _, name = path.rpartition("/")
        parent_fd = open_below(workspace, parent, create=False, owner=owner) if parent else os.dup(workspace)
        # Looked up again from its parent: the lookup crosses into the new mount.
        top = os.open(name, _DIRECTORY, dir_fd=parent_fd)
        _mount(None, f"self/fd/{top}", MS_REMOUNT | MS_BIND | kept, f"making {WORKDIR}/{path} writable")
        for fd in (below, parent_fd, top):
            os.close(fd)


def main() -> None:
    try:
        apply(int(sys.argv[1]), json.loads(sys.argv[2]))
    except (MountError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
