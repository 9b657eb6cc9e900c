"""The model provider: OpenAI-compatible chat completions, streamed, through the `openai` SDK.

Works with OpenAI, vLLM, Ollama, llama.cpp's server and LiteLLM. What servers differ on is
tolerated here: usage asked for with `stream_options` and perhaps never sent (or the option
refused, then asked again without it), `choices: null` chunks, tool-call fragments arriving by
index, reasoning under `reasoning_content` or `reasoning`.

There is one retry layer, this one (the SDK's own retries are off): 429, 5xx and connection
errors are retried with exponential backoff and jitter, honouring `Retry-After`, but only while
nothing has been streamed yet, so a retry never repeats output. Failures leave as
`firebox.common.errors` carrying the provider's message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import openai

from firebox.common.errors import (
    FailedPrecondition,
    FireboxError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from firebox.common.logging import get_logger

log = get_logger("firebox.agent.provider")

# The most characters of a provider's error message carried into a status.
_MAX_ERROR_CHARS = 2000


class ContextLengthExceeded(InvalidArgument):
    """The provider refused the request because it does not fit the model's context window."""

    def __init__(self, detail: str) -> None:
        super().__init__("messages", f"the conversation does not fit the model's context window: {detail}")


# Words providers use when a request is longer than the window (OpenAI, vLLM, llama.cpp, Ollama,
# Anthropic through LiteLLM).
_OVERFLOW_MARKERS = (
    "context length",
    "context_length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
    "exceeds the context",
)


@dataclass(frozen=True)
class TextPiece:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class ReasoningPiece:
    """A piece of the model's reasoning, when the server sends it."""

    text: str


@dataclass
class AssembledToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class TokenCounts:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0


@dataclass
class Completion:
    """The end of one model call: everything assembled, usage if the server sent it."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[AssembledToolCall] = field(default_factory=list)
    finish_reason: str = ""
    usage: TokenCounts | None = None


ProviderEvent = TextPiece | ReasoningPiece | Completion


@dataclass(frozen=True)
class ProviderSettings:
    base_url: str = ""
    api_key: str = ""
    default_model: str = ""
    idle_timeout: float = 60.0
    connect_timeout: float = 10.0
    retries: int = 3
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.api_key)


class _ToolCallBuilder:
    """Joins a tool call's fragments, which arrive keyed by index."""

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class _StreamEndedEarly(Exception):
    """The stream closed before the model said it was finished."""


class _EventTooLarge(Exception):
    """One server-sent event (or line) of the stream outgrew MAX_EVENT_BYTES."""


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


