"""A stand-in model provider: a real HTTP/1.1 server on loopback that speaks one of the two
streaming wire formats, as the real servers do, quirks included:

- `openai`: chat completions (SSE `data: {chat.completion.chunk}` events, then `data: [DONE]`);
- `anthropic`: the Messages API's published event stream (`event: message_start`, then per
  content block `content_block_start` / `content_block_delta` / `content_block_stop`, `ping`
  events, `message_delta` with the stop reason and output usage, `message_stop`; `error` events).

Each test scripts the replies, served in order, one per request; when the script runs out the
`default` reply is served. The reply builders (`text_reply`, `tool_reply`, `shell_reply`,
`error_reply`, `held_reply`) render both formats, so one test runs against either; raw steps
(`chunk`, `Raw`) are OpenAI-only. Replies are built from steps: SSE payloads, pauses, a hold until
released, a cut connection, a raw malformed line, keep-alive pings with no tokens (llama.cpp's
`: ping - <time>` comments, Anthropic's `ping` events), a model that never stops. A server can
also refuse request fields with the 400s real servers send (`refuse`). Every request body is
recorded.

    fake = await FakeProvider.start()            # or FakeProvider.start(wire="anthropic")
    fake.script(text_reply("Hel", "lo"), error_reply(429, "slow down", retry_after=0.1))
    ... base_url=fake.base_url ...
    fake.requests[0]["messages"]
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
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


@dataclass(frozen=True)
class Event:
    """An Anthropic stream event: `event: name` and its data."""

    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Pings:
    """Keep the connection alive with no tokens: llama.cpp's `: ping - <time>` SSE comments
    (OpenAI wire) or `ping` events (Anthropic), every `interval` seconds, `count` times or (None)
    until released or the client goes away."""

    interval: float
    count: int | None = None


@dataclass(frozen=True)
class Endless:
    """A model that never stops: `piece` after `piece`, `pause` apart. A server that honours the
    output limit stops after that many pieces with finish_reason length (max_tokens); one that
    does not goes on until the client goes away."""

    piece: str = "more "
    pause: float = 0.001
    honours_limit: bool = True


Step = dict[str, Any] | Pause | Hold | Cut | Raw | Event | Pings | Endless


@dataclass
class Reply:
    """One HTTP response: a streamed body of steps, or (status != 200) a JSON error."""

    status: int = 200
    steps: list[Step] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    error_body: dict[str, Any] | None = None
    # End a streamed body with `data: [DONE]` (OpenAI wire).
    done: bool = True
    # The same reply in the Anthropic wire format (the builders set it).
    anthropic: list[Step] | None = None
    anthropic_error: dict[str, Any] | None = None


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


def _message_start(usage: bool, input_tokens: int = 11) -> list[Step]:
    """An Anthropic stream's opening: message_start (input usage), then a ping, as the API sends."""
    message: dict[str, Any] = {
        "id": f"msg_fake{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": "fake-model",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if usage:
        message["usage"] = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        }
    return [
        Event("message_start", {"type": "message_start", "message": message}),
        Event("ping", {"type": "ping"}),
    ]


def _message_end(stop_reason: str, usage: bool, output_tokens: int = 7) -> list[Step]:
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
    }
    if usage:
        delta["usage"] = {"output_tokens": output_tokens}
    return [Event("message_delta", delta), Event("message_stop", {"type": "message_stop"})]


def block_start(index: int, block: dict[str, Any]) -> Event:
    return Event(
        "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
    )


def block_delta(index: int, delta: dict[str, Any]) -> Event:
    return Event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int) -> Event:
    return Event("content_block_stop", {"type": "content_block_stop", "index": index})


def text_block(index: int, text: str) -> list[Step]:
    """A whole text content block: start, one text_delta, stop."""
    return [
        block_start(index, {"type": "text", "text": ""}),
        block_delta(index, {"type": "text_delta", "text": text}),
        block_stop(index),
    ]


