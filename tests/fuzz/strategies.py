"""Hypothesis strategies that build any protobuf message from its descriptor, with hostile values.

Every field of a message may be set: strings from a pool of odd text (NUL bytes, '../../..',
'/proc/self', right-to-left marks, very long runs), bytes with invalid UTF-8, integers at their
type's extremes and negative, enum numbers outside the enum, nested messages a few levels deep,
maps and repeated fields. `odd_ids(real)` mixes in near-misses of real ids (prefixes, suffixes,
case changes), which is how a lookup that matches too loosely is caught.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

from firebox.executor.v1 import executor_pb2

# Just under the 16 MiB message limit, leaving room for the other fields and framing.
NEAR_LIMIT = 16 * 1024 * 1024 - 64 * 1024

ODD_TEXT: tuple[str, ...] = (
    "",
    " ",
    ".",
    "..",
    "../../..",
    "../../../../../../etc/passwd",
    "/proc/self",
    "/proc/self/environ",
    "/proc/1/root",
    "/var/run/docker.sock",
    "/workspace/../..",
    "~",
    "-",
    "--help",
    "*",
    "%s%s%n",
    "' OR 1=1 --",
    "\x00",
    "a\x00b",
    "\u202egnp.exe",
    "\ufeff",
    "\U0001f525" * 40,
    "\n\r\t",
    "$(id)",
    "`id`",
    "; rm -rf / ;",
    "-1",
    "0",
    "9" * 40,
    "ws_0000000000000000",
    "ses-00000000000000000000000000000000",
    "run-0",
    "A" * 4096,
    "/".join([".."] * 2000),
    "/".join(["a"] * 3000),
    "x" * 100_000,
    # Issue 15: past every text field's limit but the conversation's (a status must not echo it).
    # 10 MiB in every field is tests/integration/hardening/test_field_limits.py.
    "y" * 300_000,
)

INVALID_UTF8: tuple[bytes, ...] = (
    b"\xff",
    b"\xc3\x28",
    b"\xe2\x28\xa1",
    b"\xf0\x90\x28\xbc",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xc0\xaf",  # overlong '/'
    b"\x00" * 64,
    b"\xff\xfe" * 2048,
)

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def hostile_text(extra: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """Odd strings: the fixed pool, the caller's near-miss ids, random unicode, odd paths."""
    pool = list(ODD_TEXT) + list(extra)
    return st.one_of(
        st.sampled_from(pool),
        st.text(max_size=40),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
        st.lists(st.sampled_from(["..", ".", "", "a", "proc", "self", "\x00", "~"]), max_size=300).map(
            "/".join
        ),
    )


def hostile_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(INVALID_UTF8), st.binary(max_size=200), st.just(b"\xff" * 65536))


def hostile_int(kind: int) -> st.SearchStrategy[int]:
    low, high = _INT_RANGES[kind]
    edges = [v for v in (0, 1, -1, 2, low, high, low + 1, high - 1, 2**31, 10**12) if low <= v <= high]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(low, high),
        st.integers(-1000, 1000).filter(lambda v: low <= v <= high),
    )


def odd_ids(real: Sequence[str]) -> list[str]:
    """Near-misses of real ids: prefixes, suffixes, case, path tricks."""
    out: list[str] = []
    for rid in real:
        if not rid:
            continue
        out += [
            rid[:-1],
            rid[:4],
            rid + "x",
            rid + "\x00",
            rid.upper(),
            " " + rid,
            rid + "/../" + rid,
            "../" + rid,
            rid.split("_")[-1].split("-")[-1],
        ]
    return out


def message(
    descriptor: Descriptor,
    extra_text: Sequence[str] = (),
    overrides: dict[str, st.SearchStrategy[Any]] | None = None,
    depth: int = 0,
) -> st.SearchStrategy[Message]:
    """Any message of this type; `overrides` maps a top-level field name to its own strategy."""
    cls = GetMessageClass(descriptor)
    overrides = overrides or {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.name in overrides:
            optional[field.name] = overrides[field.name]
            continue
        strategy = _field(field, extra_text, depth)
        if strategy is not None:
            optional[field.name] = strategy
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: _build(cls, values))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    instance = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        target = getattr(instance, name)
        if _is_map(field):
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(instance, name, value)
    return instance


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
        and field.is_repeated
    )


