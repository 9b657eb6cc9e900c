"""Size limits on every field of every request, checked once at the edge before a handler runs.

One table for both services: a field is looked up by its full proto name; a field not in the
table takes a default by kind (ids, other text, bytes, repeated items). The walk follows the
descriptors, so a field or RPC added later is bounded without anyone remembering to add a check.
Domain code keeps its own, tighter rules (a workspace name's pattern, 64 labels); this is the
outer bound that keeps megabytes of input out of handlers, logs and error messages.

Error messages quote at most a short prefix of what a client sent (`quote`); `short_message`
caps any status message as a last resort.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from firebox.common import protojson
from firebox.common.errors import InvalidArgument

KiB = 1024
MiB = 1024 * KiB

# Ids and tokens: ours are ~30 characters; clients' (cell ids, tool-call ids) rarely exceed 100.
ID_BYTES = 256
# Any other text field: names, images, paths (PATH_MAX is 4096), reasons, titles.
TEXT_BYTES = 4 * KiB
# Bytes fields stream data (stdin, upload chunks); gRPC's receive limit bounds each message.
BYTES_BYTES = 16 * MiB
# Items in one repeated field or map (argv, env, messages, events).
REPEATED_ITEMS = 4096
# What a status message may quote of the client's input.
QUOTE_CHARS = 64
# Longest status message: gRPC sends it as a header, and clients refuse headers past 8-16 KiB.
MAX_STATUS_CHARS = 1024

FIELD_BYTES: dict[str, int] = {
    # Programs and their environment.
    "firebox.executor.v1.ExecuteRequest.script": 1 * MiB,
    # Linux's own limit on one exec argument (MAX_ARG_STRLEN): a longer one could never run.
    "firebox.executor.v1.ExecuteRequest.argv": 128 * KiB,
    "firebox.executor.v1.ExecuteRequest.EnvEntry.value": 32 * KiB,
    "firebox.executor.v1.CreateWorkspaceRequest.EnvEntry.value": 32 * KiB,
    # A devcontainer.json as editors write it: comments, customizations, long lifecycle commands.
    "firebox.executor.v1.Devcontainer.json": 256 * KiB,
    # A named tool's arguments (file contents may travel in them).
    "google.protobuf.Value.string_value": 1 * MiB,
    # Conversation text: one message's content is capped the same on SendMessage, EditMessage
    # and Generate.
    "firebox.agent.v1.SendMessageRequest.content": 4 * MiB,
    "firebox.agent.v1.EditMessageRequest.content": 4 * MiB,
    "firebox.agent.v1.Message.content": 4 * MiB,
    "firebox.agent.v1.Message.reasoning": 4 * MiB,
    "firebox.agent.v1.ToolCall.arguments": 1 * MiB,
    "firebox.agent.v1.SessionSettings.system_prompt": 256 * KiB,
    "firebox.agent.v1.ResolveApprovalRequest.edited_command": 1 * MiB,
    "firebox.trace.v1.FeedbackEvent.suggested_text": 1 * MiB,
    "firebox.trace.v1.FeedbackEvent.edited_text": 1 * MiB,
}
FIELD_ITEMS: dict[str, int] = {
    "firebox.agent.v1.GenerateRequest.messages": 10_000,
}
_ID_SUFFIXES = ("_id", "_ids", "_token")


def field_limit(field: FieldDescriptor) -> int:
    """The most bytes one value of a string or bytes field may hold."""
    limit = FIELD_BYTES.get(field.full_name)
    if limit is not None:
        return limit
    if field.type == FieldDescriptor.TYPE_BYTES:
        return BYTES_BYTES
    if field.name == "id" or field.name.endswith(_ID_SUFFIXES):
        return ID_BYTES
    return TEXT_BYTES


def items_limit(field: FieldDescriptor) -> int:
    return FIELD_ITEMS.get(field.full_name, REPEATED_ITEMS)


def quote(value: str | bytes, limit: int = QUOTE_CHARS) -> str:
    """`value` for a message: its repr, cut to a short prefix saying how long it was."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} {'bytes' if isinstance(value, bytes) else 'characters'})"


def short_message(message: str) -> str:
    """A status message cut to MAX_STATUS_CHARS (a backstop: messages should quote via `quote`)."""
    if len(message) <= MAX_STATUS_CHARS:
        return message
    return message[: MAX_STATUS_CHARS - 30] + f"… ({len(message)} characters)"


def check_sizes(message: Message) -> None:
    """InvalidArgument naming the first field (as a path) whose value or item count is over its
    limit. Walks only the fields that are set."""
    _check(message, "")


def _check(message: Message, prefix: str) -> None:
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.is_repeated:
            if len(value) > items_limit(field):
                raise InvalidArgument(path, f"at most {items_limit(field)} items, got {len(value)}")
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                _check_map(field, value, path)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                for index, item in enumerate(value):
                    _check(item, f"{path}[{index}].")
            elif field.type in _TEXT_TYPES:
                for index, item in enumerate(value):
                    _check_value(field, item, f"{path}[{index}]")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            _check(value, f"{path}.")
        elif field.type in _TEXT_TYPES:
            _check_value(field, value, path)


def _check_map(field: FieldDescriptor, entries: Any, path: str) -> None:
    key_field = protojson.message_type(field).fields_by_name["key"]
    value_field = protojson.message_type(field).fields_by_name["value"]
    for key in entries:
        if isinstance(key, str | bytes):
            _check_value(key_field, key, f"{path} key")
        item = entries[key]
        where = f"{path}[{quote(key, 32) if isinstance(key, str | bytes) else key}]"
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            _check(item, f"{where}.")
        elif value_field.type in _TEXT_TYPES:
            _check_value(value_field, item, where)


def _check_value(field: FieldDescriptor, value: str | bytes, path: str) -> None:
    limit = field_limit(field)
    # Characters are at most 4 bytes: only a long string needs encoding to be measured.
    if len(value) * (4 if isinstance(value, str) else 1) <= limit:
        return
    size = len(value.encode()) if isinstance(value, str) else len(value)
    if size > limit:
        raise InvalidArgument(path, f"{size} bytes, more than the {limit} allowed")


_TEXT_TYPES = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
