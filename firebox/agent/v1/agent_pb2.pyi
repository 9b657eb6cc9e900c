import datetime

from firebox.executor.v1 import executor_pb2 as _executor_pb2
from firebox.trace.v1 import trace_pb2 as _trace_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]
    ROLE_TOOL: _ClassVar[Role]

class MessageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_STATUS_UNSPECIFIED: _ClassVar[MessageStatus]
    MESSAGE_STATUS_COMPLETE: _ClassVar[MessageStatus]
    MESSAGE_STATUS_STREAMING: _ClassVar[MessageStatus]
    MESSAGE_STATUS_INTERRUPTED: _ClassVar[MessageStatus]

class ApprovalPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_POLICY_UNSPECIFIED: _ClassVar[ApprovalPolicy]
    APPROVAL_POLICY_NEVER: _ClassVar[ApprovalPolicy]
    APPROVAL_POLICY_ON_REQUEST: _ClassVar[ApprovalPolicy]
    APPROVAL_POLICY_ALWAYS: _ClassVar[ApprovalPolicy]
    APPROVAL_POLICY_MODEL_REVIEW: _ClassVar[ApprovalPolicy]

class SandboxMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SANDBOX_MODE_UNSPECIFIED: _ClassVar[SandboxMode]
    SANDBOX_MODE_READ_ONLY: _ClassVar[SandboxMode]
    SANDBOX_MODE_WORKSPACE_WRITE: _ClassVar[SandboxMode]
    SANDBOX_MODE_FULL: _ClassVar[SandboxMode]

class ConflictPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFLICT_POLICY_UNSPECIFIED: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_REJECT: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_ENQUEUE: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_INTERRUPT: _ClassVar[ConflictPolicy]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_QUEUED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_COMPLETED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
    RUN_STATUS_INTERRUPTED: _ClassVar[RunStatus]

class ApprovalDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_DECISION_UNSPECIFIED: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_APPROVE: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_DENY: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_APPROVE_EDITED: _ClassVar[ApprovalDecision]

class EditAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EDIT_ACTION_UNSPECIFIED: _ClassVar[EditAction]
    EDIT_ACTION_SAVE: _ClassVar[EditAction]
    EDIT_ACTION_RESEND: _ClassVar[EditAction]

class ToolSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_SOURCE_UNSPECIFIED: _ClassVar[ToolSource]
    TOOL_SOURCE_BUILTIN: _ClassVar[ToolSource]
    TOOL_SOURCE_SKILL: _ClassVar[ToolSource]
    TOOL_SOURCE_EXECUTOR: _ClassVar[ToolSource]
    TOOL_SOURCE_MCP: _ClassVar[ToolSource]

class McpServerOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MCP_SERVER_ORIGIN_UNSPECIFIED: _ClassVar[McpServerOrigin]
    MCP_SERVER_ORIGIN_OPERATOR: _ClassVar[McpServerOrigin]
    MCP_SERVER_ORIGIN_SESSION: _ClassVar[McpServerOrigin]
ROLE_UNSPECIFIED: Role
ROLE_SYSTEM: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
ROLE_TOOL: Role
MESSAGE_STATUS_UNSPECIFIED: MessageStatus
MESSAGE_STATUS_COMPLETE: MessageStatus
MESSAGE_STATUS_STREAMING: MessageStatus
MESSAGE_STATUS_INTERRUPTED: MessageStatus
APPROVAL_POLICY_UNSPECIFIED: ApprovalPolicy
APPROVAL_POLICY_NEVER: ApprovalPolicy
APPROVAL_POLICY_ON_REQUEST: ApprovalPolicy
APPROVAL_POLICY_ALWAYS: ApprovalPolicy
APPROVAL_POLICY_MODEL_REVIEW: ApprovalPolicy
SANDBOX_MODE_UNSPECIFIED: SandboxMode
SANDBOX_MODE_READ_ONLY: SandboxMode
SANDBOX_MODE_WORKSPACE_WRITE: SandboxMode
SANDBOX_MODE_FULL: SandboxMode
CONFLICT_POLICY_UNSPECIFIED: ConflictPolicy
CONFLICT_POLICY_REJECT: ConflictPolicy
CONFLICT_POLICY_ENQUEUE: ConflictPolicy
CONFLICT_POLICY_INTERRUPT: ConflictPolicy
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_QUEUED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_COMPLETED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CANCELLED: RunStatus
RUN_STATUS_INTERRUPTED: RunStatus
APPROVAL_DECISION_UNSPECIFIED: ApprovalDecision
APPROVAL_DECISION_APPROVE: ApprovalDecision
APPROVAL_DECISION_DENY: ApprovalDecision
APPROVAL_DECISION_APPROVE_EDITED: ApprovalDecision
EDIT_ACTION_UNSPECIFIED: EditAction
EDIT_ACTION_SAVE: EditAction
EDIT_ACTION_RESEND: EditAction
TOOL_SOURCE_UNSPECIFIED: ToolSource
TOOL_SOURCE_BUILTIN: ToolSource
TOOL_SOURCE_SKILL: ToolSource
TOOL_SOURCE_EXECUTOR: ToolSource
TOOL_SOURCE_MCP: ToolSource
MCP_SERVER_ORIGIN_UNSPECIFIED: McpServerOrigin
MCP_SERVER_ORIGIN_OPERATOR: McpServerOrigin
MCP_SERVER_ORIGIN_SESSION: McpServerOrigin

