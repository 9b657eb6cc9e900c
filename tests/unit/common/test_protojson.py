"""protojson.to_dict gives exactly what json_format.MessageToDict gives (with every field printed),
on generated messages of every type the training log writes and of the services' protos."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firebox.agent.v1 import agent_pb2
from firebox.common.protojson import to_dict
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2
from tests.fuzz.strategies import message

TYPES = [
    trace_pb2.ExecutionRecord,
    trace_pb2.GenerationRecord,
    trace_pb2.FeedbackRecord,
    executor_pb2.ExecuteResponse,
    executor_pb2.Workspace,
    executor_pb2.StepRequest,
    agent_pb2.RunEvent,
]


def _reference(msg: Message) -> object:
    try:
        return json_format.MessageToDict(msg, always_print_fields_with_no_presence=True)
    except Exception as exc:  # e.g. a Timestamp out of range: both must refuse it
        return type(exc)


def _ours(msg: Message) -> object:
    try:
        return to_dict(msg)
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.DESCRIPTOR.full_name)
def test_same_as_json_format(cls: type[Message]) -> None:
    @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(message(cls.DESCRIPTOR))
    def check(msg: Message) -> None:
        assert _ours(msg) == _reference(msg)

    check()


def test_empty_and_well_known_values() -> None:
    record = trace_pb2.ExecutionRecord()
    assert to_dict(record) == json_format.MessageToDict(record, always_print_fields_with_no_presence=True)
    response = executor_pb2.ExecuteResponse(exit_code={"value": 0})
    response.duration.FromMilliseconds(1500)
    assert to_dict(response)["exitCode"] == 0 and to_dict(response)["duration"] == "1.500s"


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.integers(-62135596800, 253402300799),
    st.one_of(
        st.just(0),
        st.integers(0, 999).map(lambda n: n * 1_000_000),
        st.integers(0, 999_999).map(lambda n: n * 1000),
        st.integers(0, 999_999_999),
    ),
)
def test_timestamps_in_range_read_as_json_format_writes_them(seconds: int, nanos: int) -> None:
    """Timestamps are formatted here (the last second's text is kept): every one in JSON's range,
    with 0, 3, 6 or 9 fractional digits, as json_format formats it."""
    stamp = Timestamp(seconds=seconds, nanos=nanos)
    again = Timestamp(seconds=seconds, nanos=(nanos + 1) % 1_000_000_000)  # the same second, cached
    assert to_dict(_with(stamp))["serverTime"] == stamp.ToJsonString()
    assert to_dict(_with(again))["serverTime"] == again.ToJsonString()


def _with(stamp: Timestamp) -> trace_pb2.FeedbackRecord:
    record = trace_pb2.FeedbackRecord()
    record.server_time.CopyFrom(stamp)
    return record
