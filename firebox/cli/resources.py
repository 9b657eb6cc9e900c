"""`firebox workspaces`, `sessions`, `runs` and `status`: list, show, create and delete things."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

from firebox.agent.v1 import agent_pb2 as ag
from firebox.cli import approvals, chat, exit_codes, output
from firebox.cli.app import App, CliError, describe, exit_code_for
from firebox.cli.approvals import Approver
from firebox.cli.events import JsonRenderer, RunRenderer
from firebox.cli.exec_cmd import parse_env
from firebox.client import FireboxClient, FireboxRpcError, run_events
from firebox.client import devcontainer as devcontainer_folder
from firebox.client.aio import Service
from firebox.executor.v1 import executor_pb2 as ex

Parents = list[argparse.ArgumentParser]


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print proto-JSON")


def _status_word(status: int) -> str:
    return output.enum_word(ex.WorkspaceStatus.Name(status), "WORKSPACE_STATUS_")


def _backend_word(backend: int) -> str:
    return output.enum_word(ex.Backend.Name(backend), "BACKEND_")


def _workspace(client: FireboxClient, wanted: str, via: Service = "executor") -> ex.Workspace:
    workspace = client.find_workspace(wanted, via=via)
    if workspace is None:
        where = "the agent's executors" if via == "agent" else "the executor"
        raise CliError(
            f"no workspace with id or name {wanted!r} on {where} at {client.target(via)}; "
            f"list them with `firebox workspaces list{' --via agent' if via == 'agent' else ''}`",
            exit_codes.NOT_FOUND,
        )
    return workspace


def _via_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--via",
        choices=["executor", "agent"],
        default="executor",
        help="ask the executor directly (default), or the agent, which forwards to the executor "
        "replica that owns the workspace (for executors clients cannot reach, e.g. in Swarm)",
    )


# -- workspaces --------------------------------------------------------------------------------


def add_workspace_parsers(subparsers: argparse._SubParsersAction[Any], parents: Parents) -> None:
    parser = subparsers.add_parser(
        "workspaces",
        aliases=["ws"],
        parents=parents,
        help="list, show, create, start, stop, pause, resume, delete, snapshot and fork workspaces",
    )
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    parser.set_defaults(handler=workspaces_list, json=False, via="executor")

    listing = commands.add_parser("list", parents=parents, help="list workspaces")
    _json_flag(listing)
    _via_flag(listing)
    listing.set_defaults(handler=workspaces_list)

    show = commands.add_parser("show", parents=parents, help="show one workspace and its shell sessions")
    show.add_argument("workspace", help="id or name")
    _json_flag(show)
    _via_flag(show)
    show.set_defaults(handler=workspaces_show)

    create = commands.add_parser("create", parents=parents, help="create and start a workspace")
    create.add_argument("name", nargs="?", default="", help="a name unique on the executor")
    create.add_argument("--image", default="", help="image (default: the executor's)")
    create.add_argument("--network", action="store_true", help="allow network access")
    create.add_argument("--read-only", action="store_true", help="make /workspace read-only too")
    create.add_argument("--memory", type=int, help="memory limit in MiB (0: unlimited)")
    create.add_argument(
        "-e", "--env", action="append", default=[], metavar="NAME=VALUE", help="a variable every command gets"
    )
    create.add_argument("-l", "--label", action="append", default=[], metavar="NAME=VALUE", help="a label")
    create.add_argument(
        "--idle-timeout", type=float, metavar="SECONDS", help="stop it after this long unused (0: never)"
    )
    create.add_argument(
        "--ttl", type=float, metavar="SECONDS", help="delete it this long after now (0: never)"
    )
    create.add_argument(
        "--devcontainer",
        metavar="PATH",
        help="make it from a devcontainer.json (a file, or a folder holding .devcontainer/devcontainer.json); "
        "a Dockerfile it names (build.dockerfile) is built, its build.context sent along",
    )
    _json_flag(create)
    _via_flag(create)
    create.set_defaults(handler=workspaces_create)

    helps = {
        "start": "start a stopped workspace",
        "stop": "stop a workspace (its files are kept)",
        "pause": "freeze a workspace's processes, keeping its sessions",
        "resume": "let a paused workspace run on",
        "delete": "delete a workspace",
    }
    for action, text in helps.items():
        command = commands.add_parser(action, parents=parents, help=text)
        command.add_argument("workspace", help="id or name")
        if action != "delete":
            _json_flag(command)
        if action in ("pause", "resume", "delete"):
            _via_flag(command)
        command.set_defaults(handler=workspaces_change, change=action, json=False, via="executor")

    snapshot = commands.add_parser(
        "snapshot", parents=parents, help="capture a workspace's filesystem and files (fork it later)"
    )
    snapshot.add_argument("workspace", help="id or name")
    snapshot.add_argument("--name", default="", help="a name for the snapshot")
    _json_flag(snapshot)
    _via_flag(snapshot)
    snapshot.set_defaults(handler=workspaces_snapshot)

    snapshots = commands.add_parser("snapshots", parents=parents, help="list snapshots")
    snapshots.add_argument("workspace", nargs="?", default="", help="only this workspace's (id or name)")
    _json_flag(snapshots)
    _via_flag(snapshots)
    snapshots.set_defaults(handler=workspaces_snapshots)

    fork = commands.add_parser("fork", parents=parents, help="create a workspace from a snapshot")
    fork.add_argument("snapshot", help="snapshot id or name")
    fork.add_argument("name", nargs="?", default="", help="a name for the new workspace")
    _json_flag(fork)
    _via_flag(fork)
    fork.set_defaults(handler=workspaces_fork)

    forget = commands.add_parser("delete-snapshot", parents=parents, help="delete a snapshot")
    forget.add_argument("snapshot", help="snapshot id or name")
    _via_flag(forget)
    forget.set_defaults(handler=workspaces_delete_snapshot)


def workspaces_list(app: App, args: argparse.Namespace) -> int:
    workspaces = app.client.list_workspaces(via=args.via)
    if args.json:
        output.print_json(ex.ListWorkspacesResponse(workspaces=workspaces))
        return exit_codes.OK
    rows = [
        [
            w.id,
            w.name or "-",
            _status_word(w.status),
            _backend_word(w.backend),
            w.image,
            str(w.session_count),
            output.when(w.create_time),
        ]
        for w in workspaces
    ]
    output.table(["ID", "NAME", "STATUS", "BACKEND", "IMAGE", "SESSIONS", "CREATED"], rows)
    return exit_codes.OK


def _show_workspace(workspace: ex.Workspace, sessions: list[ex.Session] | None = None) -> None:
    pairs = [
        ("id", workspace.id),
        ("name", workspace.name or "-"),
        ("status", _status_word(workspace.status)),
        ("backend", _backend_word(workspace.backend)),
        ("image", workspace.image),
        ("isolation", workspace.isolation),
        ("created", output.when(workspace.create_time)),
        ("sessions", str(workspace.session_count)),
        ("forked from", workspace.parent_snapshot_id or "-"),
        ("stops if idle at", output.when(workspace.stop_time)),
        ("deleted at", output.when(workspace.delete_time)),
        ("stopped because", workspace.stopped_reason or "-"),
    ]
    pairs += [(f"env {k}", v) for k, v in sorted(workspace.env.items())]
    pairs += [(f"label {k}", v) for k, v in sorted(workspace.labels.items())]
    for session in sessions or []:
        state = output.enum_word(ex.SessionStatus.Name(session.status), "SESSION_STATUS_")
        pairs.append(("session", f"{session.id} {state}, {session.command_count} commands"))
    output.details(pairs)


def workspaces_show(app: App, args: argparse.Namespace) -> int:
    workspace = _workspace(app.client, args.workspace, args.via)
    if args.json:
        output.print_json(ex.GetWorkspaceResponse(workspace=workspace))
        return exit_codes.OK
    # Shell sessions are the executor's to list; through the agent only the workspace is shown.
    sessions = app.client.list_shell_sessions(workspace.id) if args.via == "executor" else None
    _show_workspace(workspace, sessions)
    return exit_codes.OK


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    try:
        return parse_env(values)
    except CliError:
        raise CliError(f"{flag} takes NAME=VALUE", exit_codes.USAGE) from None


def workspaces_create(app: App, args: argparse.Namespace) -> int:
    policy = ex.IsolationPolicy()
    if args.network:
        policy.network = True
    if args.read_only:
        policy.read_only = True
    if args.memory is not None:
        policy.memory_bytes = args.memory * 1024 * 1024
    devcontainer = _read_devcontainer(args.devcontainer) if args.devcontainer else None
    create = functools.partial(
        app.client.create_workspace_response,
        args.name,
        image=args.image,
        policy=policy,
        env=_pairs(args.env, "--env"),
        labels=_pairs(args.label, "--label"),
        idle_timeout=args.idle_timeout,
        ttl=args.ttl,
        devcontainer=devcontainer,
        via=args.via,
    )
    if devcontainer is not None and not args.json:
        # The build's and the commands' output as it comes, to stderr (stdout keeps the result).
        response = create(on_output=_SetupOutput())
    else:
        with output.progress(f"creating workspace {args.name or ''}".rstrip()):
            response = create()
    if args.json:
        output.print_json(response)
        return exit_codes.OK
    _show_workspace(response.workspace)
    for command in response.setup:
        output.out.print(f"{command.name}: exit {command.exit_code}", markup=False)
    failed = [c for c in response.setup if c.exit_code != 0]
    return exit_codes.FAILURE if failed else exit_codes.OK


class _SetupOutput:
    """Prints a devcontainer's setup output on stderr as it streams, each step under its name."""

    def __init__(self) -> None:
        self._step = ""

    def __call__(self, output: ex.SetupOutput) -> None:
        err = sys.stderr.buffer
        if output.name != self._step:
            self._step = output.name
            err.write(f"--- {output.name}\n".encode())
        if output.skipped_bytes:
            err.write(f"[{output.skipped_bytes} bytes of output not shown]\n".encode())
        err.write(output.stdout)
        err.write(output.stderr)
        err.flush()