class ToolCall(_message.Message):
    __slots__ = ("id", "name", "arguments")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arguments: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("id", "role", "content", "tool_calls", "tool_call_id", "status", "run_id", "create_time", "reasoning", "compaction", "skill_name", "truncated", "reasoning_signature", "redacted_reasoning", "workspace_snapshot_id", "workspace_snapshot_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_FIELD_NUMBER: _ClassVar[int]
    SKILL_NAME_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    REASONING_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    REDACTED_REASONING_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_SNAPSHOT_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: Role
    content: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    tool_call_id: str
    status: MessageStatus
    run_id: str
    create_time: _timestamp_pb2.Timestamp
    reasoning: str
    compaction: Compaction
    skill_name: str
    truncated: bool
    reasoning_signature: str
    redacted_reasoning: _containers.RepeatedScalarFieldContainer[str]
    workspace_snapshot_id: str
    workspace_snapshot_bytes: int
    def __init__(self, id: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., content: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., tool_call_id: _Optional[str] = ..., status: _Optional[_Union[MessageStatus, str]] = ..., run_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reasoning: _Optional[str] = ..., compaction: _Optional[_Union[Compaction, _Mapping]] = ..., skill_name: _Optional[str] = ..., truncated: _Optional[bool] = ..., reasoning_signature: _Optional[str] = ..., redacted_reasoning: _Optional[_Iterable[str]] = ..., workspace_snapshot_id: _Optional[str] = ..., workspace_snapshot_bytes: _Optional[int] = ...) -> None: ...

class Compaction(_message.Message):
    __slots__ = ("tokens_before", "tokens_after", "kept_user_message_ids")
    TOKENS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_AFTER_FIELD_NUMBER: _ClassVar[int]
    KEPT_USER_MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    tokens_before: int
    tokens_after: int
    kept_user_message_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tokens_before: _Optional[int] = ..., tokens_after: _Optional[int] = ..., kept_user_message_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "total_tokens", "cache_write_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cache_write_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., cached_input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ...) -> None: ...

class SessionSettings(_message.Message):
    __slots__ = ("model", "system_prompt", "workspace_image", "workspace_policy", "max_steps", "approval_policy", "sandbox_mode", "writable_paths", "max_output_tokens", "mcp_servers", "connection", "no_turn_snapshots")
    class McpServersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: McpServer
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[McpServer, _Mapping]] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_MODE_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_PATHS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MCP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    NO_TURN_SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    system_prompt: str
    workspace_image: str
    workspace_policy: _executor_pb2.IsolationPolicy
    max_steps: int
    approval_policy: ApprovalPolicy
    sandbox_mode: SandboxMode
    writable_paths: _containers.RepeatedScalarFieldContainer[str]
    max_output_tokens: int
    mcp_servers: _containers.MessageMap[str, McpServer]
    connection: str
    no_turn_snapshots: bool
    def __init__(self, model: _Optional[str] = ..., system_prompt: _Optional[str] = ..., workspace_image: _Optional[str] = ..., workspace_policy: _Optional[_Union[_executor_pb2.IsolationPolicy, _Mapping]] = ..., max_steps: _Optional[int] = ..., approval_policy: _Optional[_Union[ApprovalPolicy, str]] = ..., sandbox_mode: _Optional[_Union[SandboxMode, str]] = ..., writable_paths: _Optional[_Iterable[str]] = ..., max_output_tokens: _Optional[int] = ..., mcp_servers: _Optional[_Mapping[str, McpServer]] = ..., connection: _Optional[str] = ..., no_turn_snapshots: _Optional[bool] = ...) -> None: ...

