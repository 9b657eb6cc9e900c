import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkspaceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKSPACE_STATUS_UNSPECIFIED: _ClassVar[WorkspaceStatus]
    WORKSPACE_STATUS_CREATED: _ClassVar[WorkspaceStatus]
    WORKSPACE_STATUS_RESTARTING: _ClassVar[WorkspaceStatus]
    WORKSPACE_STATUS_RUNNING: _ClassVar[WorkspaceStatus]
    WORKSPACE_STATUS_REMOVING: _ClassVar[WorkspaceStatus]
    WORKSPACE_STATUS_PAUSED: _ClassVar[WorkspaceStatus]
    WORKSPACE_STATUS_EXITED: _ClassVar[WorkspaceStatus]
    WORKSPACE_STATUS_DEAD: _ClassVar[WorkspaceStatus]

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_UNSPECIFIED: _ClassVar[Backend]
    BACKEND_DOCKER: _ClassVar[Backend]
    BACKEND_BWRAP: _ClassVar[Backend]

class SessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATUS_UNSPECIFIED: _ClassVar[SessionStatus]
    SESSION_STATUS_IDLE: _ClassVar[SessionStatus]
    SESSION_STATUS_BUSY: _ClassVar[SessionStatus]
    SESSION_STATUS_ENDED: _ClassVar[SessionStatus]

