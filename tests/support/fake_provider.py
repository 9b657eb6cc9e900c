"""A stand-in model provider: a real HTTP/1.1 server on loopback that speaks the OpenAI
chat-completions streaming protocol (SSE `data: {...}` lines, then `data: [DONE]`).

Each test scripts the replies, served in order, one per request; when the script runs out the
`default` reply is served. Replies are built from steps: SSE payloads, pauses, a hold until
released, a cut connection, or a raw malformed line. Every request body is recorded.

    fake = await FakeProvider.start()
    fake.script(text_reply("Hel", "lo"), error_reply(429, "slow down", retry_after=0.1))
    ... base_url=fake.base_url ...
    fake.requests[0]["messages"]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pause:
    """Wait this long before the next step."""

    seconds: float


@dataclass(frozen=True)
class Hold:
    """Send nothing until `FakeProvider.release()` (a stalled stream)."""


@dataclass(frozen=True)
class Cut:
    """Close the connection at once, mid-body: no terminating chunk, no [DONE]."""


@dataclass(frozen=True)
class Raw:
    """Send this SSE line as it is (for malformed chunks)."""

    line: str


Step = dict[str, Any] | Pause | Hold | Cut | Raw


@dataclass
class Reply:
    """One HTTP response: a streamed body of steps, or (status != 200) a JSON error."""

    status: int = 200
    steps: list[Step] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    error_body: dict[str, Any] | None = None
    # End a streamed body with `data: [DONE]`.
    done: bool = True


_ids = itertools.count(1)


def chunk(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One chat.completion.chunk with a single choice."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}],
        **extra,
    }


def usage_chunk(prompt: int = 11, completion: int = 7, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    """The final chunk servers send for stream_options.include_usage: no choices, the usage."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "fake-model",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }


def text_reply(
    *pieces: str,
    usage: bool = True,
    reasoning: Iterable[str] = (),
    pause: float = 0.0,
    null_choices: bool = False,
) -> Reply:
    """A streamed answer: reasoning pieces, then text pieces, a stop, and usage if asked."""
    steps: list[Step] = [chunk({"role": "assistant", "content": ""})]
    if null_choices:
        steps.append(
            {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "choices": None}
        )
    for thought in reasoning:
        steps.append(chunk({"reasoning_content": thought}))
    for piece in pieces:
        if pause:
            steps.append(Pause(pause))
        steps.append(chunk({"content": piece}))
    steps.append(chunk({}, finish_reason="stop"))
    if usage:
        steps.append(usage_chunk())
    return Reply(steps=steps)


def tool_call_fragments(
    name: str, arguments: str, call_id: str | None = None, index: int = 0, pieces: int = 5
) -> list[dict[str, Any]]:
    """A tool call split across many chunks: id and name first, then the arguments in pieces."""
    call_id = call_id or f"call_{next(_ids)}"
    steps = [
        chunk(
            {"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": {"name": name}}]}
        )
    ]
    size = max(1, -(-len(arguments) // pieces))
    for start in range(0, len(arguments), size):
        part = arguments[start : start + size]
        steps.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
    return steps


def tool_reply(*calls: tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str], text: str = "") -> Reply:
    """A streamed answer calling tools: each call is (name, arguments[, id]), split into fragments."""
    steps: list[Step] = [chunk({"role": "assistant", "content": text or None})]
    for index, call in enumerate(calls):
        name, args = call[0], call[1]
        call_id = call[2] if len(call) > 2 else None  # type: ignore[misc]
        steps.extend(tool_call_fragments(name, json.dumps(args), call_id, index=index))
    steps.append(chunk({}, finish_reason="tool_calls"))
    steps.append(usage_chunk())
    return Reply(steps=steps)


def shell_reply(command: str, call_id: str | None = None, text: str = "") -> Reply:
    """The model asks for one `shell` call."""
    if call_id is None:
        return tool_reply(("shell", {"command": command}), text=text)
    return tool_reply(("shell", {"command": command}, call_id), text=text)


def error_reply(status: int, message: str, retry_after: float | None = None) -> Reply:
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return Reply(
        status=status,
        headers=headers,
        error_body={"error": {"message": message, "type": "fake_error", "code": str(status)}},
    )


class FakeProvider:
    """The scripted OpenAI-compatible server. Use `start()`, then `base_url`."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or text_reply("ok")
        self.requests: list[dict[str, Any]] = []
        self.request_times: list[float] = []
        self._script: list[Reply] = []
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @classmethod
    async def start(cls, default: Reply | None = None) -> FakeProvider:
        fake = cls(default)
        fake._server = await asyncio.start_server(fake._serve, "127.0.0.1", 0)
        fake.port = fake._server.sockets[0].getsockname()[1]
        return fake

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply | Callable[[dict[str, Any]], Reply]) -> None:
        """Queue replies, served one per request in this order. A callable is given the request
        (its JSON body) and returns the reply: for answers that depend on earlier tool results,
        as a real model's do."""
        self._script.extend(replies)  # type: ignore[arg-type]

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()
        self.request_times.clear()
        self._release = asyncio.Event()

    def release(self) -> None:
        """Let every held stream go on."""
        self._release.set()

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                length = 0
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                loop = asyncio.get_running_loop()
                self.request_times.append(loop.time())
                self.requests.append(json.loads(body) if body else {})
                reply = self._script.pop(0) if self._script else self.default
                if callable(reply):
                    reply = reply(self.requests[-1])
                if not await self._respond(reply, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # A client that went away, or the test's loop shutting down: nothing to answer.
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _respond(self, reply: Reply, writer: asyncio.StreamWriter) -> bool:
        """Write one response; False when the connection must close."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        if reply.status != 200:
            body = json.dumps(reply.error_body or {}).encode()
            writer.write(
                f"HTTP/1.1 {reply.status} Error\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            return True
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{extra}"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        pending: list[bytes] = []

        async def flush() -> None:
            if pending:
                data = b"".join(pending)
                pending.clear()
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()

        for step in reply.steps:
            if isinstance(step, Pause):
                await flush()
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Hold):
                await flush()
                await self._release.wait()
            elif isinstance(step, Cut):
                await flush()
                writer.transport.abort()
                return False
            elif isinstance(step, Raw):
                pending.append(f"{step.line}\n\n".encode())
            else:
                pending.append(b"data: " + json.dumps(step).encode() + b"\n\n")
        if reply.done:
            pending.append(b"data: [DONE]\n\n")
        await flush()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def _main() -> None:
    """Serve a default answer of N text deltas until killed; print the base URL first.
    For benchmarks, which run the provider in a process of its own:
    `python -m tests.support.fake_provider --deltas 500`."""
    import argparse

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("--deltas", type=int, default=1)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between deltas")
    args = parser.parse_args()

    async def serve() -> None:
        reply = text_reply(*(f"tok{n} " for n in range(args.deltas)), pause=args.pause)
        # The same bytes, encoded once: a benchmark's provider must cost far less per delta than
        # the agent it loads, so it never limits the rate measured.
        reply.steps = [
            Raw("data: " + json.dumps(step)) if isinstance(step, dict) else step for step in reply.steps
        ]
        fake = await FakeProvider.start(reply)
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    _main()