def _scalar(field: FieldDescriptor, extra_text: Sequence[str], depth: int) -> st.SearchStrategy[Any] | None:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return hostile_text(extra_text)
    if kind == FieldDescriptor.TYPE_BYTES:
        return hostile_bytes()
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(
            allow_nan=True, allow_infinity=True, width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64
        )
    if kind == FieldDescriptor.TYPE_ENUM:
        # Known numbers and unknown ones (proto3 enums are open: the server must cope).
        known = [v.number for v in field.enum_type.values]
        return st.one_of(
            st.sampled_from(known), st.integers(-5, 1000), st.sampled_from([2**31 - 1, -(2**31)])
        )
    if kind in _INT_RANGES:
        return hostile_int(kind)
    if kind == FieldDescriptor.TYPE_MESSAGE:
        if depth >= 3:
            return None
        return message(field.message_type, extra_text, depth=depth + 1)
    return None


def _field(field: FieldDescriptor, extra_text: Sequence[str], depth: int) -> st.SearchStrategy[Any] | None:
    if _is_map(field):
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        keys = _scalar(key_field, extra_text, depth)
        values = _scalar(value_field, extra_text, depth)
        if keys is None or values is None:
            return None
        return st.dictionaries(keys, values, max_size=6)
    single = _scalar(field, extra_text, depth)
    if single is None:
        return None
    if field.is_repeated:
        return st.lists(single, max_size=6)
    return single


@st.composite
def execute_streams(draw: st.DrawFn, workspace_id: str, session_id: str) -> list[executor_pb2.ExecuteRequest]:
    """A first message (random, or aimed at the real workspace with a cheap program) then later ones."""
    first = draw(
        message(executor_pb2.ExecuteRequest.DESCRIPTOR, extra_text=odd_ids([workspace_id, session_id]))
    )
    # One stream in four runs a (cheap) program; the rest probe the checks of the first message.
    if draw(st.integers(0, 3)) == 0:
        first.workspace_id = workspace_id
        first.session_id = draw(st.sampled_from(["", "", session_id, first.session_id]))
        text = draw(hostile_text())
        if draw(st.booleans()):
            first.ClearField("argv")
            first.script = f"printf %s {shlex.quote(text)}"
        else:
            first.script = ""
            first.argv[:] = ["echo", text, *first.argv[:3]]
        seconds = draw(st.one_of(st.sampled_from([-1, 0, 2, 2**40, 315_576_000_000]), st.floats(-5, 3)))
        first.timeout.CopyFrom(
            Duration(seconds=int(seconds), nanos=draw(st.integers(-(10**9) + 1, 10**9 - 1)))
        )
        if draw(st.booleans()):
            first.ClearField("env")
    later = draw(st.lists(message(executor_pb2.ExecuteRequest.DESCRIPTOR), max_size=3))
    return [first, *later]


# ---- workspace creation: mostly invalid (executor and agent alike) ----

POISONS = (
    ("image", "NOT A VALID IMAGE\x00"),
    ("env", {"MY_API_KEY": "x"}),
    ("env", {"1BAD NAME": "x"}),
    ("labels", {"": "x"}),
    ("name", "-starts-with-a-dash\x00"),
    ("memory_bytes", -5),
    ("pids_limit", -1),
    ("tmp_bytes", 1),
    ("user", "root;id"),
)


