"""Workspace files: upload, download, list and stat under /workspace, on every backend alike.

Every operation runs one small POSIX shell script INSIDE the workspace (through the backend's
`open_shell`: a `docker exec`, or a bwrap process), as the workspace's own user, over a raw byte
pipe (not the session protocol, so data is not base64-framed). That gives two guarantees at once:

- Paths are resolved where they live: `cd -P` / `pwd -P` and `readlink -f` follow symlinks in
  the workspace's own mount namespace, and anything resolving outside /workspace is refused.
  `..` is refused before anything runs.
- The I/O happens with the workspace user's rights, enforced by the kernel, so even a process in
  the workspace that swaps a directory for a symlink between the check and the write (a race no
  check can close) gains nothing its own commands could not already do.

Uploads are received completely into a spool file on the executor's host first (bounded by
`max_file_bytes`): a client that cancels or fails mid-stream leaves nothing in the workspace.
Then the script writes a temporary file beside the target, checks its size, and renames it over
the target (atomic: readers see the old or the new file, never a mix). Uploads to one path are
serialized by a lock, and the rename means the last complete upload wins. Without `overwrite` the
file is linked into place with `link(2)`, which fails atomically if the name exists.

The image needs `sh`, `cat`, `head`, `stat`, `readlink`, `find`, `mv`, `ln`, `mkdir`, `chmod`
(busybox or coreutils have them all).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor_service.backend import STDERR, ShellTransport, WorkspaceBackend, WorkspaceInfo
from firebox.common import errors
from firebox.common.logging import get_logger
from firebox.common.workspace_paths import workspace_path

log = get_logger("executor.files")

DEFAULT_MAX_ENTRIES = 10_000
SPOOL_CHUNK = 256 * 1024
# Time the script gets to check a path and answer (not the data transfer itself).
ANSWER_TIMEOUT = 30.0
MAX_ERROR_BYTES = 4096
# Uploads in flight at once (each spools up to max_file_bytes on the host's disk).
MAX_CONCURRENT_UPLOADS = 32
# All uploads in flight together hold at most this much spool on the executor's disk (not
# MAX_CONCURRENT_UPLOADS x the largest file).
DEFAULT_MAX_SPOOL_BYTES = 512 * 1024 * 1024

REGULAR, DIRECTORY, SYMLINK, OTHER = "regular", "directory", "symlink", "other"

# Exit codes of the scripts, as `FBERR <code> <message>` lines on stderr.
_ERRORS: dict[str, Any] = {
    "10": errors.NotFound,
    "13": errors.AlreadyExists,
    "14": errors.PermissionDenied,
    "15": errors.Aborted,
    "17": errors.ResourceExhausted,
}
_INVALID = {"11", "12", "16"}

_PRELUDE = r"""
fail() { c=$1; shift; printf 'FBERR %s %s\n' "$c" "$*" >&2; exit 1; }
inside() { case $1 in /workspace|/workspace/*) return 0;; esac; return 1; }
ESC="resolves outside /workspace (through a symlink); paths must stay inside /workspace"
# resolve P: T = the physical path P names (a final symlink followed), checked to be inside.
resolve() {
  if [ "$1" = /workspace ]; then cd -P /workspace 2>/dev/null || fail 10 "/workspace is missing"; T=$(pwd -P); return; fi
  d=${1%/*}; b=${1##*/}
  if ! cd -P -- "$d" 2>/dev/null; then
    t=$(readlink -f -- "$d" 2>/dev/null); [ -z "$t" ] || inside "$t" || fail 11 "$ESC"
    if [ -e "$d" ]; then fail 16 "${d#/workspace/} is not a directory"; else fail 10 "$d does not exist"; fi
  fi
  D=$(pwd -P); inside "$D" || fail 11 "$ESC"
  T=$D/$b
  if [ -L "$T" ]; then t=$(readlink -f -- "$T" 2>/dev/null); [ -n "$t" ] && inside "$t" || fail 11 "$ESC"; T=$t; fi
}
"""

_STAT = (
    _PRELUDE
    + r"""