def _read_devcontainer(path: str) -> ex.Devcontainer:
    """The devcontainer.json at `path` (itself, or in `path`/.devcontainer/ or `path`/), with
    its Dockerfile's build context."""
    try:
        return devcontainer_folder.load(path)
    except (devcontainer_folder.DevcontainerError, OSError) as exc:
        raise CliError(str(exc), exit_codes.USAGE) from None


def _snapshot(client: FireboxClient, wanted: str, via: Service) -> ex.Snapshot:
    for snapshot in client.list_snapshots(via=via):
        if wanted in (snapshot.id, snapshot.name):
            return snapshot
    raise CliError(
        f"no snapshot with id or name {wanted!r}; list them with `firebox workspaces snapshots`",
        exit_codes.NOT_FOUND,
    )


def workspaces_snapshot(app: App, args: argparse.Namespace) -> int:
    workspace = _workspace(app.client, args.workspace, args.via)
    with output.progress(f"snapshotting workspace {workspace.name or workspace.id}"):
        snapshot = app.client.create_snapshot(workspace.id, args.name, via=args.via)
    if args.json:
        output.print_json(ex.CreateSnapshotResponse(snapshot=snapshot))
    else:
        output.out.print(
            f"{snapshot.id} {snapshot.name or '-'} ({snapshot.files_bytes} bytes of files)", markup=False
        )
    return exit_codes.OK


