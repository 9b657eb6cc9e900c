"""OpenAI chat completions, streamed, through the `openai` SDK: OpenAI, vLLM, Ollama, llama.cpp's
server, LiteLLM and other OpenAI-compatible servers.

What servers differ on is tolerated here: usage asked for with `stream_options` and perhaps never
sent (or the option refused, then asked again without it), `choices: null` chunks, tool-call
fragments arriving by index, reasoning under `reasoning_content` or `reasoning`, the output
limit accepted as `max_tokens` or only as `max_completion_tokens` (the one refused is not sent
again), SSE comments (`: ping`) between chunks, a body that ends without `[DONE]`. A server that
refuses `tools` is a FAILED_PRECONDITION naming the server flag that turns tool calling on.

The request goes through the SDK (its client, headers, errors); the body is read here (see
`_payloads`) because it is measurably cheaper: `python -m bench.providers` (docs/providers.md,
"Relay cost per wire") consumed the same burst answers at 11.3 us of CPU per token through this
module and 98.7 us through the SDK's own stream (`chat.completions.create(stream=True)`, a typed
chunk per token); with the SDK's SSE decoder but untyped chunks it was twice this reader's cost
(docs/agent.md, "Agent relay"). httpx2 and anyio, under the SDK, are imported for its response
and errors, and declared.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import openai

from agent_service.providers.base import (
    FINISH_LENGTH,
    MAX_ERROR_CHARS,
    AttemptState,
    Completion,
    Failure,
    ModelProvider,
    ModelRequest,
    ProviderEvent,
    ProviderSettings,
    ReasoningPiece,
    StreamEndedEarly,
    StreamFailed,
    TextPiece,
    TokenCounts,
    ToolCallBuilder,
    read_timeout,
    refuses_field,
)
from firebox.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from firebox.common.logging import get_logger

log = get_logger("firebox.agent.provider.openai")

# The two names of the output limit, in the order tried: `max_tokens` is what older and local
# servers know (and what some silently ignore when given the other); OpenAI's reasoning models
# refuse it and want `max_completion_tokens`.
TOKEN_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")
# Keys of the shared conversation shape that are not chat-completions fields.
_EXTENSION_KEYS = ("reasoning", "reasoning_signature", "redacted_reasoning")


class _EventTooLarge(Exception):
    """One server-sent event (or line) of the stream outgrew MAX_EVENT_BYTES."""


class _ToolsRefused(Exception):
    """The server refuses tool definitions (tool calling is off on it)."""


# The largest server-sent event (or unfinished line) held while reading a stream: a chunk is a
# few hundred bytes, a whole tool call's arguments in one chunk perhaps megabytes.
MAX_EVENT_BYTES = 16 * 1024 * 1024


def _http_client(timeout: httpx2.Timeout) -> httpx2.AsyncClient | None:
    """The SDK's aiohttp transport (`openai.DefaultAioHttpClient`), or None for its default.

    Streaming, the SDK's default transport (httpx over httpcore and anyio) pauses and resumes the
    socket and opens a timeout scope on every network read, and parses the chunked framing in
    Python: a third of the agent's CPU when 64 runs stream a token per read. aiohttp keeps
    reading and parses HTTP in C: 35 -> 21 us of agent CPU per relayed token (docs/agent.md,
    "Agent relay"). Requests, errors (mapped to httpx's), proxies from the environment and the
    read timeout stay as they were. Without aiohttp installed, the default is used."""
    try:
        return openai.DefaultAioHttpClient(timeout=timeout)
    except RuntimeError:  # the SDK's way of saying aiohttp is not installed
        log.warning("provider_transport_httpx", reason="aiohttp is not installed")
        return None


class OpenAIChatProvider(ModelProvider):
    """Streams chat completions from one OpenAI-compatible endpoint."""

    key_hint = "FIREBOX_PROVIDER_API_KEY / OPENAI_API_KEY"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._client: openai.AsyncOpenAI | None = None
        # Cleared for good once the server refuses `stream_options`.
        self._ask_for_usage = True
        # Per model, the output-limit field the server accepts (learned from its refusals).
        self._limit_field: dict[str, str] = {}
        if settings.configured:
            # The read timeout backs the idle watch up (a silent socket); the watch is what ends
            # a stream that sends keep-alives but no tokens.
            timeout = httpx2.Timeout(read_timeout(settings), connect=settings.connect_timeout)
            self._client = openai.AsyncOpenAI(
                base_url=settings.base_url or None,
                # Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
                api_key=settings.api_key or "unused",
                max_retries=0,
                timeout=timeout,
                http_client=_http_client(timeout),
            )

    @property
    def target(self) -> str:
        return self.settings.base_url or "https://api.openai.com/v1"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        messages = request.messages
        if any(k in m for m in messages for k in _EXTENSION_KEYS):
            messages = [{k: v for k, v in m.items() if k not in _EXTENSION_KEYS} for m in messages]
        body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": True}
        if request.tools:
            body["tools"] = request.tools
        if self._ask_for_usage:
            body["stream_options"] = {"include_usage": True}
        if request.max_output_tokens:
            body[self._limit_field.get(request.model, TOKEN_LIMIT_FIELDS[0])] = request.max_output_tokens
        return body

    async def _attempt(self, request: ModelRequest, state: AttemptState) -> AsyncIterator[ProviderEvent]:
        assert self._client is not None
        body = self._body(request)
        # The SDK's low-level post: its request transformation walks every message through the
        # typed-dict machinery (tens of milliseconds for a long conversation). The request, its
        # errors (an APIStatusError before any byte of the body) and retries-off are the SDK's.
        state.reading = True
        try:
            stream = await self._client.post(
                "/chat/completions",
                cast_to=object,
                body=body,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
        finally:
            state.reading = False
        response = stream.response
        text: list[str] = []
        reasoning: list[str] = []
        calls = state.calls
        completion = Completion()
        finished = False
        try:
            async for payloads in _payloads(response, state):
                for payload in payloads:
                    chunk = _decode(payload, response.request)
                    if not isinstance(chunk, dict):
                        continue
                    usage = chunk.get("usage")
                    if isinstance(usage, dict):
                        state.fed()
                        completion.usage = _counts(usage)
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta")
                        if isinstance(delta, dict):
                            content = delta.get("content")
                            if content:
                                state.piece()
                                if state.over_limit:
                                    break
                                text.append(content)
                                yield TextPiece(content)
                            thought = delta.get("reasoning_content") or delta.get("reasoning")
                            if isinstance(thought, str) and thought:
                                state.piece()
                                if state.over_limit:
                                    break
                                reasoning.append(thought)
                                yield ReasoningPiece(thought)
                            for fragment in delta.get("tool_calls") or ():
                                state.piece()
                                if state.over_limit:
                                    break
                                builder = calls.get(fragment.get("index") or 0)
                                if builder is None:
                                    builder = calls[fragment.get("index") or 0] = ToolCallBuilder()
                                builder.id = builder.id or (fragment.get("id") or "")
                                function = fragment.get("function")
                                if isinstance(function, dict):
                                    builder.name = builder.name or (function.get("name") or "")
                                    if function.get("arguments"):
                                        builder.arguments.append(function["arguments"])
                        if choice.get("finish_reason"):
                            state.fed()
                            completion.finish_reason = choice["finish_reason"]
                            finished = True
                    if state.over_limit and not finished:
                        # The server ignores the limit: stop reading where the limit would have
                        # stopped it (the piece past it is not relayed).
                        log.warning("provider_ignored_output_limit", limit=request.max_output_tokens)
                        completion.finish_reason, finished = FINISH_LENGTH, True
                        break
                if state.over_limit:
                    break
        finally:
            await response.aclose()
        if not finished:
            raise StreamEndedEarly()
        completion.text = "".join(text)
        completion.reasoning = "".join(reasoning)
        completion.tool_calls = state.open_tool_calls()
        yield completion

    def _failure(self, exc: Exception, request: ModelRequest, tries: str) -> Failure:
        if isinstance(exc, openai.APIStatusError):
            detail = _provider_message(exc)
            status = exc.status_code
            text = f"{exc.message} {exc.body}".lower()
            if status in (400, 422):
                if self._ask_for_usage and ("stream_options" in text or "include_usage" in text):
                    log.warning("provider_refused_stream_options", status=status)
                    self._ask_for_usage = False
                    return Failure(InvalidArgument("", detail), adjusted=True)
                field = self._limit_field.get(request.model, TOKEN_LIMIT_FIELDS[0])
                if request.max_output_tokens and (_param(exc) == field or refuses_field(text, field)):
                    others = [f for f in TOKEN_LIMIT_FIELDS if f != field]
                    if field == TOKEN_LIMIT_FIELDS[0] and others:
                        log.warning("provider_refused_token_field", field=field, using=others[0])
                        self._limit_field[request.model] = others[0]
                        return Failure(InvalidArgument("", detail), adjusted=True)
            # Any status: llama.cpp's server answers 500 to tools without --jinja.
            if request.tools and _refuses_tools(text):
                return Failure(
                    FailedPrecondition(
                        f"the model server refused tool definitions (HTTP {status}): {detail}; the agent "
                        "needs tool calling on: vLLM --enable-auto-tool-choice --tool-call-parser NAME, "
                        "llama.cpp's server --jinja (docs/providers.md)"
                    )
                )
            return self._http_failure(status, detail, exc.response.headers, tries)
        if isinstance(exc, openai.APITimeoutError):
            return self._silent(tries)
        if isinstance(exc, openai.APIConnectionError):
            return self._unreachable(exc.__cause__ or exc, tries)
        if isinstance(exc, json.JSONDecodeError):
            return Failure(
                StreamFailed(f"model provider sent a malformed stream chunk: {exc.msg} in {exc.doc[:200]!r}")
            )
        if isinstance(exc, _EventTooLarge):
            return Failure(StreamFailed(str(exc)))
        if isinstance(exc, openai.APIError):
            return Failure(
                StreamFailed(f"model provider reported an error mid-stream: {exc.message[:MAX_ERROR_CHARS]}")
            )
        return Failure(Unavailable(f"model provider call failed: {exc!r}"))


async def _payloads(response: httpx2.Response, state: AttemptState) -> AsyncIterator[list[bytes]]:
    """The data of a chat-completions event stream's events, a list per network read, until
    `[DONE]` or the body's end.

    Reads the response's bytes and splits the server-sent events itself (what the SDK's stream
    does, for a fraction of the CPU): only `data` fields are used, an event's data lines are
    joined by newlines, comments, `event`, `id` and `retry` fields are skipped. Read failures
    leave as the SDK's APITimeoutError / APIConnectionError. Payloads stay bytes until the
    consumer decodes them one at a time: a read's worth of decoded chunks alive at once made
    the garbage collector's work per token larger than the decoding."""
    parser = _EventStream()
    # The raw body when it is not compressed (as event streams seldom are): the decoding layers
    # of aiter_bytes cost something on every read and do nothing for an identity body.
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    reads = response.aiter_raw() if encoding in ("", "identity") else response.aiter_bytes()
    try:
        while True:
            # Waiting on the server: the only time the idle watch may end the stream.
            state.reading = True
            try:
                data = await anext(reads)
            except StopAsyncIteration:
                break
            finally:
                state.reading = False
            payloads = parser.feed(data)
            for n, payload in enumerate(payloads):
                if payload.startswith(b"[DONE]"):
                    if n:
                        yield payloads[:n]
                    await _drain(reads)
                    return
            if payloads:
                yield payloads
        payloads = parser.end()
        for n, payload in enumerate(payloads):
            if payload.startswith(b"[DONE]"):
                payloads = payloads[:n]
                break
        if payloads:
            yield payloads
    except httpx2.TimeoutException as exc:
        raise openai.APITimeoutError(request=response.request) from exc
    except _READ_ERRORS as exc:
        raise openai.APIConnectionError(request=response.request) from exc


