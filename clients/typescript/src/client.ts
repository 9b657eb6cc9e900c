import { connect, unary, type CallOptions, type Connection, type ConnectionOptions } from "./connection.js";
import { call } from "./errors.js";
import type { CreateWorkspaceOptions } from "./executor.js";
import type { Workspace } from "./gen/firebox/executor/v1/executor_pb.js";

/** Workspaces: the same calls on the executor and, forwarded, on the agent. */
export interface Workspaces {
  create(options?: CreateWorkspaceOptions, callOptions?: CallOptions): Promise<Workspace>;
  get(workspaceId: string, callOptions?: CallOptions): Promise<Workspace>;
  list(callOptions?: CallOptions): Promise<Workspace[]>;
  delete(workspaceId: string, callOptions?: CallOptions): Promise<void>;
}

/** The workspace RPCs both services have, with the executor's messages. */
interface WorkspaceRpcs {
  createWorkspace(request: CreateWorkspaceOptions, options?: CallOptions): Promise<{ workspace?: Workspace }>;
  getWorkspace(request: { workspaceId: string }, options?: CallOptions): Promise<{ workspace?: Workspace }>;
  listWorkspaces(request: object, options?: CallOptions): Promise<{ workspaces: Workspace[] }>;
  deleteWorkspace(request: { workspaceId: string }, options?: CallOptions): Promise<unknown>;
}

/** What the executor and agent clients share: the connection and how a unary call is made. */
export abstract class ServiceClient {
  protected readonly connection: Connection;

  constructor(options: ConnectionOptions | Connection) {
    this.connection = "transport" in options ? options : connect(options);
  }

  /** A unary call with the connection's default deadline; its failure is a FireboxError. */
  protected unary<Request, Response>(
    method: (request: Request, options: CallOptions) => Promise<Response>,
    request: Request,
    callOptions?: CallOptions,
  ): Promise<Response> {
    return call(method(request, unary(this.connection, callOptions)), callOptions?.signal);
  }

  protected workspaceCalls(rpcs: WorkspaceRpcs): Workspaces {
    return {
      create: async (options = {}, callOptions) =>
        (await this.unary(rpcs.createWorkspace, options, callOptions)).workspace!,
      get: async (workspaceId, callOptions) =>
        (await this.unary(rpcs.getWorkspace, { workspaceId }, callOptions)).workspace!,
      list: async (callOptions) => (await this.unary(rpcs.listWorkspaces, {}, callOptions)).workspaces,
      delete: async (workspaceId, callOptions) => {
        await this.unary(rpcs.deleteWorkspace, { workspaceId }, callOptions);
      },
    };
  }
}
