"""The pieces of the shell protocol that need no shell: record scanning, docker frame
demultiplexing, quoting, spec checks, and the output cap and batching of an execution."""

from __future__ import annotations

import asyncio
import shlex
import socket
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor_service.backend import STDERR, STDOUT
from executor_service.backends.docker_transports import DockerExecTransport
from executor_service.execution import EndReason, ExecuteSpec, Execution, Finished, Output, quote_argv
from executor_service.shell import Scanner
from firebox.common import errors

TAG = b"\x1fFBX0123456789abcdef01234567"


def scan_all(chunks: list[bytes]) -> tuple[bytes, list[bytes]]:
    scanner = Scanner(TAG)
    data, records = [], []
    for chunk in chunks:
        for kind, payload in scanner.feed(chunk):
            (data if kind == Scanner.DATA else records).append(payload)
    data.append(scanner.flush())
    return b"".join(data), records


def split(blob: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(blob) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(blob[last:p])
        last = p
    pieces.append(blob[last:])
    return pieces


@settings(max_examples=300, deadline=None)
@given(
    before=st.binary(max_size=200),
    after=st.binary(max_size=200),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=8),
)
def test_records_are_found_and_output_kept_intact_across_any_chunking(
    before: bytes, after: bytes, cuts: list[int]
) -> None:
    blob = before + TAG + b" D 7 0\n" + after
    data, records = scan_all(split(blob, cuts))
    assert records == [b"D 7 0"]
    assert data == before + after


def test_output_that_only_looks_like_a_tag_start_is_delivered_once_disproved() -> None:
    scanner = Scanner(TAG)
    assert scanner.feed(b"abc\x1fFB") == [(Scanner.DATA, b"abc")]
    assert scanner.feed(b"Zrest") == [(Scanner.DATA, b"\x1fFBZrest")]


def test_output_without_trailing_newline_is_delivered_at_once() -> None:
    assert Scanner(TAG).feed(b"no newline") == [(Scanner.DATA, b"no newline")]


async def test_docker_frames_are_demultiplexed_whatever_the_read_boundaries() -> None:
    frames = [(STDOUT, b"hello "), (STDERR, b"oops\n"), (STDOUT, b""), (STDOUT, bytes(range(256)) * 300)]
    wire = b"".join(struct.pack(">BxxxL", s, len(p)) + p for s, p in frames)
    left, right = socket.socketpair()
    left.setblocking(False)
    transport = DockerExecTransport(api=None, exec_id="", response=None, sock=left)
    right.setblocking(False)
    loop = asyncio.get_running_loop()

    async def write() -> None:
        for i in range(0, len(wire), 7):  # tiny writes: headers and payloads split everywhere
            await loop.sock_sendall(right, wire[i : i + 7])
        right.close()

    writer = asyncio.create_task(write())
    got: dict[int, bytes] = {STDOUT: b"", STDERR: b""}
    while (item := await transport.read()) is not None:
        got[item[0]] += item[1]
    await writer
    assert got[STDOUT] == b"hello " + bytes(range(256)) * 300
    assert got[STDERR] == b"oops\n"
    await transport.close()


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20
        ),
        min_size=1,
        max_size=5,
    )
)
@settings(max_examples=100, deadline=None)
def test_argv_quoting_round_trips_through_a_real_shell(argv: list[str]) -> None:
    out = subprocess.run(
        ["sh", "-c", f"for a in {quote_argv(argv)}; do printf '%s\\0' \"$a\"; done"], capture_output=True
    )
    assert out.stdout.decode("utf-8", "surrogateescape").split("\x00")[:-1] == argv
    assert shlex.split(quote_argv(argv)) == argv


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ExecuteSpec(), "script"),
        (ExecuteSpec(script="x", argv=["y"]), "script"),
        (ExecuteSpec(argv=[""]), "argv"),
        (ExecuteSpec(script="x", env={"1BAD": "v"}), "env"),
        (ExecuteSpec(script="x", env={"A-B": "v"}), "env"),
        (ExecuteSpec(script="x", timeout=-1), "timeout"),
        (ExecuteSpec(script="a\x00b"), "script"),
        (ExecuteSpec(script="x", directory="a\x00"), "directory"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(spec: ExecuteSpec, field: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        spec.check()
    assert caught.value.field == field


def test_directory_is_relative_to_workspace_and_env_is_exported_quoted() -> None:
    text = ExecuteSpec(script="echo hi", directory="sub dir", env={"A": "it's"}).shell_text()
    assert text == "cd -- '/workspace/sub dir' && export 'A=it'\\''s' && command eval 'echo hi'"
    assert ExecuteSpec(script="x", directory="/abs").shell_text().startswith("cd -- '/abs' && ")


async def test_output_past_the_cap_is_dropped_and_marked_truncated() -> None:
    execution = Execution(ExecuteSpec(script="x"), output_cap_bytes=10)
    await execution.output(b"123456", b"")
    await execution.output(b"789", b"abc")
    await execution.output(b"more", b"")
    await execution.finish(Finished(0, EndReason.EXITED, execution.truncated))
    events = [e async for e in execution.events()]
    outputs = [e for e in events if isinstance(e, Output)]
    assert b"".join(o.stdout + o.stderr for o in outputs) == b"123456789a"
    assert execution.truncated
    assert execution.output_bytes == 16


async def test_queued_output_is_coalesced_into_few_events() -> None:
    execution = Execution(ExecuteSpec(script="x"), output_cap_bytes=1 << 20)
    for i in range(50):
        await execution.output(b"o%d " % i, b"e" if i % 10 == 0 else b"")
    await execution.finish(Finished(0, EndReason.EXITED))
    events = [e async for e in execution.events()]
    outputs = [e for e in events if isinstance(e, Output)]
    assert len(outputs) < 5
    assert b"".join(o.stdout for o in outputs) == b"".join(b"o%d " % i for i in range(50))
    assert isinstance(events[-1], Finished)


async def test_a_slow_consumer_holds_the_producer_back() -> None:
    execution = Execution(ExecuteSpec(script="x"), output_cap_bytes=1 << 30)
    produced = 0

    async def produce() -> None:
        nonlocal produced
        for _ in range(1000):
            await execution.output(b"x" * 1024, b"")
            produced += 1

    task = asyncio.create_task(produce())
    await asyncio.sleep(0.1)
    # Nobody reads: the producer waits on the bounded queue instead of buffering everything.
    assert produced < 100
    task.cancel()
