"""Proto messages as JSON-ready dicts, the same as `json_format.MessageToDict(message,
always_print_fields_with_no_presence=True)` and several times faster.

json_format walks every field's descriptor and checks its options on every call. Here each message
type gets, once, a small Python function written for it: one dict display with every field that is
always printed, then a `HasField` test for each field with presence. The training log's writer
turns every record into a line with it (`trainlog_writer.record_to_line`), which made JSON
conversion most of the log's cost. Timestamps are formatted here as json_format formats them
(checked against it); anything else unusual — the well-known types other than Timestamp, Duration
and the wrappers (Struct, Value, Any, FieldMask...) — is handed to json_format itself, so the output
never differs; tests/unit/common/test_protojson.py checks that on generated messages.
"""

from __future__ import annotations

import base64
import datetime as dt
import keyword
import math
from collections.abc import Callable
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

_Converter = Callable[[Any], Any]


def descriptor_of(message: Message) -> Descriptor:
    """A message's descriptor (typeshed types it as one of two classes; they are the same API)."""
    return cast(Descriptor, message.DESCRIPTOR)


def message_type(field: FieldDescriptor) -> Descriptor:
    """The message type of a message (or map) field."""
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def enum_type(field: FieldDescriptor) -> EnumDescriptor:
    """The enum type of an enum field."""
    if field.enum_type is None:
        raise TypeError(f"{field.full_name} is not an enum field")
    return field.enum_type


# Per message type (full name): its generated converter.
_CONVERTERS: dict[str, _Converter] = {}
_COMPILING: set[str] = set()  # types whose converter is being written (a recursive field waits)

_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
WRAPPERS = {
    "google.protobuf.BoolValue",
    "google.protobuf.BytesValue",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int32Value",
    "google.protobuf.Int64Value",
    "google.protobuf.StringValue",
    "google.protobuf.UInt32Value",
    "google.protobuf.UInt64Value",
}
# Timestamp's range in JSON (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z).
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799
_EPOCH = dt.date(1970, 1, 1)


def to_dict(message: Message) -> dict[str, Any]:
    """`message` as json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    gives it."""
    try:
        result = _converter_for(descriptor_of(message))(message)
    except ValueError as exc:  # e.g. a Timestamp out of range, refused as json_format refuses it
        raise json_format.SerializeToJsonError(f"Failed to serialize: {exc}.") from exc
    if not isinstance(result, dict):  # a well-known type at the top: json_format's own form
        return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return result


def _converter_for(descriptor: Descriptor) -> _Converter:
    convert = _CONVERTERS.get(descriptor.full_name)
    if convert is None:
        _COMPILING.add(descriptor.full_name)
        try:
            convert = _CONVERTERS[descriptor.full_name] = _compile(descriptor)
        finally:
            _COMPILING.discard(descriptor.full_name)
    return convert