def workspaces_snapshots(app: App, args: argparse.Namespace) -> int:
    workspace_id = _workspace(app.client, args.workspace, args.via).id if args.workspace else ""
    snapshots = app.client.list_snapshots(workspace_id, via=args.via)
    if args.json:
        output.print_json(ex.ListSnapshotsResponse(snapshots=snapshots))
        return exit_codes.OK
    rows = [
        [s.id, s.name or "-", s.workspace_id, s.image, str(s.files_bytes), output.when(s.create_time)]
        for s in snapshots
    ]
    output.table(["id", "name", "workspace", "image", "file bytes", "created"], rows)
    return exit_codes.OK


def workspaces_fork(app: App, args: argparse.Namespace) -> int:
    snapshot = _snapshot(app.client, args.snapshot, args.via)
    with output.progress(f"forking snapshot {snapshot.name or snapshot.id}"):
        workspace = app.client.create_workspace(args.name, snapshot_id=snapshot.id, via=args.via)
    if args.json:
        output.print_json(ex.CreateWorkspaceResponse(workspace=workspace))
    else:
        _show_workspace(workspace)
    return exit_codes.OK


def workspaces_delete_snapshot(app: App, args: argparse.Namespace) -> int:
    snapshot = _snapshot(app.client, args.snapshot, args.via)
    with output.progress(f"deleting snapshot {snapshot.name or snapshot.id}"):
        app.client.delete_snapshot(snapshot.id, via=args.via)
    output.note(f"deleted snapshot {snapshot.name or snapshot.id}")
    return exit_codes.OK


