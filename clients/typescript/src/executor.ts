import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { pieces, toBytes } from "./bytes.js";
import { ServiceClient, type Workspaces } from "./client.js";
import type { CallOptions, Connection, ConnectionOptions } from "./connection.js";
import { call, Code, FireboxError, stream } from "./errors.js";
import { duration, Execution, type ExecuteOptions } from "./execution.js";
import {
  ExecutorService,
  type FileInfo,
  type GetServerInfoResponse,
  type IsolationPolicy,
  type IsolationPolicySchema,
  type ListFilesResponse,
  type Session,
  type StepResponse,
  type Tool,
  type Workspace,
} from "./gen/firebox/executor/v1/executor_pb.js";

export interface CreateWorkspaceOptions {
  name?: string;
  /** Empty: the server's default image. */
  image?: string;
  /** Overrides of the server's default isolation policy. */
  policy?: MessageInitShape<typeof IsolationPolicySchema>;
  env?: Record<string, string>;
  labels?: Record<string, string>;
}

export interface WriteFileOptions {
  /** Permission bits, e.g. 0o755; default 0o644. */
  mode?: number;
  /** Replace an existing file (else ALREADY_EXISTS). */
  overwrite?: boolean;
  /** Create missing parent directories. */
  createParents?: boolean;
}

async function* chunks(data: string | Uint8Array | AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (typeof data === "string" || data instanceof Uint8Array) {
    yield* pieces(toBytes(data));
    return;
  }
  for await (const piece of data) yield* pieces(piece);
}

/**
 * A client of firebox.executor.v1.ExecutorService.
 *
 *     const executor = createExecutorClient({ address: "127.0.0.1:50051", token });
 *     const ws = await executor.workspaces.create({ name: "demo" });
 *     const { stdout, exit } = await executor.execute({ workspaceId: ws.id, script: "ls" }).collect();
 */
export class ExecutorClient extends ServiceClient {
  /** The generated Connect client, for anything this layer does not wrap. */
  readonly raw: Client<typeof ExecutorService>;

  constructor(options: ConnectionOptions | Connection) {
    super(options);
    this.raw = createClient(ExecutorService, this.connection.transport);
  }

  readonly workspaces: Workspaces & {
    start(workspaceId: string, callOptions?: CallOptions): Promise<Workspace>;
    stop(workspaceId: string, callOptions?: CallOptions): Promise<Workspace>;
  } = {
    ...this.workspaceCalls({
      createWorkspace: (request, options) => this.raw.createWorkspace(request, options),
      getWorkspace: (request, options) => this.raw.getWorkspace(request, options),
      listWorkspaces: (request, options) => this.raw.listWorkspaces(request, options),
      deleteWorkspace: (request, options) => this.raw.deleteWorkspace(request, options),
    }),
    start: async (workspaceId, callOptions) =>
      (await this.unary(this.raw.startWorkspace, { workspaceId }, callOptions)).workspace!,
    stop: async (workspaceId, callOptions) =>
      (await this.unary(this.raw.stopWorkspace, { workspaceId }, callOptions)).workspace!,
  };

  /** Shell sessions: long-lived shells whose cd, variables and functions survive between commands. */
  readonly sessions = {
    create: async (
      workspaceId: string,
      options: { sessionId?: string } = {},
      callOptions?: CallOptions,
    ): Promise<Session> =>
      (await this.unary(this.raw.createSession, { workspaceId, sessionId: options.sessionId ?? "" }, callOptions))
        .session!,
    /** The sessions of one workspace, or of all when `workspaceId` is omitted. */
    list: async (workspaceId = "", callOptions?: CallOptions): Promise<Session[]> =>
      (await this.unary(this.raw.listSessions, { workspaceId }, callOptions)).sessions,
    close: async (sessionId: string, callOptions?: CallOptions): Promise<void> => {
      await this.unary(this.raw.closeSession, { sessionId }, callOptions);
    },
  };

