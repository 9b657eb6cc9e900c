"""The provider's server-sent-event reader: events split however the network cuts the bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_service.providers.openai_chat import MAX_EVENT_BYTES, _EventStream, _EventTooLarge

STREAM = (
    b'data: {"a":1}\n\n'
    b": a comment\n"
    b"event: message\nid: 7\nretry: 100\n"
    b'data: {"b":\ndata: 2}\n\n'
    b"data:[DONE]\n\n"
)
EXPECTED = [b'{"a":1}', b'{"b":\n2}', b"[DONE]"]


def _read(stream: bytes, cuts: list[int]) -> list[bytes]:
    parser = _EventStream()
    events: list[bytes] = []
    start = 0
    for end in [*sorted(set(cuts)), len(stream)]:
        events += parser.feed(stream[start:end])
        start = end
    return events + parser.end()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(STREAM) * 2), max_size=12))
def test_events_are_the_same_whatever_the_line_ends_and_the_reads(newline: bytes, cuts: list[int]) -> None:
    stream = STREAM.replace(b"\n", newline)
    assert _read(stream, [c for c in cuts if c < len(stream)]) == EXPECTED


def test_an_unfinished_last_event_still_counts_at_the_end_of_the_body() -> None:
    assert _read(b'data: {"a":1}', []) == [b'{"a":1}']
    assert _read(b'data: {"a":1}\n', []) == [b'{"a":1}']


def test_an_event_larger_than_the_bound_is_refused() -> None:
    parser = _EventStream()
    with pytest.raises(_EventTooLarge):
        for _ in range(MAX_EVENT_BYTES // (1024 * 1024) + 2):
            parser.feed(b"data: " + b"x" * (1024 * 1024) + b"\n")