class ModelProvider:
    """Streams chat completions from one OpenAI-compatible endpoint."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._client: openai.AsyncOpenAI | None = None
        # Cleared for good once the server refuses `stream_options`.
        self._ask_for_usage = True
        if settings.configured:
            # The read timeout is the idle timeout: it applies to every read of the stream.
            timeout = httpx2.Timeout(settings.idle_timeout, connect=settings.connect_timeout)
            self._client = openai.AsyncOpenAI(
                base_url=settings.base_url or None,
                # Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
                api_key=settings.api_key or "unused",
                max_retries=0,
                timeout=timeout,
                http_client=_http_client(timeout),
            )

    @property
    def configured(self) -> bool:
        return self._client is not None

    @property
    def target(self) -> str:
        return self.settings.base_url or "https://api.openai.com/v1"

    def resolve_model(self, requested: str) -> str:
        """The model to call: the one asked for, else the default; FAILED_PRECONDITION if neither."""
        self.require_configured()
        model = requested or self.settings.default_model
        if not model:
            raise FailedPrecondition(
                "no model given and no default model configured: set --model or FIREBOX_MODEL, or the "
                "session's settings.model"
            )
        return model

    def require_configured(self) -> None:
        if self._client is None:
            raise FailedPrecondition(
                "no model provider configured: set --provider-base-url (FIREBOX_PROVIDER_BASE_URL) for an "
                "OpenAI-compatible server, or FIREBOX_PROVIDER_API_KEY / OPENAI_API_KEY for OpenAI"
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def stream(
        self, messages: list[dict[str, Any]], model: str, tools: list[dict[str, Any]] | None = None
    ) -> AsyncIterator[ProviderEvent]:
        """Stream one model call: text and reasoning pieces as they come, then one Completion."""
        self.require_configured()
        attempt = 0
        while True:
            produced = False
            try:
                async for event in self._attempt(messages, model, tools):
                    produced = True
                    yield event
                return
            except openai.APIStatusError as exc:
                if self._ask_for_usage and exc.status_code in (400, 422) and _mentions_stream_options(exc):
                    log.warning("provider_refused_stream_options", status=exc.status_code)
                    self._ask_for_usage = False
                    continue
                retryable = exc.status_code == 429 or exc.status_code >= 500
                if produced or not retryable or attempt >= self.settings.retries:
                    raise self._map_error(exc, attempt) from exc
                delay = self._delay(attempt, _retry_after(exc.response.headers))
            except openai.APIConnectionError as exc:
                if produced or attempt >= self.settings.retries:
                    raise self._map_error(exc, attempt) from exc
                delay = self._delay(attempt, None)
            except FireboxError:
                raise
            except (openai.APIError, json.JSONDecodeError, _StreamEndedEarly, _EventTooLarge) as exc:
                raise self._map_error(exc, attempt) from exc
            attempt += 1
            log.info("provider_retry", attempt=attempt, delay_seconds=round(delay, 3))
            await asyncio.sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.settings.retry_max_delay)
        backoff = min(self.settings.retry_base_delay * (2**attempt), self.settings.retry_max_delay)
        # Full jitter between half and all of the backoff, so clients that failed together spread out.
        return backoff * (0.5 + random.random() / 2)

    async def _attempt(
        self, messages: list[dict[str, Any]], model: str, tools: list[dict[str, Any]] | None
    ) -> AsyncIterator[ProviderEvent]:
        assert self._client is not None
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
        if tools:
            kwargs["tools"] = tools
        if self._ask_for_usage:
            kwargs["stream_options"] = {"include_usage": True}
        # The SDK's low-level post: its request transformation walks every message through the
        # typed-dict machinery (tens of milliseconds for a long conversation). The request, its
        # errors (an APIStatusError before any byte of the body) and retries-off are the SDK's;
        # the body is read here, from the response's byte stream: the SDK's SSE decoder and
        # stream wrapper cost twice what this does per token (docs/agent.md, "Agent relay").
        stream = await self._client.post(
            "/chat/completions",
            cast_to=object,
            body=kwargs,
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
        response = stream.response
        text: list[str] = []
        reasoning: list[str] = []
        calls: dict[int, _ToolCallBuilder] = {}
        completion = Completion()
        finished = False
        try:
            async for payloads in _payloads(response):
                for payload in payloads:
                    chunk = _decode(payload, response.request)
                    if not isinstance(chunk, dict):
                        continue
                    usage = chunk.get("usage")
                    if isinstance(usage, dict):
                        completion.usage = _counts(usage)
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta")
                        if isinstance(delta, dict):
                            content = delta.get("content")
                            if content:
                                text.append(content)
                                yield TextPiece(content)
                            thought = delta.get("reasoning_content") or delta.get("reasoning")
                            if isinstance(thought, str) and thought:
                                reasoning.append(thought)
                                yield ReasoningPiece(thought)
                            for fragment in delta.get("tool_calls") or ():
                                builder = calls.setdefault(fragment.get("index") or 0, _ToolCallBuilder())
                                builder.id = builder.id or (fragment.get("id") or "")
                                function = fragment.get("function")
                                if isinstance(function, dict):
                                    builder.name = builder.name or (function.get("name") or "")
                                    if function.get("arguments"):
                                        builder.arguments.append(function["arguments"])
                        if choice.get("finish_reason"):
                            completion.finish_reason = choice["finish_reason"]
                            finished = True
        finally:
            await response.aclose()
        if not finished:
            raise _StreamEndedEarly("the provider's stream ended before the model finished its answer")
        completion.text = "".join(text)
        completion.reasoning = "".join(reasoning)
        completion.tool_calls = [
            AssembledToolCall(
                id=b.id or f"call_{index}_{int(time.time() * 1000)}",
                name=b.name,
                arguments="".join(b.arguments),
            )
            for index, b in sorted(calls.items())
        ]
        yield completion

    def _map_error(self, exc: BaseException, attempt: int) -> FireboxError:
        tries = f" (after {attempt + 1} attempts)" if attempt else ""
        if isinstance(exc, openai.APIStatusError):
            detail = _provider_message(exc)
            status = exc.status_code
            if status == 429:
                return ResourceExhausted(f"model provider rate limit{tries}: {detail}")
            if status >= 500:
                return Unavailable(f"model provider unavailable (HTTP {status}){tries}: {detail}")
            if status in (401, 403):
                return FailedPrecondition(
                    f"model provider refused the credentials (HTTP {status}): {detail}; check "
                    "FIREBOX_PROVIDER_API_KEY / OPENAI_API_KEY"
                )
            if status in (400, 413, 422) and any(m in detail.lower() for m in _OVERFLOW_MARKERS):
                return ContextLengthExceeded(f"HTTP {status}: {detail}")
            return InvalidArgument("", f"model provider rejected the request (HTTP {status}): {detail}")
        if isinstance(exc, openai.APITimeoutError):
            return Unavailable(
                f"model provider at {self.target} was silent for more than {self.settings.idle_timeout:g}s"
                f"{tries}"
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return Unavailable(f"cannot reach the model provider at {self.target}{tries}: {cause}")
        if isinstance(exc, json.JSONDecodeError):
            return Unavailable(
                f"model provider sent a malformed stream chunk: {exc.msg} in {exc.doc[:200]!r}"
            )
        if isinstance(exc, (_StreamEndedEarly, _EventTooLarge)):
            return Unavailable(str(exc))
        if isinstance(exc, openai.APIError):
            return Unavailable(
                f"model provider reported an error mid-stream: {exc.message[:_MAX_ERROR_CHARS]}"
            )
        return Unavailable(f"model provider call failed: {exc!r}")


async def _payloads(response: httpx2.Response) -> AsyncIterator[list[bytes]]:
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
        async for data in reads:
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
        return body["message"][:_MAX_ERROR_CHARS]
    return exc.message[:_MAX_ERROR_CHARS]


def _mentions_stream_options(exc: openai.APIStatusError) -> bool:
    text = f"{exc.message} {exc.body}".lower()
    return "stream_options" in text or "include_usage" in text


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms, retry-after as seconds or a date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(parsed.timestamp() - time.time(), 0.0)


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