def text_reply(
    *pieces: str,
    usage: bool = True,
    reasoning: Iterable[str] = (),
    pause: float = 0.0,
    null_choices: bool = False,
) -> Reply:
    """A streamed answer: reasoning pieces, then text pieces, a stop, and usage if asked."""
    reasoning = list(reasoning)
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
    anthropic: list[Step] = _message_start(usage)
    index = 0
    if reasoning:
        anthropic.append(block_start(0, {"type": "thinking", "thinking": "", "signature": ""}))
        anthropic += [block_delta(0, {"type": "thinking_delta", "thinking": t}) for t in reasoning]
        anthropic += [block_delta(0, {"type": "signature_delta", "signature": "sig-fake=="}), block_stop(0)]
        index = 1
    anthropic.append(block_start(index, {"type": "text", "text": ""}))
    for piece in pieces:
        if pause:
            anthropic.append(Pause(pause))
        anthropic.append(block_delta(index, {"type": "text_delta", "text": piece}))
    anthropic.append(block_stop(index))
    anthropic += _message_end("end_turn", usage)
    return Reply(steps=steps, anthropic=anthropic)


def held_reply(*pieces: str) -> Reply:
    """Streams `pieces`, then stalls (no bytes at all) until the fake provider is released, then stops."""
    anthropic: list[Step] = [*_message_start(True), block_start(0, {"type": "text", "text": ""})]
    anthropic += [block_delta(0, {"type": "text_delta", "text": p}) for p in pieces]
    anthropic += [Hold(), block_stop(0), *_message_end("end_turn", True)]
    return Reply(
        steps=[chunk({"content": p}) for p in pieces] + [Hold(), chunk({}, finish_reason="stop")],
        anthropic=anthropic,
    )


def stalled_reply(*pieces: str, interval: float = 0.05) -> Reply:
    """What llama.cpp's server did: streams `pieces`, then sends keep-alive pings and no tokens
    until the client goes away (or the fake is released)."""
    anthropic: list[Step] = [*_message_start(True), block_start(0, {"type": "text", "text": ""})]
    anthropic += [block_delta(0, {"type": "text_delta", "text": p}) for p in pieces]
    anthropic.append(Pings(interval))
    return Reply(
        steps=[
            chunk({"role": "assistant", "content": ""}),
            *[chunk({"content": p}) for p in pieces],
            Pings(interval),
        ],
        anthropic=anthropic,
        done=False,
    )


def cut_reply(*pieces: str, then: Step | None = None) -> Reply:
    """Streams `pieces`, then `then` (default: the connection closes mid-body, no finish, no
    [DONE] / message_stop)."""
    last = then if then is not None else Cut()
    anthropic: list[Step] = [*_message_start(True), block_start(0, {"type": "text", "text": ""})]
    anthropic += [block_delta(0, {"type": "text_delta", "text": p}) for p in pieces]
    return Reply(
        steps=[*[chunk({"content": p}) for p in pieces], last], anthropic=[*anthropic, last], done=False
    )


def partial_tool_reply(name: str, arguments: str, call_id: str, then: Step | None = None) -> Reply:
    """A tool call whose arguments stop part-way (`arguments` is the part that arrives), then
    `then`: the connection cut (default), or keep-alive pings and nothing more."""
    last = then if then is not None else Cut()
    steps: list[Step] = [chunk({"role": "assistant", "content": None})]
    steps += tool_call_fragments(name, arguments, call_id, pieces=3)
    anthropic: list[Step] = _message_start(True)
    anthropic += anthropic_tool_use(0, name, arguments, call_id, pieces=3)[:-1]  # no block stop
    return Reply(steps=[*steps, last], anthropic=[*anthropic, last], done=False)