# What reading a response body raises when the connection fails (as the SDK counts them).
_READ_ERRORS = (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)


def _decode(payload: bytes, request: httpx2.Request) -> Any:
    """One event's data as JSON; an `error` object raises openai.APIError, as in the SDK."""
    try:
        text = payload.decode()
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(
            f"invalid UTF-8 ({exc.reason})", payload.decode(errors="replace"), exc.start
        ) from exc
    data = _loads(text)
    if isinstance(data, dict) and data.get("error"):
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"
        raise openai.APIError(message=message, request=request, body=error)
    return data


_JSON = json.JSONDecoder()


def _loads(text: str) -> Any:
    """json.loads, minus its wrapper's cost (a third of it for a chunk's few hundred bytes): the
    decoder's raw_decode, then only whitespace may follow. Whatever raw_decode refuses goes to
    json.loads, which accepts leading whitespace and words any error as it always does."""
    try:
        data, end = _JSON.raw_decode(text)
    except json.JSONDecodeError:
        return json.loads(text)
    if end != len(text) and not text[end:].isspace():
        return json.loads(text)
    return data


async def _drain(reads: AsyncIterator[bytes]) -> None:
    """Read what follows `[DONE]` (for HTTP/1.1, the end of the chunked body) so the connection
    can be reused, but for at most 0.1 s, as the SDK does; a failure here loses no output."""
    with anyio.move_on_after(0.1):
        try:
            async for _ in reads:
                pass
        except _READ_ERRORS:
            pass


