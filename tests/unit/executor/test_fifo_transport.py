"""FifoTransport on a real local process: the wrapper that swaps stdio for the FIFOs runs under a
plain `sh` whose own pipes stay open until the wrapped process exits (PipeTransport standing where
the docker exec socket is, which closes when the exec'd process exits), so these run without Docker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from executor_service.backend import STDERR, STDOUT
from executor_service.backends.docker_transports import _FIFO_WRAPPER, FifoTransport, _make_fifos
from executor_service.backends.local_transports import PipeTransport

# Runs its arguments as a child (not exec'd: the command is not the script's last), keeping the
# pipes open until that child exits.
OUTER = ["/bin/sh", "-c", '"$@"; exit $?', "outer"]


async def _open(tmp_path: Path, script: str) -> FifoTransport:
    directory = tmp_path / "s1"
    fds = await asyncio.to_thread(_make_fifos, directory)
    process = await PipeTransport.spawn(
        [*OUTER, "/bin/sh", "-c", _FIFO_WRAPPER, "firebox-io", str(directory), "/bin/sh", "-c", script]
    )
    transport = FifoTransport(directory, fds, process, str(directory))  # type: ignore[arg-type]
    await transport._await_wrapper()
    return transport


async def _read_all(transport: FifoTransport) -> dict[int, bytes]:
    out = {STDOUT: b"", STDERR: b""}
    while (item := await transport.read()) is not None:
        out[item[0]] += item[1]
    return out


async def test_streams_stay_separate_and_the_end_is_seen(tmp_path: Path) -> None:
    transport = await _open(tmp_path, "head -c 14; echo to-err >&2; exit 3")
    await transport.write(b"through stdin\n")
    out = await asyncio.wait_for(_read_all(transport), 10)  # ends when the process has exited
    assert out[STDOUT] == b"through stdin\n" and out[STDERR] == b"to-err\n"
    await transport.close()
    assert not (tmp_path / "s1").exists()


async def test_a_write_that_must_wait_does_not_strand_a_waiting_read(tmp_path: Path) -> None:
    # The program reads nothing for a while: 1 MiB of input fills the FIFO and the write waits,
    # while a read waits too. Both must wake when they can.
    transport = await _open(tmp_path, "echo early; sleep 0.5; head -c 1048576 | wc -c; echo late >&2")
    first = await asyncio.wait_for(transport.read(), 10)
    assert first == (STDOUT, b"early\n")
    reading = asyncio.create_task(_read_all(transport))
    await asyncio.wait_for(transport.write(b"x" * (1024 * 1024)), 10)
    out = await asyncio.wait_for(reading, 10)
    await transport.close()
    assert out[STDOUT].split() == [b"1048576"] and out[STDERR] == b"late\n"


async def test_a_directory_the_process_cannot_see_is_reported(tmp_path: Path) -> None:
    directory = tmp_path / "s2"
    fds = await asyncio.to_thread(_make_fifos, directory)
    process = await PipeTransport.spawn(
        [*OUTER, "/bin/sh", "-c", _FIFO_WRAPPER, "firebox-io", str(tmp_path / "elsewhere"), "/bin/true"]
    )
    transport = FifoTransport(directory, fds, process, str(directory))  # type: ignore[arg-type]
    try:
        await transport._await_wrapper()
        raise AssertionError("the wrapper should have failed")
    except Exception as exc:
        assert "is not a FIFO shared with the executor" in str(exc)
    finally:
        await transport.close()


async def test_a_wrapper_that_fails_for_a_passing_reason_is_unavailable_not_a_reason_to_give_up_fifos(
    tmp_path: Path,
) -> None:
    # E.g. the workspace is at its pids limit: the process dies before it reaches the FIFOs. That
    # is UNAVAILABLE for this call; only "the FIFOs are not shared" switches a workspace for good.
    from executor_service.backends.docker_transports import FifoUnavailable
    from firebox.common.errors import Unavailable

    directory = tmp_path / "s3"
    fds = await asyncio.to_thread(_make_fifos, directory)
    process = await PipeTransport.spawn([*OUTER, "/bin/sh", "-c", 'echo "sh: cannot fork" >&2; exit 2'])
    transport = FifoTransport(directory, fds, process)  # type: ignore[arg-type]
    try:
        await transport._await_wrapper()
        raise AssertionError("the wrapper should have failed")
    except Unavailable as exc:
        assert "cannot fork" in exc.message and not isinstance(exc, FifoUnavailable)
    finally:
        await transport.close()