  /** Files under /workspace. */
  readonly files = {
    /** Write a file; it appears whole when the upload ends, or not at all. */
    write: async (
      workspaceId: string,
      path: string,
      data: string | Uint8Array | AsyncIterable<Uint8Array>,
      options: WriteFileOptions = {},
      callOptions?: CallOptions,
    ): Promise<{ file: FileInfo; sha256: string }> => {
      async function* requests() {
        yield {
          workspaceId,
          path,
          mode: options.mode ?? 0,
          overwrite: options.overwrite ?? false,
          createParents: options.createParents ?? false,
        };
        for await (const piece of chunks(data)) yield { data: piece };
      }
      const response = await call(this.raw.uploadFile(requests(), callOptions), callOptions?.signal);
      return { file: response.file!, sha256: response.sha256 };
    },
    /** A file's bytes as they arrive. `info` (its FileInfo, from the first message) settles once
     * `data` is being read; it rejects as `data` does if the call fails first. */
    readStream: (workspaceId: string, path: string, callOptions?: CallOptions) => {
      const responses = stream(this.raw.downloadFile({ workspaceId, path }, callOptions), callOptions?.signal);
      let resolveInfo!: (info: FileInfo) => void;
      let rejectInfo!: (error: unknown) => void;
      const info = new Promise<FileInfo>((resolve, reject) => {
        resolveInfo = resolve;
        rejectInfo = reject;
      });
      info.catch(() => {}); // whoever awaits it sees the failure; nobody has to
      async function* data(): AsyncGenerator<Uint8Array> {
        try {
          for await (const response of responses) {
            if (response.file) resolveInfo(response.file);
            if (response.data.length) yield response.data;
          }
        } catch (error) {
          rejectInfo(error);
          throw error;
        }
      }
      return { info, data: data() };
    },
    /** A whole file; refused with RESOURCE_EXHAUSTED past `maxBytes` (default 64 MiB). */
    read: async (
      workspaceId: string,
      path: string,
      options: { maxBytes?: number } = {},
      callOptions?: CallOptions,
    ): Promise<Uint8Array> => {
      const maxBytes = options.maxBytes ?? 64 << 20;
      const abort = new AbortController();
      const signal = callOptions?.signal ? AbortSignal.any([callOptions.signal, abort.signal]) : abort.signal;
      const { data } = this.files.readStream(workspaceId, path, { ...callOptions, signal });
      const pieces: Uint8Array[] = [];
      let size = 0;
      for await (const piece of data) {
        size += piece.length;
        if (size > maxBytes) {
          abort.abort();
          throw new FireboxError(Code.ResourceExhausted, `${path} is larger than maxBytes (${maxBytes})`);
        }
        pieces.push(piece);
      }
      return Buffer.concat(pieces);
    },
    /** A directory's entries, sorted by path (or the one file a path names). */
    list: async (
      workspaceId: string,
      path = "",
      options: { recursive?: boolean; maxEntries?: number } = {},
      callOptions?: CallOptions,
    ): Promise<ListFilesResponse> =>
      this.unary(
        this.raw.listFiles,
        { workspaceId, path, recursive: options.recursive ?? false, maxEntries: options.maxEntries ?? 0 },
        callOptions,
      ),
    stat: async (workspaceId: string, path: string, callOptions?: CallOptions): Promise<FileInfo> =>
      (await this.unary(this.raw.statFile, { workspaceId, path }, callOptions)).file!,
  };

  /** The operator's named tools, and Step to run one. */
  readonly tools = {
    list: async (callOptions?: CallOptions): Promise<Tool[]> =>
      (await this.unary(this.raw.listTools, {}, callOptions)).tools,
    step: async (
      request: { workspaceId: string; toolName: string; args?: JsonObject; workDir?: string; timeoutSeconds?: number },
      callOptions?: CallOptions,
    ): Promise<StepResponse> =>
      // No default deadline: a tool runs as long as its own timeout allows.
      call(
        this.raw.step(
          {
            workspaceId: request.workspaceId,
            action: { toolName: request.toolName, args: request.args ?? {}, workDir: request.workDir ?? "" },
            timeout: duration(request.timeoutSeconds),
          },
          callOptions,
        ),
        callOptions?.signal,
      ),
  };

  /** Run a program; see Execution. `callOptions.signal` cancels it, `timeoutMs` is the call's deadline. */
  execute(options: ExecuteOptions, callOptions: CallOptions = {}): Execution {
    return new Execution((requests, opts) => this.raw.execute(requests, opts), options, callOptions);
  }

  serverInfo(callOptions?: CallOptions): Promise<GetServerInfoResponse> {
    return this.unary(this.raw.getServerInfo, {}, callOptions);
  }
}

export type { IsolationPolicy, Workspaces };

/** A client of the executor at `options.address`. */
export function createExecutorClient(options: ConnectionOptions): ExecutorClient {
  return new ExecutorClient(options);
}