class McpServer(_message.Message):
    __slots__ = ("command", "args", "env", "url", "headers")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    command: str
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    url: str
    headers: _containers.ScalarMap[str, str]
    def __init__(self, command: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "title", "settings", "create_time", "update_time", "usage", "workspace_id", "shell_session_id", "active_run_id", "message_count", "labels", "context_tokens", "context_window")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    SHELL_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    settings: SessionSettings
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    usage: Usage
    workspace_id: str
    shell_session_id: str
    active_run_id: str
    message_count: int
    labels: _containers.ScalarMap[str, str]
    context_tokens: int
    context_window: int
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., settings: _Optional[_Union[SessionSettings, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., workspace_id: _Optional[str] = ..., shell_session_id: _Optional[str] = ..., active_run_id: _Optional[str] = ..., message_count: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., context_tokens: _Optional[int] = ..., context_window: _Optional[int] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("title", "settings", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    title: str
    settings: SessionSettings
    labels: _containers.ScalarMap[str, str]
    def __init__(self, title: _Optional[str] = ..., settings: _Optional[_Union[SessionSettings, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id", "include_messages")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    include_messages: bool
    def __init__(self, session_id: _Optional[str] = ..., include_messages: _Optional[bool] = ...) -> None: ...

class GetSessionResponse(_message.Message):
    __slots__ = ("session", "messages")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    session: Session
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class DeleteSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ForkSessionRequest(_message.Message):
    __slots__ = ("session_id", "message_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message_id: str
    def __init__(self, session_id: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class ForkSessionResponse(_message.Message):
    __slots__ = ("session", "message_count")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    session: Session
    message_count: int
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., message_count: _Optional[int] = ...) -> None: ...

class RewindSessionRequest(_message.Message):
    __slots__ = ("session_id", "message_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message_id: str
    def __init__(self, session_id: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class RewindSessionResponse(_message.Message):
    __slots__ = ("session", "removed_message_count")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    REMOVED_MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    session: Session
    removed_message_count: int
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., removed_message_count: _Optional[int] = ...) -> None: ...

class ClearSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ClearSessionResponse(_message.Message):
    __slots__ = ("session", "cleared_message_count", "cleared_run_count", "cancelled_run_id")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CLEARED_MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLEARED_RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    session: Session
    cleared_message_count: int
    cleared_run_count: int
    cancelled_run_id: str
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., cleared_message_count: _Optional[int] = ..., cleared_run_count: _Optional[int] = ..., cancelled_run_id: _Optional[str] = ...) -> None: ...

class UpdateSessionRequest(_message.Message):
    __slots__ = ("session_id", "title", "settings", "update_mask")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    title: str
    settings: SessionSettings
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, session_id: _Optional[str] = ..., title: _Optional[str] = ..., settings: _Optional[_Union[SessionSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("session_id", "content", "on_conflict", "approval_policy", "sandbox_mode", "batch_events", "message_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    ON_CONFLICT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_MODE_FIELD_NUMBER: _ClassVar[int]
    BATCH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    content: str
    on_conflict: ConflictPolicy
    approval_policy: ApprovalPolicy
    sandbox_mode: SandboxMode
    batch_events: bool
    message_id: str
    def __init__(self, session_id: _Optional[str] = ..., content: _Optional[str] = ..., on_conflict: _Optional[_Union[ConflictPolicy, str]] = ..., approval_policy: _Optional[_Union[ApprovalPolicy, str]] = ..., sandbox_mode: _Optional[_Union[SandboxMode, str]] = ..., batch_events: _Optional[bool] = ..., message_id: _Optional[str] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("event", "events")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    event: RunEvent
    events: _containers.RepeatedCompositeFieldContainer[RunEvent]
    def __init__(self, event: _Optional[_Union[RunEvent, _Mapping]] = ..., events: _Optional[_Iterable[_Union[RunEvent, _Mapping]]] = ...) -> None: ...

class StreamRunRequest(_message.Message):
    __slots__ = ("run_id", "after_index", "batch_events")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_INDEX_FIELD_NUMBER: _ClassVar[int]
    BATCH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    after_index: int
    batch_events: bool
    def __init__(self, run_id: _Optional[str] = ..., after_index: _Optional[int] = ..., batch_events: _Optional[bool] = ...) -> None: ...

class StreamRunResponse(_message.Message):
    __slots__ = ("event", "events")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    event: RunEvent
    events: _containers.RepeatedCompositeFieldContainer[RunEvent]
    def __init__(self, event: _Optional[_Union[RunEvent, _Mapping]] = ..., events: _Optional[_Iterable[_Union[RunEvent, _Mapping]]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("session_id", "page_size", "page_token")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    page_size: int
    page_token: str
    def __init__(self, session_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "session_id", "status", "create_time", "end_time", "last_event_index", "usage", "error", "user_message_id", "request_id", "approval_policy", "takeovers")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    TAKEOVERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    status: RunStatus
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    last_event_index: int
    usage: Usage
    error: str
    user_message_id: str
    request_id: str
    approval_policy: ApprovalPolicy
    takeovers: int
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_event_index: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., error: _Optional[str] = ..., user_message_id: _Optional[str] = ..., request_id: _Optional[str] = ..., approval_policy: _Optional[_Union[ApprovalPolicy, str]] = ..., takeovers: _Optional[int] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("index", "run_id", "time", "run_started", "text_delta", "reasoning_delta", "tool_call_started", "tool_output", "tool_call_finished", "usage", "message_completed", "run_completed", "run_failed", "run_cancelled", "approval_requested", "approval_resolved", "context_compacted", "model_retry", "run_resumed")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_STARTED_FIELD_NUMBER: _ClassVar[int]
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    REASONING_DELTA_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_STARTED_FIELD_NUMBER: _ClassVar[int]
    TOOL_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FINISHED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    RUN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    RUN_FAILED_FIELD_NUMBER: _ClassVar[int]
    RUN_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_RESOLVED_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_COMPACTED_FIELD_NUMBER: _ClassVar[int]
    MODEL_RETRY_FIELD_NUMBER: _ClassVar[int]
    RUN_RESUMED_FIELD_NUMBER: _ClassVar[int]
    index: int
    run_id: str
    time: _timestamp_pb2.Timestamp
    run_started: RunStarted
    text_delta: TextDelta
    reasoning_delta: ReasoningDelta
    tool_call_started: ToolCallStarted
    tool_output: ToolOutput
    tool_call_finished: ToolCallFinished
    usage: UsageReported
    message_completed: MessageCompleted
    run_completed: RunCompleted
    run_failed: RunFailed
    run_cancelled: RunCancelled
    approval_requested: ApprovalRequested
    approval_resolved: ApprovalResolved
    context_compacted: ContextCompacted
    model_retry: ModelRetry
    run_resumed: RunResumed
    def __init__(self, index: _Optional[int] = ..., run_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_started: _Optional[_Union[RunStarted, _Mapping]] = ..., text_delta: _Optional[_Union[TextDelta, _Mapping]] = ..., reasoning_delta: _Optional[_Union[ReasoningDelta, _Mapping]] = ..., tool_call_started: _Optional[_Union[ToolCallStarted, _Mapping]] = ..., tool_output: _Optional[_Union[ToolOutput, _Mapping]] = ..., tool_call_finished: _Optional[_Union[ToolCallFinished, _Mapping]] = ..., usage: _Optional[_Union[UsageReported, _Mapping]] = ..., message_completed: _Optional[_Union[MessageCompleted, _Mapping]] = ..., run_completed: _Optional[_Union[RunCompleted, _Mapping]] = ..., run_failed: _Optional[_Union[RunFailed, _Mapping]] = ..., run_cancelled: _Optional[_Union[RunCancelled, _Mapping]] = ..., approval_requested: _Optional[_Union[ApprovalRequested, _Mapping]] = ..., approval_resolved: _Optional[_Union[ApprovalResolved, _Mapping]] = ..., context_compacted: _Optional[_Union[ContextCompacted, _Mapping]] = ..., model_retry: _Optional[_Union[ModelRetry, _Mapping]] = ..., run_resumed: _Optional[_Union[RunResumed, _Mapping]] = ...) -> None: ...

class RunResumed(_message.Message):
    __slots__ = ("reason", "after_index", "interrupted_message_ids", "interrupted_tool_call_ids", "next_step")
    REASON_FIELD_NUMBER: _ClassVar[int]
    AFTER_INDEX_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_TOOL_CALL_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_FIELD_NUMBER: _ClassVar[int]
    reason: str
    after_index: int
    interrupted_message_ids: _containers.RepeatedScalarFieldContainer[str]
    interrupted_tool_call_ids: _containers.RepeatedScalarFieldContainer[str]
    next_step: int
    def __init__(self, reason: _Optional[str] = ..., after_index: _Optional[int] = ..., interrupted_message_ids: _Optional[_Iterable[str]] = ..., interrupted_tool_call_ids: _Optional[_Iterable[str]] = ..., next_step: _Optional[int] = ...) -> None: ...

class ModelRetry(_message.Message):
    __slots__ = ("attempt", "delay_seconds", "reason", "superseded_message_id")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    delay_seconds: float
    reason: str
    superseded_message_id: str
    def __init__(self, attempt: _Optional[int] = ..., delay_seconds: _Optional[float] = ..., reason: _Optional[str] = ..., superseded_message_id: _Optional[str] = ...) -> None: ...

class ApprovalRequested(_message.Message):
    __slots__ = ("tool_call", "command", "reason", "timeout_seconds", "paths", "review_note")
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    REVIEW_NOTE_FIELD_NUMBER: _ClassVar[int]
    tool_call: ToolCall
    command: str
    reason: str
    timeout_seconds: float
    paths: _containers.RepeatedScalarFieldContainer[str]
    review_note: str
    def __init__(self, tool_call: _Optional[_Union[ToolCall, _Mapping]] = ..., command: _Optional[str] = ..., reason: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., paths: _Optional[_Iterable[str]] = ..., review_note: _Optional[str] = ...) -> None: ...

class ApprovalResolved(_message.Message):
    __slots__ = ("tool_call_id", "decision", "reason", "command", "timed_out", "added_writable_paths", "decided_by", "reviewer_model")
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    ADDED_WRITABLE_PATHS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_MODEL_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    decision: ApprovalDecision
    reason: str
    command: str
    timed_out: bool
    added_writable_paths: _containers.RepeatedScalarFieldContainer[str]
    decided_by: _trace_pb2.ApprovalDecider
    reviewer_model: str
    def __init__(self, tool_call_id: _Optional[str] = ..., decision: _Optional[_Union[ApprovalDecision, str]] = ..., reason: _Optional[str] = ..., command: _Optional[str] = ..., timed_out: _Optional[bool] = ..., added_writable_paths: _Optional[_Iterable[str]] = ..., decided_by: _Optional[_Union[_trace_pb2.ApprovalDecider, str]] = ..., reviewer_model: _Optional[str] = ...) -> None: ...

class ContextCompacted(_message.Message):
    __slots__ = ("tokens_before", "tokens_after", "marker_message_id")
    TOKENS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_AFTER_FIELD_NUMBER: _ClassVar[int]
    MARKER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    tokens_before: int
    tokens_after: int
    marker_message_id: str
    def __init__(self, tokens_before: _Optional[int] = ..., tokens_after: _Optional[int] = ..., marker_message_id: _Optional[str] = ...) -> None: ...

class RunStarted(_message.Message):
    __slots__ = ("session_id", "user_message_id", "connection", "model")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_message_id: str
    connection: str
    model: str
    def __init__(self, session_id: _Optional[str] = ..., user_message_id: _Optional[str] = ..., connection: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("message_id", "text")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    text: str
    def __init__(self, message_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ReasoningDelta(_message.Message):
    __slots__ = ("message_id", "text")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    text: str
    def __init__(self, message_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ToolCallStarted(_message.Message):
    __slots__ = ("message_id", "tool_call")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    tool_call: ToolCall
    def __init__(self, message_id: _Optional[str] = ..., tool_call: _Optional[_Union[ToolCall, _Mapping]] = ...) -> None: ...

class ToolOutput(_message.Message):
    __slots__ = ("tool_call_id", "stdout_data", "stderr_data")
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STDOUT_DATA_FIELD_NUMBER: _ClassVar[int]
    STDERR_DATA_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    stdout_data: bytes
    stderr_data: bytes
    def __init__(self, tool_call_id: _Optional[str] = ..., stdout_data: _Optional[bytes] = ..., stderr_data: _Optional[bytes] = ...) -> None: ...

class ToolCallFinished(_message.Message):
    __slots__ = ("tool_call_id", "exit_code", "end_reason", "output_truncated", "result", "execution_id")
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    tool_call_id: str
    exit_code: int
    end_reason: _executor_pb2.EndReason
    output_truncated: bool
    result: str
    execution_id: str
    def __init__(self, tool_call_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., end_reason: _Optional[_Union[_executor_pb2.EndReason, str]] = ..., output_truncated: _Optional[bool] = ..., result: _Optional[str] = ..., execution_id: _Optional[str] = ...) -> None: ...

class UsageReported(_message.Message):
    __slots__ = ("call", "cumulative", "context_tokens", "context_window")
    CALL_FIELD_NUMBER: _ClassVar[int]
    CUMULATIVE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    call: Usage
    cumulative: Usage
    context_tokens: int
    context_window: int
    def __init__(self, call: _Optional[_Union[Usage, _Mapping]] = ..., cumulative: _Optional[_Union[Usage, _Mapping]] = ..., context_tokens: _Optional[int] = ..., context_window: _Optional[int] = ...) -> None: ...

class MessageCompleted(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class RunCompleted(_message.Message):
    __slots__ = ("step_limit_reached", "output_truncated")
    STEP_LIMIT_REACHED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    step_limit_reached: bool
    output_truncated: bool
    def __init__(self, step_limit_reached: _Optional[bool] = ..., output_truncated: _Optional[bool] = ...) -> None: ...

class RunFailed(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class RunCancelled(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("messages", "model", "enable_tools", "context_id", "max_output_tokens", "connection")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENABLE_TOOLS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    model: str
    enable_tools: bool
    context_id: str
    max_output_tokens: int
    connection: str
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., model: _Optional[str] = ..., enable_tools: _Optional[bool] = ..., context_id: _Optional[str] = ..., max_output_tokens: _Optional[int] = ..., connection: _Optional[str] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("text_delta", "reasoning_delta", "tool_call", "usage", "generation_id", "finish_reason")
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    REASONING_DELTA_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    text_delta: TextDelta
    reasoning_delta: ReasoningDelta
    tool_call: ToolCall
    usage: Usage
    generation_id: str
    finish_reason: str
    def __init__(self, text_delta: _Optional[_Union[TextDelta, _Mapping]] = ..., reasoning_delta: _Optional[_Union[ReasoningDelta, _Mapping]] = ..., tool_call: _Optional[_Union[ToolCall, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., generation_id: _Optional[str] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class LogEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_trace_pb2.FeedbackEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_trace_pb2.FeedbackEvent, _Mapping]]] = ...) -> None: ...

class LogEventsResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("version", "default_model", "provider_configured", "executor_target", "dropped_log_records", "executors", "connections")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_TARGET_FIELD_NUMBER: _ClassVar[int]
    DROPPED_LOG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    version: str
    default_model: str
    provider_configured: bool
    executor_target: str
    dropped_log_records: int
    executors: _containers.RepeatedCompositeFieldContainer[ExecutorReplica]
    connections: _containers.RepeatedCompositeFieldContainer[ProviderConnection]
    def __init__(self, version: _Optional[str] = ..., default_model: _Optional[str] = ..., provider_configured: _Optional[bool] = ..., executor_target: _Optional[str] = ..., dropped_log_records: _Optional[int] = ..., executors: _Optional[_Iterable[_Union[ExecutorReplica, _Mapping]]] = ..., connections: _Optional[_Iterable[_Union[ProviderConnection, _Mapping]]] = ...) -> None: ...

class ProviderConnection(_message.Message):
    __slots__ = ("name", "wire_format", "default_model", "context_window", "configured")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WIRE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    name: str
    wire_format: str
    default_model: str
    context_window: int
    configured: bool
    def __init__(self, name: _Optional[str] = ..., wire_format: _Optional[str] = ..., default_model: _Optional[str] = ..., context_window: _Optional[int] = ..., configured: _Optional[bool] = ...) -> None: ...

class ExecutorReplica(_message.Message):
    __slots__ = ("address", "instance_id", "reachable", "workspace_count")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    address: str
    instance_id: str
    reachable: bool
    workspace_count: int
    def __init__(self, address: _Optional[str] = ..., instance_id: _Optional[str] = ..., reachable: _Optional[bool] = ..., workspace_count: _Optional[int] = ...) -> None: ...

class ResolveApprovalRequest(_message.Message):
    __slots__ = ("run_id", "tool_call_id", "decision", "reason", "edited_command", "always_allow_paths")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EDITED_COMMAND_FIELD_NUMBER: _ClassVar[int]
    ALWAYS_ALLOW_PATHS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    tool_call_id: str
    decision: ApprovalDecision
    reason: str
    edited_command: str
    always_allow_paths: bool
    def __init__(self, run_id: _Optional[str] = ..., tool_call_id: _Optional[str] = ..., decision: _Optional[_Union[ApprovalDecision, str]] = ..., reason: _Optional[str] = ..., edited_command: _Optional[str] = ..., always_allow_paths: _Optional[bool] = ...) -> None: ...

class ResolveApprovalResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CompactSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CompactSessionResponse(_message.Message):
    __slots__ = ("started", "summary_delta", "compacted")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_DELTA_FIELD_NUMBER: _ClassVar[int]
    COMPACTED_FIELD_NUMBER: _ClassVar[int]
    started: CompactionStarted
    summary_delta: TextDelta
    compacted: ContextCompacted
    def __init__(self, started: _Optional[_Union[CompactionStarted, _Mapping]] = ..., summary_delta: _Optional[_Union[TextDelta, _Mapping]] = ..., compacted: _Optional[_Union[ContextCompacted, _Mapping]] = ...) -> None: ...

class CompactionStarted(_message.Message):
    __slots__ = ("tokens_before",)
    TOKENS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    tokens_before: int
    def __init__(self, tokens_before: _Optional[int] = ...) -> None: ...

class EditMessageRequest(_message.Message):
    __slots__ = ("session_id", "message_id", "content", "action", "batch_events", "request_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BATCH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message_id: str
    content: str
    action: EditAction
    batch_events: bool
    request_id: str
    def __init__(self, session_id: _Optional[str] = ..., message_id: _Optional[str] = ..., content: _Optional[str] = ..., action: _Optional[_Union[EditAction, str]] = ..., batch_events: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class EditMessageResponse(_message.Message):
    __slots__ = ("message", "event", "events")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    message: Message
    event: RunEvent
    events: _containers.RepeatedCompositeFieldContainer[RunEvent]
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ..., event: _Optional[_Union[RunEvent, _Mapping]] = ..., events: _Optional[_Iterable[_Union[RunEvent, _Mapping]]] = ...) -> None: ...

class ListToolsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListToolsResponse(_message.Message):
    __slots__ = ("tools", "mcp_servers")
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    MCP_SERVERS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[ToolInfo]
    mcp_servers: _containers.RepeatedCompositeFieldContainer[McpServerStatus]
    def __init__(self, tools: _Optional[_Iterable[_Union[ToolInfo, _Mapping]]] = ..., mcp_servers: _Optional[_Iterable[_Union[McpServerStatus, _Mapping]]] = ...) -> None: ...

class ToolInfo(_message.Message):
    __slots__ = ("name", "description", "parameters_json", "source", "mcp_server", "mcp_tool")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MCP_SERVER_FIELD_NUMBER: _ClassVar[int]
    MCP_TOOL_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters_json: str
    source: ToolSource
    mcp_server: str
    mcp_tool: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters_json: _Optional[str] = ..., source: _Optional[_Union[ToolSource, str]] = ..., mcp_server: _Optional[str] = ..., mcp_tool: _Optional[str] = ...) -> None: ...

class McpServerStatus(_message.Message):
    __slots__ = ("name", "origin", "ready", "error", "tool_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TOOL_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    origin: McpServerOrigin
    ready: bool
    error: str
    tool_count: int
    def __init__(self, name: _Optional[str] = ..., origin: _Optional[_Union[McpServerOrigin, str]] = ..., ready: _Optional[bool] = ..., error: _Optional[str] = ..., tool_count: _Optional[int] = ...) -> None: ...
