import datetime

from firebox.executor.v1 import executor_pb2 as _executor_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeedbackKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_KIND_UNSPECIFIED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_SUGGESTION_SHOWN: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_SUGGESTION_ACCEPTED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_SUGGESTION_EDITED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_SUGGESTION_REJECTED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_CELL_EXECUTED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_SESSION_STARTED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_SESSION_ENDED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_APPROVAL_APPROVED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_APPROVAL_DENIED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_APPROVAL_EDITED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_SESSION_CLEARED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_SESSION_FORKED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_SESSION_REWOUND: _ClassVar[FeedbackKind]

class ApprovalDecider(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_DECIDER_UNSPECIFIED: _ClassVar[ApprovalDecider]
    APPROVAL_DECIDER_PERSON: _ClassVar[ApprovalDecider]
    APPROVAL_DECIDER_MODEL: _ClassVar[ApprovalDecider]
    APPROVAL_DECIDER_TIMEOUT: _ClassVar[ApprovalDecider]
FEEDBACK_KIND_UNSPECIFIED: FeedbackKind
FEEDBACK_KIND_SUGGESTION_SHOWN: FeedbackKind
FEEDBACK_KIND_SUGGESTION_ACCEPTED: FeedbackKind
FEEDBACK_KIND_SUGGESTION_EDITED: FeedbackKind
FEEDBACK_KIND_SUGGESTION_REJECTED: FeedbackKind
FEEDBACK_KIND_CELL_EXECUTED: FeedbackKind
FEEDBACK_KIND_SESSION_STARTED: FeedbackKind
FEEDBACK_KIND_SESSION_ENDED: FeedbackKind
FEEDBACK_KIND_APPROVAL_APPROVED: FeedbackKind
FEEDBACK_KIND_APPROVAL_DENIED: FeedbackKind
FEEDBACK_KIND_APPROVAL_EDITED: FeedbackKind
FEEDBACK_KIND_SESSION_CLEARED: FeedbackKind
FEEDBACK_KIND_SESSION_FORKED: FeedbackKind
FEEDBACK_KIND_SESSION_REWOUND: FeedbackKind
APPROVAL_DECIDER_UNSPECIFIED: ApprovalDecider
APPROVAL_DECIDER_PERSON: ApprovalDecider
APPROVAL_DECIDER_MODEL: ApprovalDecider
APPROVAL_DECIDER_TIMEOUT: ApprovalDecider

class ExecutionRecord(_message.Message):
    __slots__ = ("request", "execution_id", "workspace_id", "session_id", "backend", "isolation", "start_time", "end_time", "exit_code", "end_reason", "stdout_bytes", "stderr_bytes", "output_truncated", "stdout_head", "stdout_tail", "stderr_head", "stderr_tail", "input_bytes", "executor_version", "action", "redacted_values", "parent_snapshot_id")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STDOUT_HEAD_FIELD_NUMBER: _ClassVar[int]
    STDOUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    STDERR_HEAD_FIELD_NUMBER: _ClassVar[int]
    STDERR_TAIL_FIELD_NUMBER: _ClassVar[int]
    INPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REDACTED_VALUES_FIELD_NUMBER: _ClassVar[int]
    PARENT_SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    request: _executor_pb2.ExecuteRequest
    execution_id: str
    workspace_id: str
    session_id: str
    backend: _executor_pb2.Backend
    isolation: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    exit_code: int
    end_reason: _executor_pb2.EndReason
    stdout_bytes: int
    stderr_bytes: int
    output_truncated: bool
    stdout_head: str
    stdout_tail: str
    stderr_head: str
    stderr_tail: str
    input_bytes: int
    executor_version: str
    action: _executor_pb2.Action
    redacted_values: int
    parent_snapshot_id: str
    def __init__(self, request: _Optional[_Union[_executor_pb2.ExecuteRequest, _Mapping]] = ..., execution_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., session_id: _Optional[str] = ..., backend: _Optional[_Union[_executor_pb2.Backend, str]] = ..., isolation: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., end_reason: _Optional[_Union[_executor_pb2.EndReason, str]] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., output_truncated: _Optional[bool] = ..., stdout_head: _Optional[str] = ..., stdout_tail: _Optional[str] = ..., stderr_head: _Optional[str] = ..., stderr_tail: _Optional[str] = ..., input_bytes: _Optional[int] = ..., executor_version: _Optional[str] = ..., action: _Optional[_Union[_executor_pb2.Action, _Mapping]] = ..., redacted_values: _Optional[int] = ..., parent_snapshot_id: _Optional[str] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content", "tool_calls", "tool_call_id")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ChatToolCall]
    tool_call_id: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ChatToolCall, _Mapping]]] = ..., tool_call_id: _Optional[str] = ...) -> None: ...

class ChatToolCall(_message.Message):
    __slots__ = ("id", "name", "arguments")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arguments: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ...) -> None: ...