class _EventStream:
    """Splits server-sent events out of a byte stream; yields each event's data (bytes).

    Lines end with LF, CRLF or CR (the SSE rule); a blank line ends an event. Network reads cut
    lines anywhere, so an unfinished line waits for the next read."""

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[bytes] = []
        # Bytes in `_data`, the event being gathered.
        self._held = 0

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._rest + data if self._rest else data
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF: keep it for the next read.
            held = buffer.endswith(b"\r")
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines = buffer.split(b"\n")
            self._rest = lines.pop() + (b"\r" if held else b"")
        else:
            lines = buffer.split(b"\n")
            self._rest = lines.pop()
        events = self._events(lines)
        if len(self._rest) + self._held > MAX_EVENT_BYTES:
            raise _EventTooLarge(
                f"model provider sent a stream event larger than {MAX_EVENT_BYTES} bytes; not a chat completion"
            )
        return events

    def end(self) -> list[bytes]:
        """At the end of the body: an unfinished last event still counts (as in the SDK)."""
        rest, self._rest = self._rest.rstrip(b"\r"), b""
        return self._events([rest, b""] if rest else [b""])

    def _events(self, lines: list[bytes]) -> list[bytes]:
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
                    self._held = 0
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
                self._held += len(value)
            # Comments (":..."), event, id and retry fields carry nothing a chat completion uses.
        return events


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        result: str = body["message"][:MAX_ERROR_CHARS]
        return result
    return exc.message[:MAX_ERROR_CHARS]


def _param(exc: openai.APIStatusError) -> str:
    """The request field an error names (OpenAI's `param`), if any."""
    body = exc.body
    return str(body.get("param") or "") if isinstance(body, dict) else ""


def _refuses_tools(text: str) -> bool:
    return "tool" in text and (
        any(w in text for w in ("--jinja", "auto-tool-choice", "tool_choice", "tool-call-parser"))
        or refuses_field(text, "tools")
    )


def _counts(usage: dict[str, Any]) -> TokenCounts:
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    counts = TokenCounts(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        cached_input_tokens=int(prompt_details.get("cached_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        total_tokens=int(usage.get("total_tokens") or 0),
    )
    if not counts.total_tokens:
        counts.total_tokens = counts.input_tokens + counts.output_tokens
    return counts