def truncated_tool_reply(name: str, arguments: str, call_id: str, text: str = "") -> Reply:
    """The output limit reached mid tool call: the arguments stop part-way, finish_reason
    `length` (stop_reason `max_tokens`)."""
    steps: list[Step] = [chunk({"role": "assistant", "content": text or None})]
    steps += tool_call_fragments(name, arguments, call_id, pieces=3)
    steps += [chunk({}, finish_reason="length"), usage_chunk()]
    anthropic: list[Step] = _message_start(True)
    offset = 0
    if text:
        anthropic += text_block(0, text)
        offset = 1
    anthropic += anthropic_tool_use(offset, name, arguments, call_id, pieces=3)
    anthropic += _message_end("max_tokens", True)
    return Reply(steps=steps, anthropic=anthropic)


def endless_reply(pause: float = 0.001, honours_limit: bool = True) -> Reply:
    """A model that never emits a stop token."""
    step = Endless(pause=pause, honours_limit=honours_limit)
    return Reply(
        steps=[chunk({"role": "assistant", "content": ""}), step],
        anthropic=[*_message_start(True), block_start(0, {"type": "text", "text": ""}), step],
    )


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


def anthropic_tool_use(index: int, name: str, arguments: str, call_id: str, pieces: int = 5) -> list[Step]:
    """A tool_use content block: start (id, name), input_json_delta pieces, stop."""
    steps: list[Step] = [block_start(index, {"type": "tool_use", "id": call_id, "name": name, "input": {}})]
    size = max(1, -(-len(arguments) // pieces))
    for start in range(0, len(arguments), size):
        steps.append(
            block_delta(index, {"type": "input_json_delta", "partial_json": arguments[start : start + size]})
        )
    steps.append(block_stop(index))
    return steps


def tool_reply(*calls: tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str], text: str = "") -> Reply:
    """A streamed answer calling tools: each call is (name, arguments[, id]), split into fragments."""
    steps: list[Step] = [chunk({"role": "assistant", "content": text or None})]
    anthropic: list[Step] = _message_start(True)
    offset = 0
    if text:
        anthropic += text_block(0, text)
        offset = 1
    for index, call in enumerate(calls):
        name, args = call[0], call[1]
        call_id = (call[2] if len(call) > 2 else None) or f"call_{next(_ids)}"  # type: ignore[misc]
        steps.extend(tool_call_fragments(name, json.dumps(args), call_id, index=index))
        anthropic.extend(anthropic_tool_use(index + offset, name, json.dumps(args), call_id))
    steps.append(chunk({}, finish_reason="tool_calls"))
    steps.append(usage_chunk())
    anthropic += _message_end("tool_use", True)
    return Reply(steps=steps, anthropic=anthropic)


def shell_reply(command: str, call_id: str | None = None, text: str = "") -> Reply:
    """The model asks for one `shell` call."""
    if call_id is None:
        return tool_reply(("shell", {"command": command}), text=text)
    return tool_reply(("shell", {"command": command}, call_id), text=text)


# The error types the Anthropic API gives each status.
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_reply(status: int, message: str, retry_after: float | None = None) -> Reply:
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return Reply(
        status=status,
        headers=headers,
        error_body={"error": {"message": message, "type": "fake_error", "code": str(status)}},
        anthropic_error={
            "type": "error",
            "error": {"type": ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
        },
    )


# What real servers answer when they refuse a request field (OpenAI-compatible wire).
REFUSALS: dict[str, tuple[int, dict[str, Any]]] = {
    # Older OpenAI-compatible servers and proxies.
    "stream_options": (
        400,
        {
            "error": {
                "message": "Unrecognized request argument supplied: stream_options",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    ),
    # OpenAI's reasoning models.
    "max_tokens": (
        400,
        {
            "error": {
                "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                "type": "invalid_request_error",
                "param": "max_tokens",
                "code": "unsupported_parameter",
            }
        },
    ),
    # Servers that predate the newer name.
    "max_completion_tokens": (
        400,
        {
            "error": {
                "message": "Unrecognized request argument supplied: max_completion_tokens",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    ),
    # vLLM started without tool calling (its error body has no "error" wrapper).
    "tools": (
        400,
        {
            "object": "error",
            "message": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
    ),
}


class FakeProvider:
    """The scripted OpenAI-compatible server. Use `start()`, then `base_url`."""

    def __init__(self, default: Reply | None = None, wire: str = "openai") -> None:
        self.default = default or text_reply("ok")
        self.wire = wire
        # Request fields this server refuses (see REFUSALS); a request holding one gets the 400.
        self.refused: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        # Each request's headers (names lower-cased), in the order of `requests`.
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.request_times: list[float] = []
        self._script: list[Reply] = []
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.host = "127.0.0.1"

    @classmethod
    async def start(
        cls, default: Reply | None = None, wire: str = "openai", port: int = 0, host: str = "127.0.0.1"
    ) -> FakeProvider:
        """`port` 0 picks a free one; a given port brings a stopped provider back where it was.
        `host` is the address to listen on (containers reach the host on a Docker bridge's gateway)."""
        fake = cls(default, wire)
        fake.host = host
        fake._server = await asyncio.start_server(fake._serve, host, port)
        fake.port = fake._server.sockets[0].getsockname()[1]
        return fake

    @property
    def base_url(self) -> str:
        """What --provider-base-url takes: OpenAI clients add /chat/completions to a URL ending
        in /v1; Anthropic's add /v1/messages to the bare origin."""
        if self.wire == "anthropic":
            return f"http://{self.host}:{self.port}"
        return f"http://{self.host}:{self.port}/v1"

    def sent(self, index: int) -> list[dict[str, Any]]:
        """The conversation of request `index` in the chat-completions shape, whatever the wire
        (an Anthropic request's system, text, tool_use and tool_result blocks mapped back)."""
        request = self.requests[index]
        if self.wire != "anthropic":
            return list(request["messages"])
        chat: list[dict[str, Any]] = []
        if request.get("system"):
            chat.append({"role": "system", "content": request["system"]})
        for message in request["messages"]:
            content = message["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if message["role"] == "user":
                for block in blocks:
                    if block["type"] == "tool_result":
                        chat.append(
                            {
                                "role": "tool",
                                "tool_call_id": block["tool_use_id"],
                                "content": block["content"],
                            }
                        )
                    else:
                        chat.append({"role": "user", "content": block["text"]})
                continue
            text = "".join(b["text"] for b in blocks if b["type"] == "text")
            calls = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
                }
                for b in blocks
                if b["type"] == "tool_use"
            ]
            entry: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
            if calls:
                entry["tool_calls"] = calls
            chat.append(entry)
        return chat

    def refuse(self, *fields: str) -> None:
        """Refuse requests holding these fields, as real servers do (REFUSALS)."""
        self.refused.update(fields)

    def script(self, *replies: Reply | Callable[[dict[str, Any]], Reply]) -> None:
        """Queue replies, served one per request in this order. A callable is given the request
        (its JSON body) and returns the reply: for answers that depend on earlier tool results,
        as a real model's do."""
        self._script.extend(replies)  # type: ignore[arg-type]

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()
        self.headers.clear()
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
                self.paths.append(request_line.decode("latin-1").split(" ")[1])
                length = 0
                headers: dict[str, str] = {}
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                loop = asyncio.get_running_loop()
                self.request_times.append(loop.time())
                request = json.loads(body) if body else {}
                self.requests.append(request)
                self.headers.append(headers)
                refused = [f for f in REFUSALS if f in self.refused and f in request]
                if refused:
                    status, error = REFUSALS[refused[0]]
                    reply = Reply(status=status, error_body=error)
                else:
                    reply = self._script.pop(0) if self._script else self.default
                    if callable(reply):
                        reply = reply(request)
                if not await self._respond(reply, writer, request):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # A client that went away, or the test's loop shutting down: nothing to answer.
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _respond(self, reply: Reply, writer: asyncio.StreamWriter, request: dict[str, Any]) -> bool:
        """Write one response; False when the connection must close."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        anthropic = self.wire == "anthropic"
        steps = reply.steps
        if anthropic and reply.status == 200:
            if reply.anthropic is None:
                reply = Reply(
                    status=500,
                    error_body={
                        "type": "error",
                        "error": {
                            "type": "api_error",
                            "message": "the test scripted a reply with no anthropic rendering",
                        },
                    },
                )
            else:
                steps = reply.anthropic
        if reply.status != 200:
            error = reply.anthropic_error if anthropic and reply.anthropic_error else reply.error_body
            body = json.dumps(error or {}).encode()
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

        for step in steps:
            if isinstance(step, Event):
                pending.append(
                    b"event: %s\ndata: %s\n\n" % (step.name.encode(), json.dumps(step.data).encode())
                )
            elif isinstance(step, Pings):
                await flush()
                sent = 0
                while (step.count is None or sent < step.count) and not self._release.is_set():
                    if anthropic:
                        pending.append(b'event: ping\ndata: {"type": "ping"}\n\n')
                    else:
                        # sse-starlette's keep-alive, as llama-cpp-python's server sends it.
                        pending.append(f": ping - {datetime.datetime.now(datetime.UTC)}\r\n\r\n".encode())
                    await flush()
                    sent += 1
                    await asyncio.sleep(step.interval)
            elif isinstance(step, Endless):
                limit = request.get("max_tokens") or request.get("max_completion_tokens") or 0
                sent = 0
                while not (step.honours_limit and limit and sent >= limit):
                    if anthropic:
                        pending.append(
                            b"event: content_block_delta\ndata: %s\n\n"
                            % json.dumps(
                                block_delta(0, {"type": "text_delta", "text": step.piece}).data
                            ).encode()
                        )
                    else:
                        pending.append(
                            b"data: " + json.dumps(chunk({"content": step.piece})).encode() + b"\n\n"
                        )
                    sent += 1
                    if step.pause:
                        await flush()
                        await asyncio.sleep(step.pause)
                    elif len(pending) >= 64:
                        await flush()
                if anthropic:
                    for end in [block_stop(0), *_message_end("max_tokens", True, sent)]:
                        assert isinstance(end, Event)
                        pending.append(
                            b"event: %s\ndata: %s\n\n" % (end.name.encode(), json.dumps(end.data).encode())
                        )
                else:
                    pending.append(
                        b"data: " + json.dumps(chunk({}, finish_reason="length")).encode() + b"\n\n"
                    )
            elif isinstance(step, Pause):
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
        if reply.done and not anthropic:
            pending.append(b"data: [DONE]\n\n")
        await flush()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def _main() -> None:
    """Serve a default answer of N text deltas until killed; print the base URL first.
    For benchmarks, which run the provider in a process of its own:
    `python -m tests.support.fake_provider --deltas 500 [--wire anthropic]`."""
    import argparse

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("--deltas", type=int, default=1)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between deltas")
    parser.add_argument("--wire", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    args = parser.parse_args()

    async def serve() -> None:
        reply = text_reply(*(f"tok{n} " for n in range(args.deltas)), pause=args.pause)
        # The same bytes, encoded once: a benchmark's provider must cost far less per delta than
        # the agent it loads, so it never limits the rate measured.
        reply.steps = [
            Raw("data: " + json.dumps(step)) if isinstance(step, dict) else step for step in reply.steps
        ]
        reply.anthropic = [
            Raw(f"event: {step.name}\ndata: {json.dumps(step.data)}") if isinstance(step, Event) else step
            for step in reply.anthropic or ()
        ]
        fake = await FakeProvider.start(reply, wire=args.wire, host=args.host)
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    _main()