p=$1
if [ "$p" = /workspace ]; then T=/workspace; else
  if ! cd -P -- "${p%/*}" 2>/dev/null; then
    t=$(readlink -f -- "${p%/*}" 2>/dev/null); [ -z "$t" ] || inside "$t" || fail 11 "$ESC"
    fail 10 "${p%/*} does not exist"
  fi
  D=$(pwd -P); inside "$D" || fail 11 "$ESC"; T=$D/${p##*/}
fi
[ -e "$T" ] || [ -L "$T" ] || fail 10 "$p does not exist"
s=$(stat -c '%f/%s/%Y/%a' -- "$T") || fail 14 "cannot stat $p"
printf 'OK %s\n' "$s"
[ -L "$T" ] && readlink -- "$T"
exit 0
"""
)

_DOWNLOAD = (
    _PRELUDE
    + r"""
resolve "$1"; max=$2
[ -e "$T" ] || fail 10 "$1 does not exist"
[ -f "$T" ] || fail 12 "$1 is not a regular file"
[ -r "$T" ] || fail 14 "$1 is not readable by the workspace user"
s=$(stat -L -c '%f/%s/%Y/%a' -- "$T") || fail 14 "cannot stat $1"
n=${s#*/}; n=${n%%/*}
[ "$n" -le "$max" ] || fail 17 "$1 is $n bytes, over the executor's limit of $max bytes (--max-file-bytes)"
printf 'OK %s\n' "$s"
exec cat -- "$T"
"""
)

_LIST = (
    _PRELUDE
    + r"""
resolve "$1"; depth=$2
[ -e "$T" ] || fail 10 "$1 does not exist"
if [ ! -d "$T" ]; then
  cd -P -- "${T%/*}" || fail 14 "cannot enter ${T%/*}"
  printf 'OK F\n'; exec stat -c '%f/%s/%Y/%a/./%n' -- "${T##*/}"
fi
cd -P -- "$T" 2>/dev/null || fail 14 "$1 cannot be listed by the workspace user"
printf 'OK D\n'
if [ "$depth" = 1 ]; then exec find . -mindepth 1 -maxdepth 1 -exec stat -c '%f/%s/%Y/%a/%n' -- {} +
else exec find . -mindepth 1 -exec stat -c '%f/%s/%Y/%a/%n' -- {} +; fi
"""
)

# $1 path, $2 octal mode, $3 overwrite, $4 create parents, $5 size, $6 temp-name token.
_UPLOAD = (
    _PRELUDE
    + r"""
p=$1; mode=$2; ow=$3; mk=$4; n=$5; tok=$6
b=${p##*/}; rest=${p%/*}; rest=${rest#/workspace}; rest=${rest#/}
cd -P /workspace 2>/dev/null || fail 10 "/workspace is missing"
set -f; oldifs=$IFS; IFS=/
for c in $rest; do
  IFS=$oldifs
  if [ -d "$c" ]; then
    cd -P -- "$c" 2>/dev/null || fail 14 "cannot enter $c"
    inside "$(pwd -P)" || fail 11 "$ESC"
  elif [ -L "$c" ] || [ -e "$c" ]; then
    [ -L "$c" ] && fail 11 "$c is a symlink that leads nowhere inside /workspace"
    fail 16 "$c is not a directory"
  elif [ "$mk" = 1 ]; then
    # Another upload may make it at the same moment: then it is entered (and checked) as found.
    mkdir -- "$c" 2>/dev/null || [ -d "$c" ] || fail 14 "cannot create directory $c"
    cd -P -- "$c" || fail 14 "cannot enter $c"
    inside "$(pwd -P)" || fail 11 "$ESC"
  else
    fail 10 "directory $c does not exist (set create_parents to make it)"
  fi
  IFS=/
done
IFS=$oldifs; set +f
D=$(pwd -P); T=$D/$b
if [ -L "$T" ]; then t=$(readlink -f -- "$T" 2>/dev/null); [ -n "$t" ] && inside "$t" || fail 11 "$ESC"; T=$t; D=${T%/*}; fi
[ -d "$T" ] && fail 12 "$p is a directory"
[ -e "$T" ] && [ "$ow" != 1 ] && fail 13 "$p already exists (set overwrite to replace it)"
tmp=$D/.firebox-upload-$tok
( umask 077; : >"$tmp" ) 2>/dev/null || fail 14 "the workspace user cannot write in ${D}"
printf 'READY\n'
head -c "$n" >"$tmp" 2>/dev/null
got=$(stat -c %s -- "$tmp" 2>/dev/null)
[ "$got" = "$n" ] || { rm -f -- "$tmp"; fail 15 "the upload was cut short ($got of $n bytes written; is the workspace full?)"; }
chmod "$mode" -- "$tmp" || { rm -f -- "$tmp"; fail 14 "cannot set the mode"; }
if [ "$ow" = 1 ]; then
  mv -f -- "$tmp" "$T" 2>/dev/null || { rm -f -- "$tmp"; fail 14 "cannot replace $p"; }
else
  if ! ln -- "$tmp" "$T" 2>/dev/null; then rm -f -- "$tmp"; [ -e "$T" ] && fail 13 "$p already exists (set overwrite to replace it)"; fail 14 "cannot create $p"; fi
  rm -f -- "$tmp"
fi
s=$(stat -c '%f/%s/%Y/%a' -- "$T") || fail 14 "cannot stat $p"
printf 'OK %s\n' "$s"
"""
)

_RECORD = re.compile(rb"([0-9a-f]+)/(\d+)/(\d+)/([0-7]+)/\./(.*)")


@dataclass(frozen=True)
class FileEntry:
    """One entry under /workspace (FileInfo in the proto)."""

    path: str
    type: str
    size: int
    mode: int
    mtime: dt.datetime
    link_target: str = ""

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class UploadResult:
    entry: FileEntry
    sha256: str


def _entry(record: bytes, path: str, link_target: str = "") -> FileEntry:
    raw, size, mtime, perms = record.split(b"/")[:4]
    kind = int(raw, 16) & 0o170000
    type_ = {0o100000: REGULAR, 0o040000: DIRECTORY, 0o120000: SYMLINK}.get(kind, OTHER)
    return FileEntry(
        path=path,
        type=type_,
        size=int(size) if type_ == REGULAR else 0,
        mode=int(perms, 8),
        mtime=dt.datetime.fromtimestamp(int(mtime), dt.UTC),
        link_target=link_target,
    )


class _Script:
    """One script running in the workspace: its stdout as a byte stream, FBERR lines from stderr."""

    def __init__(self, transport: ShellTransport) -> None:
        self.transport = transport
        self._out = bytearray()
        self._err = bytearray()
        self._eof = False

    async def _pull(self) -> bool:
        item = await self.transport.read()
        if item is None:
            self._eof = True
            return False
        stream, data = item
        if stream == STDERR:
            if len(self._err) < MAX_ERROR_BYTES:
                self._err += data[: MAX_ERROR_BYTES - len(self._err)]
        else:
            self._out += data
        return True

    def raise_error(self, field: str) -> None:
        text = self._err.decode("utf-8", "replace")
        match = re.search(r"FBERR (\d+) (.*)", text)
        if match is None:
            raise errors.Unavailable(
                f"the workspace's file helper failed: {text.strip()[:500] or 'no answer'} "
                "(the image needs sh, cat, head, stat, readlink, find, mv and ln)"
            )
        code, message = match.groups()
        if code in _INVALID:
            raise errors.InvalidArgument(field, message)
        raise _ERRORS.get(code, errors.Unavailable)(message)

    async def line(self, field: str) -> bytes:
        """The next stdout line (without its newline); the script's error if it failed first."""
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while b"\n" not in self._out:
                if not await self._pull():
                    self.raise_error(field)
        line, _, rest = bytes(self._out).partition(b"\n")
        self._out = bytearray(rest)
        return line

    async def chunks(self) -> AsyncIterator[bytes]:
        """The rest of stdout, chunk by chunk."""
        if self._out:
            data, self._out = bytes(self._out), bytearray()
            yield data
        while not self._eof:
            if not await self._pull():
                break
            if self._out:
                data, self._out = bytes(self._out), bytearray()
                yield data


class UploadSlot:
    """One upload's place, and the spool bytes it holds against the executor's spool limit."""

    def __init__(self, files: WorkspaceFiles) -> None:
        self.files = files
        self.held = 0

    def hold(self, size: int) -> None:
        files = self.files
        if files.spooled + size > files.max_spool_bytes:
            raise errors.ResourceExhausted(
                f"uploads in progress already hold {files.spooled} bytes of spool on this executor "
                f"(limit {files.max_spool_bytes}, --max-spool-bytes); nothing was written, retry shortly",
                retry_after=1.0,
            )
        files.spooled += size
        self.held += size


class WorkspaceFiles:
    """Upload, download, list and stat files of workspaces (see module docstring)."""

    def __init__(
        self,
        backend: WorkspaceBackend,
        *,
        max_file_bytes: int,
        spool_dir: Path,
        max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
    ) -> None:
        self.backend = backend
        self.max_file_bytes = max_file_bytes
        self.spool_dir = spool_dir
        # Bytes all uploads in flight may hold in spool files on the executor's disk at once.
        self.max_spool_bytes = max_spool_bytes
        self.spooled = 0
        self._uploads = 0
        # Per (workspace, path): the lock and how many uploads hold or wait for it.
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.contextmanager
    def upload_slot(self) -> Iterator[UploadSlot]:
        """One upload in flight; ResourceExhausted past MAX_CONCURRENT_UPLOADS. The spool bytes
        the upload holds (UploadSlot.hold) are given back when the slot ends."""
        if self._uploads >= MAX_CONCURRENT_UPLOADS:
            raise errors.ResourceExhausted(
                f"{MAX_CONCURRENT_UPLOADS} uploads are already in progress on this executor; retry shortly",
                retry_after=1.0,
            )
        self._uploads += 1
        slot = UploadSlot(self)
        try:
            yield slot
        finally:
            self._uploads -= 1
            self.spooled -= slot.held

    def remove_leftovers(self) -> int:
        """At start-up: spool files of uploads a previous process never finished. Blocking."""
        removed = 0
        if self.spool_dir.is_dir():
            for leftover in self.spool_dir.glob("upload-*"):
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    async def _open(self, workspace: WorkspaceInfo, script: str, *args: str) -> _Script:
        transport = await self.backend.open_shell(
            workspace, ["/bin/sh", "-c", script, "firebox-files", *args], {}
        )
        return _Script(transport)

    # ---- stat and list -------------------------------------------------------------------------

    async def stat(self, workspace: WorkspaceInfo, path: str) -> FileEntry:
        """The entry `path` names (a final symlink described, not followed)."""
        target = workspace_path(path)
        script = await self._open(workspace, _STAT, target)
        try:
            header = await script.line("path")
            record = header.removeprefix(b"OK ")
            link = b""
            if (int(record.split(b"/")[0], 16) & 0o170000) == 0o120000:
                link = await script.line("path")
            return _entry(record, target, link.decode("utf-8", "replace"))
        finally:
            await script.transport.close()

    async def list(
        self, workspace: WorkspaceInfo, path: str, recursive: bool, max_entries: int
    ) -> tuple[list[FileEntry], bool]:
        """Entries under the directory `path` names (or the one file), sorted by path, at most
        `max_entries`; True when more exist. Symlinks are listed, never followed."""
        base = workspace_path(path)
        script = await self._open(workspace, _LIST, base, "0" if recursive else "1")
        records: list[bytes] = []
        truncated = False
        try:
            is_file = await script.line("path") == b"OK F"
            buffer = b""
            async for chunk in script.chunks():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if _RECORD.fullmatch(line) or not records:
                        records.append(line)
                    else:  # a name with a newline in it: the record goes on
                        records[-1] += b"\n" + line
                if len(records) > max_entries:
                    truncated = True
                    break
            if buffer and not truncated:
                records.append(buffer)
        finally:
            await script.transport.close()
        entries = []
        for record in records[:max_entries]:
            match = _RECORD.fullmatch(record)
            if match is None:
                continue
            name = match.group(5).decode("utf-8", "surrogateescape")
            entry_path = base if is_file else f"{base}/{name}"
            entries.append(
                _entry(record, entry_path.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            )
        entries.sort(key=lambda e: e.path)
        return entries, truncated

    # ---- download --------------------------------------------------------------------------------

    async def download(self, workspace: WorkspaceInfo, path: str) -> AsyncIterator[FileEntry | bytes]:
        """The file's FileEntry first, then its bytes in chunks (at most its size at the start)."""
        target = workspace_path(path, allow_root=False)
        script = await self._open(workspace, _DOWNLOAD, target, str(self.max_file_bytes))
        try:
            header = (await script.line("path")).removeprefix(b"OK ")
            entry = _entry(header, target)
            yield entry
            remaining = entry.size
            async for chunk in script.chunks():
                if remaining <= 0:
                    break
                chunk = chunk[:remaining]
                remaining -= len(chunk)
                yield chunk
            if remaining > 0:
                raise errors.Aborted(f"{target} shrank while it was read ({remaining} bytes missing)")
        finally:
            await script.transport.close()

    # ---- upload ----------------------------------------------------------------------------------

    async def spool(
        self, first_data: bytes, rest: AsyncIterator[bytes], slot: UploadSlot | None = None
    ) -> tuple[Path, int, str]:
        """Receive the whole upload into a host temp file: (its path, size, sha256). Removed again
        if the stream fails or passes the limit (ResourceExhausted)."""
        await asyncio.to_thread(self.spool_dir.mkdir, parents=True, exist_ok=True)
        fd, name = await asyncio.to_thread(tempfile.mkstemp, prefix="upload-", dir=self.spool_dir)
        spool = Path(name)
        digest = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        try:
            with os.fdopen(fd, "wb") as out:

                async def flush() -> None:
                    if pending:
                        data = b"".join(pending)
                        pending.clear()
                        await asyncio.to_thread(out.write, data)

                async def add(data: bytes) -> None:
                    nonlocal size
                    size += len(data)
                    if size > self.max_file_bytes:
                        raise errors.ResourceExhausted(
                            f"the file is over the executor's limit of {self.max_file_bytes} bytes "
                            "(--max-file-bytes); nothing was written"
                        )
                    if slot is not None:
                        slot.hold(len(data))
                    digest.update(data)
                    pending.append(data)
                    if sum(len(p) for p in pending) >= SPOOL_CHUNK:
                        await flush()

                await add(first_data)
                async for data in rest:
                    await add(data)
                await flush()
        except BaseException:
            await asyncio.shield(asyncio.to_thread(spool.unlink, missing_ok=True))
            raise
        return spool, size, digest.hexdigest()

    async def write(
        self,
        workspace: WorkspaceInfo,
        path: str,
        spool: Path,
        size: int,
        *,
        mode: int,
        overwrite: bool,
        create_parents: bool,
    ) -> FileEntry:
        """Put the spooled bytes at `path` (see module docstring); the spool file is removed."""
        target = workspace_path(path, allow_root=False)
        key = (workspace.id, target)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                script = await self._open(
                    workspace,
                    _UPLOAD,
                    target,
                    f"{mode:o}",
                    "1" if overwrite else "0",
                    "1" if create_parents else "0",
                    str(size),
                    secrets.token_hex(8),
                )
                try:
                    await script.line("path")
                    try:
                        with open(spool, "rb") as source:  # noqa: ASYNC230 - reads go through a thread below
                            while data := await asyncio.to_thread(source.read, SPOOL_CHUNK):
                                await script.transport.write(data)
                    except errors.Unavailable:
                        # The script stopped reading early: its write failed (the workspace's
                        # disk is full) and it said why on stderr, read below (ABORTED), as is
                        # a shell that really went away (UNAVAILABLE).
                        pass
                    async with asyncio.timeout(ANSWER_TIMEOUT + size / (1024 * 1024)):
                        record = (await script.line("path")).removeprefix(b"OK ")
                    return _entry(record, target)
                finally:
                    await script.transport.close()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(spool.unlink)