class ChatTool(_message.Message):
    __slots__ = ("name", "description", "parameters")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[str] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cache_write_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cache_write_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., cached_input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ...) -> None: ...

class GenerationRecord(_message.Message):
    __slots__ = ("generation_id", "session_id", "run_id", "context_id", "model", "messages", "completion", "tool_calls", "usage", "start_time", "latency", "time_to_first_token", "error", "step", "tools", "redacted_values", "finish_reason", "cut_short", "connection")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    REDACTED_VALUES_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    CUT_SHORT_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    generation_id: str
    session_id: str
    run_id: str
    context_id: str
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    completion: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ChatToolCall]
    usage: TokenUsage
    start_time: _timestamp_pb2.Timestamp
    latency: _duration_pb2.Duration
    time_to_first_token: _duration_pb2.Duration
    error: str
    step: int
    tools: _containers.RepeatedCompositeFieldContainer[ChatTool]
    redacted_values: int
    finish_reason: str
    cut_short: bool
    connection: str
    def __init__(self, generation_id: _Optional[str] = ..., session_id: _Optional[str] = ..., run_id: _Optional[str] = ..., context_id: _Optional[str] = ..., model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., completion: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ChatToolCall, _Mapping]]] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error: _Optional[str] = ..., step: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[ChatTool, _Mapping]]] = ..., redacted_values: _Optional[int] = ..., finish_reason: _Optional[str] = ..., cut_short: _Optional[bool] = ..., connection: _Optional[str] = ...) -> None: ...

class FeedbackEvent(_message.Message):
    __slots__ = ("kind", "known_id", "session_id", "context_id", "generation_id", "tool_call_id", "run_id", "suggested_text", "edited_text", "reason", "client_time", "paths", "writable_paths_added", "decided_by", "review_verdict", "review_reason", "reviewer_model", "parent_session_id", "message_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    KNOWN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_TEXT_FIELD_NUMBER: _ClassVar[int]
    EDITED_TEXT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TIME_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_PATHS_ADDED_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    REVIEW_VERDICT_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REASON_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_MODEL_FIELD_NUMBER: _ClassVar[int]
    PARENT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    kind: FeedbackKind
    known_id: str
    session_id: str
    context_id: str
    generation_id: str
    tool_call_id: str
    run_id: str
    suggested_text: str
    edited_text: str
    reason: str
    client_time: _timestamp_pb2.Timestamp
    paths: _containers.RepeatedScalarFieldContainer[str]
    writable_paths_added: _containers.RepeatedScalarFieldContainer[str]
    decided_by: ApprovalDecider
    review_verdict: str
    review_reason: str
    reviewer_model: str
    parent_session_id: str
    message_id: str
    def __init__(self, kind: _Optional[_Union[FeedbackKind, str]] = ..., known_id: _Optional[str] = ..., session_id: _Optional[str] = ..., context_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., tool_call_id: _Optional[str] = ..., run_id: _Optional[str] = ..., suggested_text: _Optional[str] = ..., edited_text: _Optional[str] = ..., reason: _Optional[str] = ..., client_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paths: _Optional[_Iterable[str]] = ..., writable_paths_added: _Optional[_Iterable[str]] = ..., decided_by: _Optional[_Union[ApprovalDecider, str]] = ..., review_verdict: _Optional[str] = ..., review_reason: _Optional[str] = ..., reviewer_model: _Optional[str] = ..., parent_session_id: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class FeedbackRecord(_message.Message):
    __slots__ = ("feedback_id", "event", "server_time", "source", "redacted_values")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REDACTED_VALUES_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    event: FeedbackEvent
    server_time: _timestamp_pb2.Timestamp
    source: str
    redacted_values: int
    def __init__(self, feedback_id: _Optional[str] = ..., event: _Optional[_Union[FeedbackEvent, _Mapping]] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., redacted_values: _Optional[int] = ...) -> None: ...

class ToolCallRecord(_message.Message):
    __slots__ = ("tool_call_id", "run_id", "session_id", "generation_id", "name", "source", "server", "tool", "arguments", "result", "is_error", "start_time", "duration", "result_bytes", "result_truncated")
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    RESULT_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESULT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    run_id: str
    session_id: str
    generation_id: str
    name: str
    source: str
    server: str
    tool: str
    arguments: str
    result: str
    is_error: bool
    start_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    result_bytes: int
    result_truncated: bool
    def __init__(self, tool_call_id: _Optional[str] = ..., run_id: _Optional[str] = ..., session_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., name: _Optional[str] = ..., source: _Optional[str] = ..., server: _Optional[str] = ..., tool: _Optional[str] = ..., arguments: _Optional[str] = ..., result: _Optional[str] = ..., is_error: _Optional[bool] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., result_bytes: _Optional[int] = ..., result_truncated: _Optional[bool] = ...) -> None: ...
