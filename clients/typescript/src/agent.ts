import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { linkedAbort, type LinkedAbort } from "./channel.js";
import { ServiceClient, type Workspaces } from "./client.js";
import type { CallOptions, Connection, ConnectionOptions } from "./connection.js";
import { Code, FireboxError } from "./errors.js";
import { Execution, type ExecuteOptions } from "./execution.js";
import {
  AgentService,
  ApprovalDecision,
  type ApprovalPolicy,
  type ClearSessionResponse,
  type ConflictPolicy,
  type GetServerInfoResponse,
  type ListRunsResponse,
  type ListSessionsResponse,
  type Message,
  type Run,
  type RunEvent,
  type SandboxMode,
  type Session,
  type SessionSettingsSchema,
} from "./gen/firebox/agent/v1/agent_pb.js";

/** Codes a dropped or reset connection shows up as; a run is resumed after them, never after others. */
const TRANSPORT_CODES = new Set([Code.Unavailable, Code.Aborted, Code.Internal, Code.Unknown]);

export interface ResumeOptions {
  /** Reconnect (StreamRun after the last index seen) when the connection drops. Default true. */
  resume?: boolean;
  /** Reconnections in a row without a new event before giving up. Default 8. */
  maxReconnects?: number;
  /** Called before each reconnection, e.g. to show "reconnecting…". */
  onReconnect?: (info: { runId: string; afterIndex: bigint; attempt: number; error: FireboxError }) => void;
}

export type RunStreamOptions = CallOptions & ResumeOptions;

type Batch = { event?: RunEvent; events: RunEvent[] };