def workspaces_change(app: App, args: argparse.Namespace) -> int:
    client = app.client
    workspace = _workspace(client, args.workspace, args.via)
    label = workspace.name or workspace.id
    if args.change == "delete":
        with output.progress(f"deleting workspace {label}"):
            client.delete_workspace(workspace.id, via=args.via)
        output.note(f"deleted workspace {label}")
        return exit_codes.OK
    changes: dict[str, tuple[str, Callable[[], ex.Workspace]]] = {
        "start": ("starting", lambda: client.start_workspace(workspace.id)),
        "stop": ("stopping", lambda: client.stop_workspace(workspace.id)),
        "pause": ("pausing", lambda: client.pause_workspace(workspace.id, via=args.via)),
        "resume": ("resuming", lambda: client.resume_workspace(workspace.id, via=args.via)),
    }
    doing, change = changes[args.change]
    with output.progress(f"{doing} workspace {label}"):
        workspace = change()
    if args.json:
        output.print_json(ex.GetWorkspaceResponse(workspace=workspace))
    else:
        output.out.print(f"{label}: {_status_word(workspace.status)}", markup=False)
    return exit_codes.OK


# -- sessions ----------------------------------------------------------------------------------


def add_session_parsers(subparsers: argparse._SubParsersAction[Any], parents: Parents) -> None:
    parser = subparsers.add_parser(
        "sessions",
        parents=parents,
        help="list, show, create, clear, rewind, fork, delete, compact agent sessions; edit messages",
    )
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    parser.set_defaults(handler=sessions_list, json=False, limit=50)

    listing = commands.add_parser("list", parents=parents, help="list sessions, newest first")
    listing.add_argument("-n", "--limit", type=int, default=50, help="at most this many (default 50; 0: all)")
    _json_flag(listing)
    listing.set_defaults(handler=sessions_list)

    show = commands.add_parser("show", parents=parents, help="show a session and its messages")
    show.add_argument("session")
    _json_flag(show)
    show.set_defaults(handler=sessions_show)

    create = commands.add_parser("create", parents=parents, help="create a session")
    create.add_argument("--title", default="")
    chat.add_connection_flags(create)
    create.add_argument("--system", default="", help="system prompt")
    chat.add_policy_flags(create)
    _json_flag(create)
    create.set_defaults(handler=sessions_create)

    compact = commands.add_parser(
        "compact",
        parents=parents,
        help="summarize a session's history now",
        description="Have the model summarize the session's history now, showing the summary as it is "
        "written; later model calls get the summary instead of the older messages (which stay stored). "
        "Refused while a run is active.",
    )
    compact.add_argument("session")
    compact.add_argument("--json", action="store_true", help="print each progress event as a proto-JSON line")
    compact.set_defaults(handler=sessions_compact)

    edit = commands.add_parser(
        "edit",
        parents=parents,
        help="change a user message; --resend reruns the conversation from it",
        description="Change a user message of the session (ids: `firebox sessions show SESSION`). With "
        "--resend, every message after it is deleted and a run starts from it, followed like `chat -m`. "
        "Refused while a run is active.",
    )
    edit.add_argument("session")
    edit.add_argument("message_id")
    edit.add_argument("--content", required=True, help="the message's new text")
    edit.add_argument("--resend", action="store_true", help="drop what followed the message and run from it")
    edit.add_argument(
        "--json",
        action="store_true",
        help="print the edited message, then (with --resend) the run's events, as proto-JSON lines",
    )
    approvals.add_flags(edit)
    edit.set_defaults(handler=sessions_edit)

    clear = commands.add_parser(
        "clear",
        parents=parents,
        help="empty a session's conversation, keeping its settings and workspace",
        description="Cancel the session's active run, then remove its messages (compaction summaries "
        "included) and run records. The session keeps its id, settings, token totals, workspace and shell "
        "session: a new chat in the same workspace.",
    )
    clear.add_argument("session")
    _json_flag(clear)
    clear.set_defaults(handler=sessions_clear)

    for name, summary, description in (
        (
            "rewind",
            "cut the history before a user message and put the workspace back as it was then",
            "Remove the user message MESSAGE_ID and everything after it, and replace the session's "
            "workspace by the snapshot the agent took as that turn began (ids: `firebox sessions show "
            "SESSION`). Refused while a run is active, or when that turn's snapshot is no longer kept.",
        ),
        (
            "fork",
            "a new session with the history before a user message and the workspace as it was then",
            "Make a new session holding the history before the user message MESSAGE_ID, with a workspace "
            "restored from the snapshot the agent took as that turn began; the session is unchanged.",
        ),
    ):
        command = commands.add_parser(name, parents=parents, help=summary, description=description)
        command.add_argument("session")
        command.add_argument("message_id", metavar="MESSAGE_ID")
        _json_flag(command)
        command.set_defaults(handler=sessions_cut)

    writable = commands.add_parser(
        "writable-paths",
        parents=parents,
        help="set the directories under /workspace the session may write without asking",
        description="Replace the session's writable paths (directories under /workspace; the rest of "
        "/workspace becomes read-only to every command). No PATH: the whole workspace is writable again. "
        "Takes effect from the next command; the shell keeps its state. Refused while a run is active.",
    )
    writable.add_argument("session")
    writable.add_argument("paths", nargs="*", metavar="PATH")
    _json_flag(writable)
    writable.set_defaults(handler=sessions_writable_paths)

    connection = commands.add_parser(
        "connection",
        parents=parents,
        help="switch a session to another provider connection",
        description="Send the session's next runs to another of the agent's provider connections "
        "(`firebox status` lists them); the conversation carries over. --model overrides the "
        "connection's default model (without it, the session uses that default). Refused while a run "
        "is active.",
    )
    connection.add_argument("session")
    connection.add_argument("name", metavar="NAME")
    connection.add_argument("--model", default="", help="model on that connection (default: its default)")
    _json_flag(connection)
    connection.set_defaults(handler=sessions_connection)

    delete = commands.add_parser(
        "delete", parents=parents, help="delete a session, its runs and its workspace"
    )
    delete.add_argument("session")
    delete.set_defaults(handler=sessions_delete)