class StopSignal(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_SIGNAL_UNSPECIFIED: _ClassVar[StopSignal]
    STOP_SIGNAL_INTERRUPT: _ClassVar[StopSignal]
    STOP_SIGNAL_KILL: _ClassVar[StopSignal]

class EndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    END_REASON_UNSPECIFIED: _ClassVar[EndReason]
    END_REASON_EXITED: _ClassVar[EndReason]
    END_REASON_SIGNALED: _ClassVar[EndReason]
    END_REASON_TIMED_OUT: _ClassVar[EndReason]
    END_REASON_STOPPED: _ClassVar[EndReason]
    END_REASON_CANCELLED: _ClassVar[EndReason]
    END_REASON_OUT_OF_MEMORY: _ClassVar[EndReason]
    END_REASON_SHUTDOWN: _ClassVar[EndReason]

class ExecutionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATE_UNSPECIFIED: _ClassVar[ExecutionState]
    EXECUTION_STATE_RUNNING: _ClassVar[ExecutionState]
    EXECUTION_STATE_FINISHED: _ClassVar[ExecutionState]

class FileType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_TYPE_UNSPECIFIED: _ClassVar[FileType]
    FILE_TYPE_REGULAR: _ClassVar[FileType]
    FILE_TYPE_DIRECTORY: _ClassVar[FileType]
    FILE_TYPE_SYMLINK: _ClassVar[FileType]
    FILE_TYPE_OTHER: _ClassVar[FileType]
WORKSPACE_STATUS_UNSPECIFIED: WorkspaceStatus
WORKSPACE_STATUS_CREATED: WorkspaceStatus
WORKSPACE_STATUS_RESTARTING: WorkspaceStatus
WORKSPACE_STATUS_RUNNING: WorkspaceStatus
WORKSPACE_STATUS_REMOVING: WorkspaceStatus
WORKSPACE_STATUS_PAUSED: WorkspaceStatus
WORKSPACE_STATUS_EXITED: WorkspaceStatus
WORKSPACE_STATUS_DEAD: WorkspaceStatus
BACKEND_UNSPECIFIED: Backend
BACKEND_DOCKER: Backend
BACKEND_BWRAP: Backend
SESSION_STATUS_UNSPECIFIED: SessionStatus
SESSION_STATUS_IDLE: SessionStatus
SESSION_STATUS_BUSY: SessionStatus
SESSION_STATUS_ENDED: SessionStatus
STOP_SIGNAL_UNSPECIFIED: StopSignal
STOP_SIGNAL_INTERRUPT: StopSignal
STOP_SIGNAL_KILL: StopSignal
END_REASON_UNSPECIFIED: EndReason
END_REASON_EXITED: EndReason
END_REASON_SIGNALED: EndReason
END_REASON_TIMED_OUT: EndReason
END_REASON_STOPPED: EndReason
END_REASON_CANCELLED: EndReason
END_REASON_OUT_OF_MEMORY: EndReason
END_REASON_SHUTDOWN: EndReason
EXECUTION_STATE_UNSPECIFIED: ExecutionState
EXECUTION_STATE_RUNNING: ExecutionState
EXECUTION_STATE_FINISHED: ExecutionState
FILE_TYPE_UNSPECIFIED: FileType
FILE_TYPE_REGULAR: FileType
FILE_TYPE_DIRECTORY: FileType
FILE_TYPE_SYMLINK: FileType
FILE_TYPE_OTHER: FileType

class IsolationPolicy(_message.Message):
    __slots__ = ("network", "read_only", "user", "memory_bytes", "pids_limit", "cpu_millis", "capabilities", "no_new_privileges", "read_only_root", "tmp_bytes", "writable_paths", "disk_bytes")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CPU_MILLIS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    NO_NEW_PRIVILEGES_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_ROOT_FIELD_NUMBER: _ClassVar[int]
    TMP_BYTES_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_PATHS_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    network: bool
    read_only: bool
    user: str
    memory_bytes: int
    pids_limit: int
    cpu_millis: int
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    no_new_privileges: bool
    read_only_root: bool
    tmp_bytes: int
    writable_paths: _containers.RepeatedScalarFieldContainer[str]
    disk_bytes: int
    def __init__(self, network: _Optional[bool] = ..., read_only: _Optional[bool] = ..., user: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., pids_limit: _Optional[int] = ..., cpu_millis: _Optional[int] = ..., capabilities: _Optional[_Iterable[str]] = ..., no_new_privileges: _Optional[bool] = ..., read_only_root: _Optional[bool] = ..., tmp_bytes: _Optional[int] = ..., writable_paths: _Optional[_Iterable[str]] = ..., disk_bytes: _Optional[int] = ...) -> None: ...

class Workspace(_message.Message):
    __slots__ = ("id", "name", "image", "status", "backend", "policy", "isolation", "create_time", "labels", "env", "session_count", "parent_snapshot_id", "idle_timeout", "ttl", "stop_time", "delete_time", "stopped_reason")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    SESSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    PARENT_SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    STOP_TIME_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    STOPPED_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    image: str
    status: WorkspaceStatus
    backend: Backend
    policy: IsolationPolicy
    isolation: str
    create_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    env: _containers.ScalarMap[str, str]
    session_count: int
    parent_snapshot_id: str
    idle_timeout: _duration_pb2.Duration
    ttl: _duration_pb2.Duration
    stop_time: _timestamp_pb2.Timestamp
    delete_time: _timestamp_pb2.Timestamp
    stopped_reason: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., image: _Optional[str] = ..., status: _Optional[_Union[WorkspaceStatus, str]] = ..., backend: _Optional[_Union[Backend, str]] = ..., policy: _Optional[_Union[IsolationPolicy, _Mapping]] = ..., isolation: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., env: _Optional[_Mapping[str, str]] = ..., session_count: _Optional[int] = ..., parent_snapshot_id: _Optional[str] = ..., idle_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., stop_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stopped_reason: _Optional[str] = ...) -> None: ...