/** The event that ends a run, if this is one. */
export function isTerminal(event: RunEvent): boolean {
  const kind = event.event.case;
  return kind === "runCompleted" || kind === "runFailed" || kind === "runCancelled";
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Start iterating now, so the call is made at once and an early failure is never unhandled. */
function eager<T>(iterable: AsyncIterable<T>): AsyncIterator<T> {
  const iterator = iterable[Symbol.asyncIterator]();
  let first: Promise<IteratorResult<T>> | undefined = iterator.next();
  first.catch(() => {});
  return {
    next: () => {
      if (first) {
        const pending = first;
        first = undefined;
        return pending;
      }
      return iterator.next();
    },
  };
}

/**
 * A run's events, in index order, each exactly once. When the connection drops mid-run, the
 * stream reconnects with StreamRun after the last index it delivered, so the events go on with no
 * gap and no repeat. The run itself goes on on the server whether or not anyone listens.
 *
 *     for await (const event of agent.sendMessage({ sessionId, content: "hi" })) {
 *       if (event.event.case === "textDelta") process.stdout.write(event.event.value.text);
 *     }
 */
export class RunStream implements AsyncIterable<RunEvent> {
  /** The run's id, once its first event arrived (or as given to streamRun). */
  runId: string | undefined;
  /** Index of the last event delivered. */
  lastIndex: bigint;
  /** How many times the stream reconnected. */
  reconnects = 0;
  private readonly abort: LinkedAbort;
  private readonly deadline: number | undefined;
  private readonly first: AsyncIterator<Batch>;
  private readonly runIdKnown: Promise<string>;
  private resolveRunId!: (runId: string) => void;
  private iterated = false;

  constructor(
    private readonly agent: AgentClient,
    start: (options: CallOptions) => AsyncIterable<Batch>,
    runId: string | undefined,
    afterIndex: bigint,
    private readonly options: RunStreamOptions,
  ) {
    this.runId = runId;
    this.lastIndex = afterIndex;
    this.abort = linkedAbort(options.signal);
    this.deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    this.runIdKnown = new Promise((resolve) => (this.resolveRunId = resolve));
    if (runId) this.resolveRunId(runId);
    this.first = eager(start(this.callOptions()));
  }

  private callOptions(): CallOptions {
    const remaining = this.deadline === undefined ? undefined : Math.max(1, this.deadline - Date.now());
    return { signal: this.abort.signal, timeoutMs: remaining, headers: this.options.headers };
  }

  /** Cancel the run on the server (CancelRun); its stream then ends with a runCancelled event. */
  async cancel(callOptions?: CallOptions): Promise<Run> {
    return this.agent.cancelRun(await this.runIdKnown, callOptions);
  }

  /** Stop listening (the run goes on on the server; resume it with agent.streamRun). */
  close(): void {
    this.abort.abort(new FireboxError(Code.Canceled, "the client stopped listening"));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<RunEvent> {
    if (this.iterated) throw new TypeError("a RunStream can be iterated only once");
    this.iterated = true;
    const resume = this.options.resume ?? true;
    const maxReconnects = this.options.maxReconnects ?? 8;
    let source: AsyncIterator<Batch> = this.first;
    let failures = 0;
    try {
      for (;;) {
        try {
          for (;;) {
            const next = await source.next();
            if (next.done) return; // the server ends the stream when the run has ended
            const batch = next.value;
            for (const event of batch.events.length ? batch.events : batch.event ? [batch.event] : []) {
              if (event.index <= this.lastIndex) continue; // replayed after a reconnect: seen already
              this.lastIndex = event.index;
              if (!this.runId) {
                this.runId = event.runId;
                this.resolveRunId(event.runId);
              }
              failures = 0;
              yield event;
            }
          }
        } catch (reason) {
          const error = FireboxError.from(reason, this.abort.signal);
          const canResume =
            resume &&
            this.runId !== undefined &&
            TRANSPORT_CODES.has(error.code) &&
            !this.abort.signal.aborted &&
            failures < maxReconnects &&
            (this.deadline === undefined || Date.now() < this.deadline);
          if (!canResume) throw error;
          failures += 1;
          this.reconnects += 1;
          this.options.onReconnect?.({ runId: this.runId!, afterIndex: this.lastIndex, attempt: failures, error });
          // Backoff with jitter: 100 ms, 200 ms, ... up to 3 s.
          const delay = Math.min(3000, 100 * 2 ** (failures - 1)) * (0.5 + Math.random() / 2);
          await sleep(delay, this.abort.signal).catch((why) => {
            throw FireboxError.from(why, this.abort.signal);
          });
          source = eager(
            this.agent.raw.streamRun(
              { runId: this.runId!, afterIndex: this.lastIndex, batchEvents: true },
              this.callOptions(),
            ),
          );
        }
      }
    } finally {
      // Leaving the loop early ends the call (not the run).
      if (!this.abort.signal.aborted) this.abort.abort();
    }
  }

  /** Read the run to its end; returns every event (bounded by what the run produced). */
  async collect(): Promise<RunEvent[]> {
    const events: RunEvent[] = [];
    for await (const event of this) events.push(event);
    return events;
  }
}

export interface SendMessageOptions {
  sessionId: string;
  content: string;
  /** What to do when the session already has an active run: REJECT (default), ENQUEUE, INTERRUPT. */
  onConflict?: ConflictPolicy;
  approvalPolicy?: ApprovalPolicy;
  sandboxMode?: SandboxMode;
}

/**
 * A client of firebox.agent.v1.AgentService.
 *
 *     const agent = createAgentClient({ address: "127.0.0.1:50052", token });
 *     const session = await agent.sessions.create({ title: "chat" });
 *     for await (const event of agent.sendMessage({ sessionId: session.id, content: "hi" })) ...
 */
export class AgentClient extends ServiceClient {
  /** The generated Connect client, for anything this layer does not wrap (approvals' details,
   * compaction, EditMessage, Generate, LogEvents). */
  readonly raw: Client<typeof AgentService>;

  constructor(options: ConnectionOptions | Connection) {
    super(options);
    this.raw = createClient(AgentService, this.connection.transport);
  }

  /** Conversations. */
  readonly sessions = {
    create: async (
      options: {
        title?: string;
        settings?: MessageInitShape<typeof SessionSettingsSchema>;
        labels?: Record<string, string>;
      } = {},
      callOptions?: CallOptions,
    ): Promise<Session> => (await this.unary(this.raw.createSession, options, callOptions)).session!,
    get: async (
      sessionId: string,
      options: { includeMessages?: boolean } = {},
      callOptions?: CallOptions,
    ): Promise<{ session: Session; messages: Message[] }> => {
      const response = await this.unary(
        this.raw.getSession,
        { sessionId, includeMessages: options.includeMessages ?? false },
        callOptions,
      );
      return { session: response.session!, messages: response.messages };
    },
    /** One page, newest first. */
    list: (
      options: { pageSize?: number; pageToken?: string } = {},
      callOptions?: CallOptions,
    ): Promise<ListSessionsResponse> => this.unary(this.raw.listSessions, options, callOptions),
    /** Every session, newest first, fetched a page at a time. */
    all: (callOptions?: CallOptions): AsyncGenerator<Session> => this.allSessions(callOptions),
    /** "New chat in the same workspace": cancels the active run, removes every message and run. */
    clear: async (sessionId: string, callOptions?: CallOptions): Promise<ClearSessionResponse> =>
      this.unary(this.raw.clearSession, { sessionId }, callOptions),
    delete: async (sessionId: string, callOptions?: CallOptions): Promise<void> => {
      await this.unary(this.raw.deleteSession, { sessionId }, callOptions);
    },
  };

  private async *allSessions(callOptions?: CallOptions): AsyncGenerator<Session> {
    let pageToken = "";
    do {
      const page = await this.sessions.list({ pageToken }, callOptions);
      yield* page.sessions;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Workspaces, forwarded to the executor that owns them. */
  readonly workspaces: Workspaces = this.workspaceCalls({
    createWorkspace: (request, options) => this.raw.createWorkspace(request, options),
    getWorkspace: (request, options) => this.raw.getWorkspace(request, options),
    listWorkspaces: (request, options) => this.raw.listWorkspaces(request, options),
    deleteWorkspace: (request, options) => this.raw.deleteWorkspace(request, options),
  });

  /** Add a user message and stream the run it starts. `timeoutMs` bounds the whole stream. */
  sendMessage(message: SendMessageOptions, options: RunStreamOptions = {}): RunStream {
    return new RunStream(
      this,
      (callOptions) => this.raw.sendMessage({ ...message, batchEvents: true }, callOptions),
      undefined,
      0n,
      options,
    );
  }

  /** A run's events after `afterIndex` (0: from the first), then live until the run ends. */
  streamRun(request: { runId: string; afterIndex?: number | bigint }, options: RunStreamOptions = {}): RunStream {
    const afterIndex = BigInt(request.afterIndex ?? 0);
    return new RunStream(
      this,
      (callOptions) => this.raw.streamRun({ runId: request.runId, afterIndex, batchEvents: true }, callOptions),
      request.runId,
      afterIndex,
      options,
    );
  }

  /** Stop a run; cancelling a finished run is not an error. */
  async cancelRun(runId: string, callOptions?: CallOptions): Promise<Run> {
    return (await this.unary(this.raw.cancelRun, { runId }, callOptions)).run!;
  }

  async getRun(runId: string, callOptions?: CallOptions): Promise<Run> {
    return (await this.unary(this.raw.getRun, { runId }, callOptions)).run!;
  }

  /** A session's runs, newest first, one page. */
  listRuns(
    request: { sessionId: string; pageSize?: number; pageToken?: string },
    callOptions?: CallOptions,
  ): Promise<ListRunsResponse> {
    return this.unary(this.raw.listRuns, request, callOptions);
  }

  /** Answer an approvalRequested event: approve, deny with a reason, or run an edited command. */
  async resolveApproval(
    request: { runId: string; toolCallId: string } & (
      | { decision: "approve" }
      | { decision: "deny"; reason?: string }
      | { decision: "approve-edited"; editedCommand: string }
    ),
    callOptions?: CallOptions,
  ): Promise<void> {
    const decision = {
      approve: ApprovalDecision.APPROVE,
      deny: ApprovalDecision.DENY,
      "approve-edited": ApprovalDecision.APPROVE_EDITED,
    }[request.decision];
    await this.unary(
      this.raw.resolveApproval,
      {
        runId: request.runId,
        toolCallId: request.toolCallId,
        decision,
        reason: "reason" in request ? (request.reason ?? "") : "",
        editedCommand: "editedCommand" in request ? request.editedCommand : "",
      },
      callOptions,
    );
  }

  /** Run a program through the agent (its Execute forwards to the executor); see Execution. */
  execute(options: ExecuteOptions, callOptions: CallOptions = {}): Execution {
    return new Execution((requests, opts) => this.raw.execute(requests, opts), options, callOptions);
  }

  serverInfo(callOptions?: CallOptions): Promise<GetServerInfoResponse> {
    return this.unary(this.raw.getServerInfo, {}, callOptions);
  }
}

/** A client of the agent at `options.address`. */
export function createAgentClient(options: ConnectionOptions): AgentClient {
  return new AgentClient(options);
}
