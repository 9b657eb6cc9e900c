/**
 * @firebox/client: Firebox's agent and executor from TypeScript, over gRPC (HTTP/2).
 *
 *     import { createAgentClient, createExecutorClient } from "@firebox/client";
 *
 * The generated messages and service descriptors are exported too (`agentv1`, `executorv1`,
 * `tracev1`), and `client.raw` is the generated Connect client for calls this layer does not wrap.
 */
export { AgentClient, createAgentClient, isTerminal, RunStream } from "./agent.js";
export type { ResumeOptions, RunStreamOptions, SendMessageOptions } from "./agent.js";
export { connect } from "./connection.js";
export type { CallOptions, Connection, ConnectionOptions, Pem, TlsOptions } from "./connection.js";
export { Code, FireboxError } from "./errors.js";
export { Execution } from "./execution.js";
export type { Collected, ExecuteOptions, Exit, Output } from "./execution.js";
export { createExecutorClient, ExecutorClient } from "./executor.js";
export type { CreateWorkspaceOptions, WriteFileOptions, Workspaces } from "./executor.js";
export * as agentv1 from "./gen/firebox/agent/v1/agent_pb.js";
export * as executorv1 from "./gen/firebox/executor/v1/executor_pb.js";
export * as tracev1 from "./gen/firebox/trace/v1/trace_pb.js";
export { ApprovalPolicy, ConflictPolicy, RunStatus, SandboxMode } from "./gen/firebox/agent/v1/agent_pb.js";
export type { Message, Run, RunEvent, Session } from "./gen/firebox/agent/v1/agent_pb.js";
export { EndReason, FileType, SessionStatus, StopSignal, WorkspaceStatus } from "./gen/firebox/executor/v1/executor_pb.js";
export type { FileInfo, Workspace } from "./gen/firebox/executor/v1/executor_pb.js";
