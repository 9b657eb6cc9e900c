"""Proto messages as JSON-ready dicts, the same as `json_format.MessageToDict(message,
always_print_fields_with_no_presence=True)` and several times faster.

json_format walks every field's descriptor and checks its options on every call; here that walk
happens once per message type and leaves a list of (json key, field, converter). The training log's
writer turns every record into a line with it (`trainlog_writer.record_to_line`), which made JSON
conversion most of the log's cost. Anything unusual — the well-known types other than Timestamp,
Duration and the wrappers (Struct, Value, Any, FieldMask...) — is handed to json_format itself, so
the output never differs; tests/unit/common/test_protojson.py checks that on generated messages.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

_Converter = Callable[[Any], Any]
# Per message type: (json key, field name, presence?, kind, converter), kind as below.
_SINGLE, _REPEATED, _MAP = 0, 1, 2
_PLANS: dict[str, list[tuple[str, str, bool, int, _Converter | None]]] = {}

_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_WRAPPERS = {
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


def to_dict(message: Message) -> dict[str, Any]:
    """`message` as json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    gives it."""
    try:
        result = _convert(message)
    except ValueError as exc:  # e.g. a Timestamp out of range, refused as json_format refuses it
        raise json_format.SerializeToJsonError(f"Failed to serialize: {exc}.") from exc
    if not isinstance(result, dict):  # a well-known type at the top: json_format's own form
        return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return result


def _convert(message: Message) -> Any:
    descriptor = message.DESCRIPTOR
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        if descriptor.full_name.startswith("google.protobuf."):
            return _well_known(message)
        plan = _PLANS[descriptor.full_name] = _plan(descriptor)
    out: dict[str, Any] = {}
    for key, name, presence, kind, convert in plan:
        if presence and not message.HasField(name):
            continue
        value = getattr(message, name)
        if kind == _SINGLE:
            out[key] = convert(value) if convert is not None else value
        elif kind == _REPEATED:
            out[key] = [convert(v) for v in value] if convert is not None else list(value)
        else:
            out[key] = {_map_key(k): (convert(v) if convert is not None else v) for k, v in value.items()}
    return out


def _well_known(message: Message) -> Any:
    name = message.DESCRIPTOR.full_name
    if name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return message.ToJsonString()  # type: ignore[attr-defined]
    if name in _WRAPPERS:
        field = message.DESCRIPTOR.fields_by_name["value"]
        convert = _scalar_converter(field)
        value = message.value  # type: ignore[attr-defined]
        return convert(value) if convert is not None else value
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _map_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _plan(descriptor: Descriptor) -> list[tuple[str, str, bool, int, _Converter | None]]:
    plan = []
    for field in descriptor.fields:
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            plan.append((field.json_name, field.name, False, _MAP, _converter(value_field)))
        elif field.is_repeated:
            plan.append((field.json_name, field.name, False, _REPEATED, _converter(field)))
        else:
            plan.append((field.json_name, field.name, field.has_presence, _SINGLE, _converter(field)))
    return plan


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
        and field.is_repeated
    )


def _converter(field: FieldDescriptor) -> _Converter | None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _convert
    return _scalar_converter(field)


def _scalar_converter(field: FieldDescriptor) -> _Converter | None:
    """None when the Python value is already the JSON value (strings, bools, 32-bit integers)."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
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