def _compile(descriptor: Descriptor) -> _Converter:
    """Write and compile the converter of one message type (well-known types have their own)."""
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        return _timestamp
    if name == "google.protobuf.Duration":
        return _duration
    if name in WRAPPERS:
        return _wrapper(descriptor)
    if name.startswith("google.protobuf."):
        return _json_format
    namespace: dict[str, Any] = {"_bool_key": _bool_key}
    always: list[str] = []
    optional: list[str] = []
    for index, field in enumerate(descriptor.fields):
        key = repr(field.json_name)
        get = (
            f"m.{field.name}"
            if field.name.isidentifier() and not keyword.iskeyword(field.name)
            else f"getattr(m, {field.name!r})"
        )
        if _is_map(field):
            key_field = message_type(field).fields_by_name["key"]
            value_convert = _converter(message_type(field).fields_by_name["value"])
            map_key = (
                "_bool_key(k)"
                if key_field.type == FieldDescriptor.TYPE_BOOL
                else ("k" if key_field.type == FieldDescriptor.TYPE_STRING else "str(k)")
            )
            if value_convert is None and map_key == "k":
                expression = f"dict({get})"
            else:
                value = "v" if value_convert is None else f"_c{index}(v)"
                namespace[f"_c{index}"] = value_convert
                expression = f"{{{map_key}: {value} for k, v in {get}.items()}}"
            always.append(f"{key}: {expression}")
            continue
        convert = _converter(field)
        namespace[f"_c{index}"] = convert
        if field.is_repeated:
            expression = f"list({get})" if convert is None else f"[_c{index}(v) for v in {get}]"
            always.append(f"{key}: {expression}")
            continue
        expression = get if convert is None else f"_c{index}({get})"
        if field.has_presence:
            optional.append(f"    if m.HasField({field.name!r}):\n        out[{key}] = {expression}")
        else:
            always.append(f"{key}: {expression}")
    lines = ["def convert(m):", "    out = {" + ", ".join(always) + "}", *optional, "    return out"]
    # Source written above from the descriptor alone: field names are identifiers, keys are repr()s.
    exec(compile("\n".join(lines), f"<protojson {name}>", "exec"), namespace)
    result: _Converter = namespace["convert"]
    return result


def _lazy(descriptor: Descriptor) -> _Converter:
    """A recursive type's converter, looked up when first called (it is still being compiled)."""
    return lambda message: _converter_for(descriptor)(message)


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and message_type(field).GetOptions().map_entry
        and field.is_repeated
    )


def _converter(field: FieldDescriptor) -> _Converter | None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        target = message_type(field)
        if target.full_name in _COMPILING:
            return _lazy(target)
        return _converter_for(target)
    return _scalar_converter(field)


def _scalar_converter(field: FieldDescriptor) -> _Converter | None:
    """None when the Python value is already the JSON value (strings, bools, 32-bit integers)."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_ENUM:
        enum = enum_type(field)
        names = {value.number: value.name for value in enum.values}
        if enum.full_name == "google.protobuf.NullValue":
            return lambda _: None
        return lambda number: names.get(number, number)
    if kind in _INT64_TYPES:
        return str
    if kind == FieldDescriptor.TYPE_BYTES:
        return lambda data: base64.b64encode(data).decode("utf-8")
    if kind == FieldDescriptor.TYPE_FLOAT:
        return lambda value: _special_float(value) or type_checkers.ToShortestFloat(value)
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return lambda value: _special_float(value) or value
    return None


def _special_float(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return None


def _bool_key(key: bool) -> str:
    return "true" if key else "false"


def _json_format(message: Message) -> Any:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _wrapper(descriptor: Descriptor) -> _Converter:
    convert = _scalar_converter(descriptor.fields_by_name["value"])
    if convert is None:
        return lambda message: message.value
    return lambda message: convert(message.value)


def _duration(message: Any) -> str:
    result: str = message.ToJsonString()
    return result


_second_cache: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _timestamp(message: Any) -> str:
    """RFC 3339 in UTC, with 0, 3, 6 or 9 fractional digits: json_format's form. Its own code
    takes ~1.7 µs; records come many a second, so the text of the last second seen is kept."""
    global _second_cache
    seconds, nanos = message.seconds, message.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        result: str = message.ToJsonString()  # raises json_format's own error
        return result
    cached = _second_cache
    if cached[0] != seconds:
        day, second = divmod(seconds, 86400)
        date = _EPOCH + dt.timedelta(days=day)
        hours, rest = divmod(second, 3600)
        minutes, second = divmod(rest, 60)
        text = f"{date.year:04d}-{date.month:02d}-{date.day:02d}T{hours:02d}:{minutes:02d}:{second:02d}"
        cached = _second_cache = (seconds, text)
    if nanos == 0:
        return cached[1] + "Z"
    if nanos % 1_000_000 == 0:
        return f"{cached[1]}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{cached[1]}.{nanos // 1000:06d}Z"
    return f"{cached[1]}.{nanos:09d}Z"