@st.composite
def create_workspace_requests(draw: st.DrawFn) -> tuple[executor_pb2.CreateWorkspaceRequest, bool]:
    """(request, poisoned). Never a random image reference that is valid: that would try a pull."""
    request = draw(
        message(
            executor_pb2.CreateWorkspaceRequest.DESCRIPTOR,
            overrides={
                "image": st.sampled_from(["", "firebox-busybox:latest", "Bad Image", "a" * 300, "\x00"])
            },
        )
    )
    # One in 25 is valid. (Not 0: hypothesis draws the bounds of a range far more often than 1/25.)
    poisoned = draw(st.integers(0, 24)) != 13
    if poisoned:
        field, value = draw(st.sampled_from(POISONS))
        if field in ("memory_bytes", "pids_limit", "tmp_bytes", "user"):
            setattr(request.policy, field, value)
        elif isinstance(value, dict):
            getattr(request, field).update(value)
        else:
            setattr(request, field, value)
    else:
        # A valid one now and then: a fresh name, small policy the engine accepts, a variable.
        request.name = f"fz-{draw(st.integers(0, 10**9))}"
        request.image = ""
        request.ClearField("policy")
        request.ClearField("labels")
        # Nothing else that picks the image or the lifetime (each is fuzzed in the poisoned ones).
        for name in ("devcontainer", "snapshot_id", "idle_timeout", "ttl"):
            request.ClearField(name)
        request.env.clear()
        request.env["FUZZ_VAR"] = draw(st.text(max_size=30).filter(lambda s: "\x00" not in s))
    return request, poisoned


# ---- paths inside a workspace ----

# Links the fuzz targets make in their workspace (see SYMLINKS): every way out of /workspace.
SYMLINKS = {"escape": "/", "etc-link": "/etc", "up-link": "..", "loop-a": "loop-b", "loop-b": "loop-a"}
HOSTILE_PATHS: tuple[str, ...] = (
    "escape",
    "escape/etc/passwd",
    "escape/tmp/fz-out",
    "escape/root",
    "etc-link",
    "etc-link/passwd",
    "etc-link/fz-out",
    "up-link/etc/passwd",
    "up-link/fz-out",
    "loop-a",
    "loop-a/x",
    "/workspace/escape/etc/passwd",
    "/etc/passwd",
    "/etc/fz-out",
    "/tmp/fz-out",
    "/proc/self/environ",
    "/dev/null",
    "/workspace",
    "/workspace/",
    "/workspace/../etc/passwd",
    "../etc/passwd",
    "dir/../../etc/passwd",
    "dir/./../..",
    "dir",
    "dir/",
    "dir//x",
    "a\x00b",
    "dir/a\x00/etc",
    "\x00",
    "/",
    "~/x",
    "-rf",
    "--help",
    "$(id)",
    "dir/" + "x" * 300,
    "/".join(["d"] * 2100),
    "x" * 5000,
)


def workspace_paths(existing: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """Paths aimed at the symlinks and limits, fresh names (which may be written), the caller's
    `existing` ones, random text."""
    return st.one_of(
        st.sampled_from(HOSTILE_PATHS),
        st.sampled_from(HOSTILE_PATHS),
        fresh_paths(),
        st.sampled_from(["dir", "/workspace/dir", *existing]),
        hostile_text(),
    )


def fresh_paths() -> st.SearchStrategy[str]:
    """Names nothing has: writable, and removed by the test that wrote them."""
    return st.integers(0, 10**6).map(lambda n: f"dir/fz-{n}")


# ---- snapshots (executor and agent alike) ----


@st.composite
def create_snapshot_requests(
    draw: st.DrawFn, workspace_id: str, random_ids: st.SearchStrategy[str]
) -> executor_pb2.CreateSnapshotRequest:
    """Random ids; hostile names on the real workspace one time in 40, and one in 40 a plain valid
    snapshot of it. Each accepted one is an image commit (a third of a second or more), which the
    caller deletes. (sampled_from: st.integers draws its bounds far more often than 1/40.)"""
    kind = draw(st.sampled_from(range(40)))
    if kind == 7:
        return executor_pb2.CreateSnapshotRequest(
            workspace_id=workspace_id, name=f"fz-{draw(st.integers(0, 10**9))}"
        )
    request = draw(
        message(executor_pb2.CreateSnapshotRequest.DESCRIPTOR, overrides={"workspace_id": random_ids})
    )
    if kind == 13:
        request.workspace_id = workspace_id
    return request