class CreateWorkspaceRequest(_message.Message):
    __slots__ = ("name", "image", "policy", "env", "labels", "snapshot_id", "idle_timeout", "ttl", "devcontainer")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    DEVCONTAINER_FIELD_NUMBER: _ClassVar[int]
    name: str
    image: str
    policy: IsolationPolicy
    env: _containers.ScalarMap[str, str]
    labels: _containers.ScalarMap[str, str]
    snapshot_id: str
    idle_timeout: _duration_pb2.Duration
    ttl: _duration_pb2.Duration
    devcontainer: Devcontainer
    def __init__(self, name: _Optional[str] = ..., image: _Optional[str] = ..., policy: _Optional[_Union[IsolationPolicy, _Mapping]] = ..., env: _Optional[_Mapping[str, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., snapshot_id: _Optional[str] = ..., idle_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., devcontainer: _Optional[_Union[Devcontainer, _Mapping]] = ...) -> None: ...

class Devcontainer(_message.Message):
    __slots__ = ("json", "context", "dockerfile")
    JSON_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_FIELD_NUMBER: _ClassVar[int]
    json: str
    context: bytes
    dockerfile: str
    def __init__(self, json: _Optional[str] = ..., context: _Optional[bytes] = ..., dockerfile: _Optional[str] = ...) -> None: ...

class SetupCommand(_message.Message):
    __slots__ = ("name", "exit_code", "stdout", "stderr", "truncated")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    name: str
    exit_code: int
    stdout: str
    stderr: str
    truncated: bool
    def __init__(self, name: _Optional[str] = ..., exit_code: _Optional[int] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., truncated: _Optional[bool] = ...) -> None: ...

class CreateWorkspaceResponse(_message.Message):
    __slots__ = ("workspace", "setup")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    SETUP_FIELD_NUMBER: _ClassVar[int]
    workspace: Workspace
    setup: _containers.RepeatedCompositeFieldContainer[SetupCommand]
    def __init__(self, workspace: _Optional[_Union[Workspace, _Mapping]] = ..., setup: _Optional[_Iterable[_Union[SetupCommand, _Mapping]]] = ...) -> None: ...

class CreateWorkspaceWithProgressResponse(_message.Message):
    __slots__ = ("output", "done")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    output: SetupOutput
    done: CreateWorkspaceResponse
    def __init__(self, output: _Optional[_Union[SetupOutput, _Mapping]] = ..., done: _Optional[_Union[CreateWorkspaceResponse, _Mapping]] = ...) -> None: ...

class SetupOutput(_message.Message):
    __slots__ = ("name", "stdout", "stderr", "skipped_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    stdout: bytes
    stderr: bytes
    skipped_bytes: int
    def __init__(self, name: _Optional[str] = ..., stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., skipped_bytes: _Optional[int] = ...) -> None: ...

class GetWorkspaceRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class GetWorkspaceResponse(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: Workspace
    def __init__(self, workspace: _Optional[_Union[Workspace, _Mapping]] = ...) -> None: ...

class ListWorkspacesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkspacesResponse(_message.Message):
    __slots__ = ("workspaces",)
    WORKSPACES_FIELD_NUMBER: _ClassVar[int]
    workspaces: _containers.RepeatedCompositeFieldContainer[Workspace]
    def __init__(self, workspaces: _Optional[_Iterable[_Union[Workspace, _Mapping]]] = ...) -> None: ...

class StartWorkspaceRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class StartWorkspaceResponse(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: Workspace
    def __init__(self, workspace: _Optional[_Union[Workspace, _Mapping]] = ...) -> None: ...

class StopWorkspaceRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class StopWorkspaceResponse(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: Workspace
    def __init__(self, workspace: _Optional[_Union[Workspace, _Mapping]] = ...) -> None: ...

class DeleteWorkspaceRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class DeleteWorkspaceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetWritablePathsRequest(_message.Message):
    __slots__ = ("workspace_id", "writable_paths")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_PATHS_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    writable_paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workspace_id: _Optional[str] = ..., writable_paths: _Optional[_Iterable[str]] = ...) -> None: ...

class SetWritablePathsResponse(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: Workspace
    def __init__(self, workspace: _Optional[_Union[Workspace, _Mapping]] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("id", "name", "workspace_id", "image", "create_time", "policy", "env", "files_bytes")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    FILES_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    workspace_id: str
    image: str
    create_time: _timestamp_pb2.Timestamp
    policy: IsolationPolicy
    env: _containers.ScalarMap[str, str]
    files_bytes: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., workspace_id: _Optional[str] = ..., image: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy: _Optional[_Union[IsolationPolicy, _Mapping]] = ..., env: _Optional[_Mapping[str, str]] = ..., files_bytes: _Optional[int] = ...) -> None: ...

class CreateSnapshotRequest(_message.Message):
    __slots__ = ("workspace_id", "name")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    name: str
    def __init__(self, workspace_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreateSnapshotResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[Snapshot]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[Snapshot, _Mapping]]] = ...) -> None: ...

class DeleteSnapshotRequest(_message.Message):
    __slots__ = ("snapshot_id",)
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    def __init__(self, snapshot_id: _Optional[str] = ...) -> None: ...

class DeleteSnapshotResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseWorkspaceRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class PauseWorkspaceResponse(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: Workspace
    def __init__(self, workspace: _Optional[_Union[Workspace, _Mapping]] = ...) -> None: ...

class ResumeWorkspaceRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class ResumeWorkspaceResponse(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: Workspace
    def __init__(self, workspace: _Optional[_Union[Workspace, _Mapping]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "workspace_id", "status", "create_time", "current_execution_id", "command_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    workspace_id: str
    status: SessionStatus
    create_time: _timestamp_pb2.Timestamp
    current_execution_id: str
    command_count: int
    def __init__(self, id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., status: _Optional[_Union[SessionStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_execution_id: _Optional[str] = ..., command_count: _Optional[int] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("workspace_id", "session_id")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    session_id: str
    def __init__(self, workspace_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("workspace_id", "session_id", "script", "argv", "directory", "env", "timeout", "known_id", "known_name", "tool_call_id", "run_id", "agent_session_id", "input_data", "close_input", "stop", "resume_workspace", "tty", "winsize", "background")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    KNOWN_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_NAME_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSE_INPUT_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    RESUME_WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    WINSIZE_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    session_id: str
    script: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    directory: str
    env: _containers.ScalarMap[str, str]
    timeout: _duration_pb2.Duration
    known_id: str
    known_name: str
    tool_call_id: str
    run_id: str
    agent_session_id: str
    input_data: bytes
    close_input: bool
    stop: StopSignal
    resume_workspace: bool
    tty: bool
    winsize: Winsize
    background: bool
    def __init__(self, workspace_id: _Optional[str] = ..., session_id: _Optional[str] = ..., script: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., directory: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., known_id: _Optional[str] = ..., known_name: _Optional[str] = ..., tool_call_id: _Optional[str] = ..., run_id: _Optional[str] = ..., agent_session_id: _Optional[str] = ..., input_data: _Optional[bytes] = ..., close_input: _Optional[bool] = ..., stop: _Optional[_Union[StopSignal, str]] = ..., resume_workspace: _Optional[bool] = ..., tty: _Optional[bool] = ..., winsize: _Optional[_Union[Winsize, _Mapping]] = ..., background: _Optional[bool] = ...) -> None: ...

class Winsize(_message.Message):
    __slots__ = ("rows", "cols")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("execution_id", "pid", "stdout_data", "stderr_data", "exit_code", "end_reason", "output_truncated", "session_ended", "message", "duration", "output_offset", "output_skipped")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STDOUT_DATA_FIELD_NUMBER: _ClassVar[int]
    STDERR_DATA_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    SESSION_ENDED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    pid: int
    stdout_data: bytes
    stderr_data: bytes
    exit_code: _wrappers_pb2.Int32Value
    end_reason: EndReason
    output_truncated: bool
    session_ended: bool
    message: str
    duration: _duration_pb2.Duration
    output_offset: int
    output_skipped: int
    def __init__(self, execution_id: _Optional[str] = ..., pid: _Optional[int] = ..., stdout_data: _Optional[bytes] = ..., stderr_data: _Optional[bytes] = ..., exit_code: _Optional[_Union[_wrappers_pb2.Int32Value, _Mapping]] = ..., end_reason: _Optional[_Union[EndReason, str]] = ..., output_truncated: _Optional[bool] = ..., session_ended: _Optional[bool] = ..., message: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., output_offset: _Optional[int] = ..., output_skipped: _Optional[int] = ...) -> None: ...

class ExecutionInfo(_message.Message):
    __slots__ = ("execution_id", "workspace_id", "session_id", "command", "started", "pid", "state", "tty", "output_bytes", "dropped_bytes", "attached", "finished", "exit_code", "end_reason", "message")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BYTES_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    workspace_id: str
    session_id: str
    command: str
    started: _timestamp_pb2.Timestamp
    pid: int
    state: ExecutionState
    tty: bool
    output_bytes: int
    dropped_bytes: int
    attached: int
    finished: _timestamp_pb2.Timestamp
    exit_code: _wrappers_pb2.Int32Value
    end_reason: EndReason
    message: str
    def __init__(self, execution_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., session_id: _Optional[str] = ..., command: _Optional[str] = ..., started: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pid: _Optional[int] = ..., state: _Optional[_Union[ExecutionState, str]] = ..., tty: _Optional[bool] = ..., output_bytes: _Optional[int] = ..., dropped_bytes: _Optional[int] = ..., attached: _Optional[int] = ..., finished: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[_Union[_wrappers_pb2.Int32Value, _Mapping]] = ..., end_reason: _Optional[_Union[EndReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[ExecutionInfo]
    def __init__(self, executions: _Optional[_Iterable[_Union[ExecutionInfo, _Mapping]]] = ...) -> None: ...

class AttachExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "after_offset", "read_only", "input_data", "close_input", "stop", "winsize")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_OFFSET_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    INPUT_DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSE_INPUT_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    WINSIZE_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    after_offset: int
    read_only: bool
    input_data: bytes
    close_input: bool
    stop: StopSignal
    winsize: Winsize
    def __init__(self, execution_id: _Optional[str] = ..., after_offset: _Optional[int] = ..., read_only: _Optional[bool] = ..., input_data: _Optional[bytes] = ..., close_input: _Optional[bool] = ..., stop: _Optional[_Union[StopSignal, str]] = ..., winsize: _Optional[_Union[Winsize, _Mapping]] = ...) -> None: ...

class AttachExecutionResponse(_message.Message):
    __slots__ = ("response",)
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    response: ExecuteResponse
    def __init__(self, response: _Optional[_Union[ExecuteResponse, _Mapping]] = ...) -> None: ...

class StopExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "signal")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    signal: StopSignal
    def __init__(self, execution_id: _Optional[str] = ..., signal: _Optional[_Union[StopSignal, str]] = ...) -> None: ...

class StopExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: ExecutionInfo
    def __init__(self, execution: _Optional[_Union[ExecutionInfo, _Mapping]] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("version", "backend", "default_image", "default_policy", "dropped_log_records", "workspace_count", "session_count", "instance_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_POLICY_FIELD_NUMBER: _ClassVar[int]
    DROPPED_LOG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SESSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    version: str
    backend: Backend
    default_image: str
    default_policy: IsolationPolicy
    dropped_log_records: int
    workspace_count: int
    session_count: int
    instance_id: str
    def __init__(self, version: _Optional[str] = ..., backend: _Optional[_Union[Backend, str]] = ..., default_image: _Optional[str] = ..., default_policy: _Optional[_Union[IsolationPolicy, _Mapping]] = ..., dropped_log_records: _Optional[int] = ..., workspace_count: _Optional[int] = ..., session_count: _Optional[int] = ..., instance_id: _Optional[str] = ...) -> None: ...

class Tool(_message.Message):
    __slots__ = ("name", "description", "args_schema_json", "command", "read_only", "timeout")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ARGS_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    args_schema_json: str
    command: _containers.RepeatedScalarFieldContainer[str]
    read_only: bool
    timeout: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., args_schema_json: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., read_only: _Optional[bool] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ListToolsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListToolsResponse(_message.Message):
    __slots__ = ("tools",)
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    def __init__(self, tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("tool_name", "args", "work_dir")
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    WORK_DIR_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    args: _struct_pb2.Struct
    work_dir: str
    def __init__(self, tool_name: _Optional[str] = ..., args: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., work_dir: _Optional[str] = ...) -> None: ...

class StepRequest(_message.Message):
    __slots__ = ("workspace_id", "action", "timeout", "tool_call_id", "run_id", "agent_session_id")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    action: Action
    timeout: _duration_pb2.Duration
    tool_call_id: str
    run_id: str
    agent_session_id: str
    def __init__(self, workspace_id: _Optional[str] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., tool_call_id: _Optional[str] = ..., run_id: _Optional[str] = ..., agent_session_id: _Optional[str] = ...) -> None: ...

class ToolOutput(_message.Message):
    __slots__ = ("exit_status", "stdout", "stderr", "truncated", "end_reason", "message", "duration")
    EXIT_STATUS_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    exit_status: int
    stdout: str
    stderr: str
    truncated: bool
    end_reason: EndReason
    message: str
    duration: _duration_pb2.Duration
    def __init__(self, exit_status: _Optional[int] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., truncated: _Optional[bool] = ..., end_reason: _Optional[_Union[EndReason, str]] = ..., message: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class EnvironmentInfo(_message.Message):
    __slots__ = ("info", "workspace_status")
    INFO_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_STATUS_FIELD_NUMBER: _ClassVar[int]
    info: str
    workspace_status: WorkspaceStatus
    def __init__(self, info: _Optional[str] = ..., workspace_status: _Optional[_Union[WorkspaceStatus, str]] = ...) -> None: ...

class Observation(_message.Message):
    __slots__ = ("tool_output", "environment_info")
    TOOL_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_INFO_FIELD_NUMBER: _ClassVar[int]
    tool_output: ToolOutput
    environment_info: EnvironmentInfo
    def __init__(self, tool_output: _Optional[_Union[ToolOutput, _Mapping]] = ..., environment_info: _Optional[_Union[EnvironmentInfo, _Mapping]] = ...) -> None: ...

class StepResponse(_message.Message):
    __slots__ = ("observation", "execution_id")
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    observation: Observation
    execution_id: str
    def __init__(self, observation: _Optional[_Union[Observation, _Mapping]] = ..., execution_id: _Optional[str] = ...) -> None: ...

class FileInfo(_message.Message):
    __slots__ = ("path", "name", "type", "size", "mode", "modify_time", "link_target")
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    LINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    path: str
    name: str
    type: FileType
    size: int
    mode: int
    modify_time: _timestamp_pb2.Timestamp
    link_target: str
    def __init__(self, path: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[FileType, str]] = ..., size: _Optional[int] = ..., mode: _Optional[int] = ..., modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., link_target: _Optional[str] = ...) -> None: ...

class UploadFileRequest(_message.Message):
    __slots__ = ("workspace_id", "path", "mode", "overwrite", "create_parents", "data")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    CREATE_PARENTS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    path: str
    mode: int
    overwrite: bool
    create_parents: bool
    data: bytes
    def __init__(self, workspace_id: _Optional[str] = ..., path: _Optional[str] = ..., mode: _Optional[int] = ..., overwrite: _Optional[bool] = ..., create_parents: _Optional[bool] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadFileResponse(_message.Message):
    __slots__ = ("file", "sha256")
    FILE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    file: FileInfo
    sha256: str
    def __init__(self, file: _Optional[_Union[FileInfo, _Mapping]] = ..., sha256: _Optional[str] = ...) -> None: ...

class DownloadFileRequest(_message.Message):
    __slots__ = ("workspace_id", "path")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    path: str
    def __init__(self, workspace_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class DownloadFileResponse(_message.Message):
    __slots__ = ("file", "data")
    FILE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    file: FileInfo
    data: bytes
    def __init__(self, file: _Optional[_Union[FileInfo, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("workspace_id", "path", "recursive", "max_entries")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    path: str
    recursive: bool
    max_entries: int
    def __init__(self, workspace_id: _Optional[str] = ..., path: _Optional[str] = ..., recursive: _Optional[bool] = ..., max_entries: _Optional[int] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("entries", "truncated")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[FileInfo]
    truncated: bool
    def __init__(self, entries: _Optional[_Iterable[_Union[FileInfo, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class StatFileRequest(_message.Message):
    __slots__ = ("workspace_id", "path")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    path: str
    def __init__(self, workspace_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class StatFileResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: FileInfo
    def __init__(self, file: _Optional[_Union[FileInfo, _Mapping]] = ...) -> None: ...

class ForwardPortRequest(_message.Message):
    __slots__ = ("workspace_id", "port", "data", "close_write")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSE_WRITE_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    port: int
    data: bytes
    close_write: bool
    def __init__(self, workspace_id: _Optional[str] = ..., port: _Optional[int] = ..., data: _Optional[bytes] = ..., close_write: _Optional[bool] = ...) -> None: ...

class ForwardPortResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...