def _session_rows(sessions: list[ag.Session]) -> list[list[str]]:
    return [
        [
            s.id,
            s.title or "-",
            str(s.message_count),
            s.active_run_id or "-",
            str(s.usage.total_tokens),
            output.when(s.update_time),
        ]
        for s in sessions
    ]


def sessions_list(app: App, args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise CliError("--limit must be 0 or more", exit_codes.USAGE)
    sessions = list(app.client.iter_sessions(limit=args.limit or None))
    if args.json:
        output.print_json(ag.ListSessionsResponse(sessions=sessions))
        return exit_codes.OK
    output.table(["ID", "TITLE", "MESSAGES", "ACTIVE RUN", "TOKENS", "UPDATED"], _session_rows(sessions))
    return exit_codes.OK


def sessions_show(app: App, args: argparse.Namespace) -> int:
    response = app.client.get_session(args.session, include_messages=True)
    if args.json:
        output.print_json(response)
        return exit_codes.OK
    session = response.session
    output.details(
        [
            ("id", session.id),
            ("title", session.title or "-"),
            ("connection", session.settings.connection or "(agent default)"),
            ("model", session.settings.model or "(connection default)"),
            ("approval", _policy_word(session.settings.approval_policy)),
            ("sandbox", _sandbox_word(session.settings.sandbox_mode)),
            ("writable", ", ".join(session.settings.writable_paths) or "all of /workspace"),
            ("created", output.when(session.create_time)),
            ("updated", output.when(session.update_time)),
            ("workspace", session.workspace_id or "-"),
            ("active run", session.active_run_id or "-"),
            ("tokens", f"{session.usage.input_tokens} in, {session.usage.output_tokens} out"),
            ("context", f"{session.context_tokens} of {session.context_window} tokens"),
        ]
    )
    for message in response.messages:
        role = output.enum_word(ag.Role.Name(message.role), "ROLE_")
        output.out.print(f"\n[bold]{role}[/bold] [dim]{message.id}[/dim]", end="")
        if message.HasField("compaction"):
            before, after = message.compaction.tokens_before, message.compaction.tokens_after
            output.out.print(f" [dim](summary: context {before} → {after} tokens)[/dim]", end="")
        if message.status == ag.MESSAGE_STATUS_INTERRUPTED:
            output.out.print(" [yellow](interrupted)[/yellow]", end="")
        output.out.print()
        if message.content:
            output.out.print(message.content, markup=False)
        for call in message.tool_calls:
            output.out.print(f"▶ {call.name} {call.arguments}", style="cyan", markup=False)
    return exit_codes.OK


def _policy_word(policy: int) -> str:
    word = output.enum_word(ag.ApprovalPolicy.Name(policy), "APPROVAL_POLICY_")
    return "(agent default)" if word == "-" else word


def _sandbox_word(mode: int) -> str:
    word = output.enum_word(ag.SandboxMode.Name(mode), "SANDBOX_MODE_")
    return "(agent default)" if word == "-" else word


def sessions_create(app: App, args: argparse.Namespace) -> int:
    session = app.client.create_session(args.title, settings=chat.session_settings(args))
    if args.json:
        output.print_json(ag.CreateSessionResponse(session=session))
    else:
        output.out.print(session.id, markup=False)
    return exit_codes.OK


def sessions_delete(app: App, args: argparse.Namespace) -> int:
    with output.progress(f"deleting session {args.session}"):
        app.client.delete_session(args.session)
    output.note(f"deleted session {args.session}")
    return exit_codes.OK


def sessions_clear(app: App, args: argparse.Namespace) -> int:
    with output.progress(f"clearing session {args.session}"):
        response = app.client.clear_session(args.session)
    if args.json:
        output.print_json(response)
        return exit_codes.OK
    cancelled = f"; cancelled run {response.cancelled_run_id}" if response.cancelled_run_id else ""
    output.note(
        f"cleared session {args.session}: {response.cleared_message_count} messages, "
        f"{response.cleared_run_count} runs{cancelled}"
    )
    return exit_codes.OK


def sessions_cut(app: App, args: argparse.Namespace) -> int:
    """`sessions rewind` and `sessions fork`: the history cut before a user message, the
    workspace restored (in place, or in a new session whose id goes to stdout)."""
    fork = args.action == "fork"
    with output.progress(f"{'forking' if fork else 'rewinding'} session {args.session}"):
        call = app.client.fork_session if fork else app.client.rewind_session
        response = call(args.session, args.message_id)
    if args.json:
        output.print_json(response)
        return exit_codes.OK
    workspace = response.session.workspace_id or "none (the next command makes one)"
    if isinstance(response, ag.ForkSessionResponse):
        output.note(
            f"forked session {args.session}: {response.message_count} messages; workspace {workspace}"
        )
        output.out.print(response.session.id, markup=False)
    else:
        removed = response.removed_message_count
        output.note(f"rewound session {args.session}: {removed} messages removed; workspace {workspace}")
    return exit_codes.OK


def sessions_connection(app: App, args: argparse.Namespace) -> int:
    settings = ag.SessionSettings(connection=args.name, model=args.model)
    with output.progress(f"updating session {args.session}"):
        session = app.client.update_session(
            args.session, ["settings.connection", "settings.model"], settings=settings
        )
    if args.json:
        output.print_json(session)
        return exit_codes.OK
    model = session.settings.model or "its default model"
    output.note(f"session {session.id}: next runs on connection {session.settings.connection}, {model}")
    return exit_codes.OK


def sessions_writable_paths(app: App, args: argparse.Namespace) -> int:
    settings = ag.SessionSettings(writable_paths=args.paths)
    with output.progress(f"updating session {args.session}"):
        session = app.client.update_session(args.session, ["settings.writable_paths"], settings=settings)
    if args.json:
        output.print_json(session)
        return exit_codes.OK
    paths = ", ".join(session.settings.writable_paths)
    output.note(
        f"session {session.id}: writable {paths}, the rest of /workspace read-only"
        if paths
        else f"session {session.id}: all of /workspace writable"
    )
    return exit_codes.OK


def sessions_compact(app: App, args: argparse.Namespace) -> int:
    summary_shown = False
    for response in app.client.compact_session(args.session):
        if args.json:
            output.print_json(response, compact=True)
            continue
        kind = response.WhichOneof("event")
        if kind == "started":
            output.note(
                f"compacting session {args.session}: {response.started.tokens_before} tokens of context"
            )
        elif kind == "summary_delta":
            sys.stdout.write(response.summary_delta.text)
            sys.stdout.flush()
            summary_shown = bool(response.summary_delta.text) or summary_shown
        elif kind == "compacted":
            if summary_shown:
                sys.stdout.write("\n")
                sys.stdout.flush()
            done = response.compacted
            output.note(
                f"compacted: {done.tokens_before} → {done.tokens_after} tokens "
                f"(summary stored as message {done.marker_message_id})"
            )
    return exit_codes.OK


def _edit_events(
    responses: Iterator[ag.EditMessageResponse], args: argparse.Namespace
) -> Iterator[ag.RunEvent]:
    """The run events of an EditMessage stream, after showing the edited message."""
    for response in responses:
        if response.HasField("message"):
            if args.json:
                output.print_json(response, compact=True)
            else:
                output.note(f"edited message {response.message.id}")
        yield from run_events(response)


def sessions_edit(app: App, args: argparse.Namespace) -> int:
    client = app.client
    responses = client.edit_message(args.session, args.message_id, args.content, resend=args.resend)
    if not args.resend:
        for _ in _edit_events(responses, args):
            pass
        return exit_codes.OK
    renderer = JsonRenderer() if args.json else RunRenderer()
    return chat.follow(
        client, _edit_events(responses, args), renderer, approver=Approver(client, args.approvals)
    )


# -- runs --------------------------------------------------------------------------------------


def add_run_parsers(subparsers: argparse._SubParsersAction[Any], parents: Parents) -> None:
    parser = subparsers.add_parser("runs", parents=parents, help="list, show, cancel, attach to runs")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = commands.add_parser("list", parents=parents, help="list a session's runs, newest first")
    listing.add_argument("session")
    _json_flag(listing)
    listing.set_defaults(handler=runs_list)

    show = commands.add_parser("show", parents=parents, help="show a run")
    show.add_argument("run_id")
    _json_flag(show)
    show.set_defaults(handler=runs_show)

    cancel = commands.add_parser(
        "cancel", parents=parents, help="cancel a run (a finished run is left as it is)"
    )
    cancel.add_argument("run_id")
    _json_flag(cancel)
    cancel.set_defaults(handler=runs_cancel)

    chat.add_attach_parser(commands, parents)

    approve = commands.add_parser(
        "approve",
        parents=parents,
        help="approve a tool call waiting in a run (--command: run this instead)",
        description="Approve a tool call that waits for approval. With --command, the edited command (for "
        "shell; JSON arguments for other tools) runs instead of the suggested one.",
    )
    approve.add_argument("run_id")
    approve.add_argument("tool_call_id")
    approve.add_argument("--command", help="run this instead of the suggested command")
    approve.set_defaults(handler=runs_resolve, decision="approve", reason="")

    deny = commands.add_parser(
        "deny", parents=parents, help="deny a tool call waiting in a run; the model is told --reason"
    )
    deny.add_argument("run_id")
    deny.add_argument("tool_call_id")
    deny.add_argument("--reason", default="", help="why (the model is told)")
    deny.set_defaults(handler=runs_resolve, decision="deny", command=None)


def _run_status(run: ag.Run) -> str:
    return output.enum_word(ag.RunStatus.Name(run.status), "RUN_STATUS_")


def runs_list(app: App, args: argparse.Namespace) -> int:
    runs: list[ag.Run] = []
    token = ""
    while True:
        page = app.client.list_runs(args.session, page_size=100, page_token=token)
        runs.extend(page.runs)
        token = page.next_page_token
        if not token:
            break
    if args.json:
        output.print_json(ag.ListRunsResponse(runs=runs))
        return exit_codes.OK
    rows = [
        [
            r.id,
            _run_status(r),
            str(r.last_event_index),
            str(r.usage.total_tokens),
            output.when(r.create_time),
            output.when(r.end_time),
            r.error or "",
        ]
        for r in runs
    ]
    output.table(["ID", "STATUS", "EVENTS", "TOKENS", "STARTED", "ENDED", "ERROR"], rows)
    return exit_codes.OK


def _print_run(run: ag.Run) -> None:
    output.details(
        [
            ("id", run.id),
            ("session", run.session_id),
            ("status", _run_status(run)),
            ("started", output.when(run.create_time)),
            ("ended", output.when(run.end_time)),
            ("events", str(run.last_event_index)),
            ("tokens", f"{run.usage.input_tokens} in, {run.usage.output_tokens} out"),
            ("error", run.error or "-"),
        ]
    )


def runs_show(app: App, args: argparse.Namespace) -> int:
    run = app.client.get_run(args.run_id)
    if args.json:
        output.print_json(ag.GetRunResponse(run=run))
    else:
        _print_run(run)
    return exit_codes.OK


def runs_cancel(app: App, args: argparse.Namespace) -> int:
    run = app.client.cancel_run(args.run_id)
    if args.json:
        output.print_json(ag.CancelRunResponse(run=run))
    else:
        output.out.print(f"{run.id}: {_run_status(run)}", markup=False)
    return exit_codes.OK


def runs_resolve(app: App, args: argparse.Namespace) -> int:
    if args.decision == "deny":
        decision, said = ag.APPROVAL_DECISION_DENY, "denied"
    elif args.command is not None:
        if not args.command.strip():
            raise CliError("--command must not be empty", exit_codes.USAGE)
        decision, said = ag.APPROVAL_DECISION_APPROVE_EDITED, "approved as edited"
    else:
        decision, said = ag.APPROVAL_DECISION_APPROVE, "approved"
    app.client.resolve_approval(
        args.run_id, args.tool_call_id, decision, reason=args.reason, edited_command=args.command or ""
    )
    output.note(f"{said}: tool call {args.tool_call_id} of run {args.run_id}")
    return exit_codes.OK


# -- status ------------------------------------------------------------------------------------


def add_status_parser(subparsers: argparse._SubParsersAction[Any], parents: Parents) -> None:
    parser = subparsers.add_parser(
        "status",
        parents=parents,
        help="health, version and backend of both services",
        description="Check both services. Exits 0 when both serve, 4 when either cannot be reached or "
        "is not serving, 5 when the token is refused.",
    )
    _json_flag(parser)
    parser.set_defaults(handler=status)


def _probe(client: FireboxClient, service: str) -> dict[str, Any]:
    """Health and server info of one service; failures are recorded, not raised."""
    result: dict[str, Any] = {"target": client.target(service), "health": "UNREACHABLE"}  # type: ignore[arg-type]
    try:
        result["health"] = client.health(service)  # type: ignore[arg-type]
        info = client.agent_info() if service == "agent" else client.executor_info()
        result["info"] = output.proto_dict(info)
    except FireboxRpcError as error:
        if not error.unreachable and error.method == "Health.Check":
            result["health"] = error.code.name
        result["error"] = describe(error)
        result["exit_code"] = exit_code_for(error)
    return result


def status(app: App, args: argparse.Namespace) -> int:
    client = app.client
    report = {"agent": _probe(client, "agent"), "executor": _probe(client, "executor")}
    code = exit_codes.OK
    for entry in report.values():
        failed = entry.pop("exit_code", exit_codes.OK)
        if entry["health"] != "SERVING" and failed == exit_codes.OK:
            failed = exit_codes.UNAVAILABLE
        # A refused token is the more useful thing to report: it is why everything else fails.
        if failed != exit_codes.OK and code in (exit_codes.OK, exit_codes.UNAVAILABLE):
            code = failed
    if args.json:
        output.print_json(report)
        return code
    rows = []
    for service, entry in report.items():
        info = entry.get("info", {})
        if service == "agent":
            model = info.get("defaultModel") or "-"
            provider = "configured" if info.get("providerConfigured") else "not configured"
            connections = ", ".join(
                f"{c.get('name')} ({c.get('wireFormat')}, {c.get('defaultModel') or 'no default model'})"
                for c in info.get("connections", [])
            )
            detail = (
                f"model {model}, provider {provider}, executor {info.get('executorTarget') or '-'}"
                + (f", connections {connections}" if connections else "")
                if info
                else ""
            )
        else:
            backend = output.enum_word(info.get("backend", "BACKEND_UNSPECIFIED"), "BACKEND_")
            detail = (
                f"backend {backend}, image {info.get('defaultImage') or '-'}, "
                f"{info.get('workspaceCount', '0')} workspaces, {info.get('sessionCount', '0')} sessions"
                if info
                else ""
            )
        dropped = int(info.get("droppedLogRecords", "0") or 0)
        if dropped:
            detail += f", {dropped} training-log records dropped"
        health = entry["health"].lower().replace("_", " ")
        rows.append(
            [service, entry["target"], health, info.get("version", "-"), detail or entry.get("error", "")]
        )
    output.table(["SERVICE", "TARGET", "HEALTH", "VERSION", "DETAILS"], rows)
    return code
