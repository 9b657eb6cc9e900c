"""Requests with one oversized field, for every text or bytes field reachable from an RPC's input,
enumerated from the service descriptors so that a new RPC or field cannot be missed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

_TEXT = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
MAX_DEPTH = 4


@dataclass
class Oversized:
    method: MethodDescriptor
    field: FieldDescriptor  # the field that holds the big value
    path: str  # where, for a failure message
    request: Message


def _chains(descriptor: Descriptor, seen: tuple[str, ...] = ()) -> Iterator[list[FieldDescriptor]]:
    for field in descriptor.fields:
        if field.type in _TEXT:
            yield [field]
        elif field.type == FieldDescriptor.TYPE_MESSAGE and len(seen) < MAX_DEPTH:
            inner = field.message_type
            if inner.full_name in seen:
                continue
            for chain in _chains(inner, (*seen, descriptor.full_name)):
                yield [field, *chain]


def _big(field: FieldDescriptor, size: int) -> Any:
    return b"x" * size if field.type == FieldDescriptor.TYPE_BYTES else "x" * size


def _build(request_type: Descriptor, chain: list[FieldDescriptor], size: int) -> Message:
    request = message_factory.GetMessageClass(request_type)()
    target: Any = request
    index = 0
    while index < len(chain) - 1:
        field = chain[index]
        container = getattr(target, field.name)
        if field.message_type.GetOptions().map_entry:
            inner = chain[index + 1]
            value_field = field.message_type.fields_by_name["value"]
            if inner.name == "key":
                key = _big(inner, size)
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    container.get_or_create(key)
                else:
                    container[key] = _big(value_field, 1)
                return request
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                target = container["k"]
                index += 2
                continue
            container["k"] = _big(inner, size)
            return request
        target = container.add() if field.is_repeated else container
        index += 1
    last = chain[-1]
    if last.is_repeated:
        getattr(target, last.name).append(_big(last, size))
    else:
        setattr(target, last.name, _big(last, size))
    return request


def oversized_requests(service: ServiceDescriptor, size: int) -> Iterator[Oversized]:
    """One request per (RPC, text or bytes field reachable from its input) with that field `size` long."""
    for method in service.methods:
        for chain in _chains(method.input_type):
            path = ".".join(f.name for f in chain)
            yield Oversized(method, chain[-1], path, _build(method.input_type, chain, size))
