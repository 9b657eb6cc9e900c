"""`firebox workspaces`, `sessions`, `runs` and `status`: list, show, create and delete things."""

from __future__ import annotations

import argparse
from typing import Any

from firebox.agent.v1 import agent_pb2 as ag
from firebox.cli import chat, exit_codes, output
from firebox.cli.app import App, CliError, describe, exit_code_for
from firebox.cli.exec_cmd import parse_env
from firebox.client import FireboxClient, FireboxRpcError
from firebox.executor.v1 import executor_pb2 as ex

Parents = list[argparse.ArgumentParser]


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print proto-JSON")


def _status_word(status: int) -> str:
    return output.enum_word(ex.WorkspaceStatus.Name(status), "WORKSPACE_STATUS_")


def _backend_word(backend: int) -> str:
    return output.enum_word(ex.Backend.Name(backend), "BACKEND_")


def _workspace(client: FireboxClient, wanted: str) -> ex.Workspace:
    workspace = client.find_workspace(wanted)
    if workspace is None:
        raise CliError(
            f"no workspace with id or name {wanted!r} on the executor at {client.target('executor')}; "
            "list them with `firebox workspaces list`",
            exit_codes.NOT_FOUND,
        )
    return workspace


# -- workspaces --------------------------------------------------------------------------------


def add_workspace_parsers(subparsers: argparse._SubParsersAction, parents: Parents) -> None:
    parser = subparsers.add_parser(
        "workspaces",
        aliases=["ws"],
        parents=parents,
        help="list, show, create, start, stop, delete workspaces",
    )
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    parser.set_defaults(handler=workspaces_list, json=False)

    listing = commands.add_parser("list", parents=parents, help="list workspaces")
    _json_flag(listing)
    listing.set_defaults(handler=workspaces_list)

    show = commands.add_parser("show", parents=parents, help="show one workspace and its shell sessions")
    show.add_argument("workspace", help="id or name")
    _json_flag(show)
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
    _json_flag(create)
    create.set_defaults(handler=workspaces_create)

    for action, verb in (("start", "start"), ("stop", "stop"), ("delete", "delete")):
        command = commands.add_parser(action, parents=parents, help=f"{verb} a workspace")
        command.add_argument("workspace", help="id or name")
        if action != "delete":
            _json_flag(command)
        command.set_defaults(handler=workspaces_change, change=action, json=False)


def workspaces_list(app: App, args: argparse.Namespace) -> int:
    workspaces = app.client.list_workspaces()
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
    ]
    pairs += [(f"env {k}", v) for k, v in sorted(workspace.env.items())]
    pairs += [(f"label {k}", v) for k, v in sorted(workspace.labels.items())]
    for session in sessions or []:
        state = output.enum_word(ex.SessionStatus.Name(session.status), "SESSION_STATUS_")
        pairs.append(("session", f"{session.id} {state}, {session.command_count} commands"))
    output.details(pairs)


def workspaces_show(app: App, args: argparse.Namespace) -> int:
    workspace = _workspace(app.client, args.workspace)
    if args.json:
        output.print_json(ex.GetWorkspaceResponse(workspace=workspace))
        return exit_codes.OK
    _show_workspace(workspace, app.client.list_shell_sessions(workspace.id))
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
    with output.progress(f"creating workspace {args.name or ''}".rstrip()):
        workspace = app.client.create_workspace(
            args.name,
            image=args.image,
            policy=policy,
            env=_pairs(args.env, "--env"),
            labels=_pairs(args.label, "--label"),
        )
    if args.json:
        output.print_json(ex.CreateWorkspaceResponse(workspace=workspace))
    else:
        _show_workspace(workspace)
    return exit_codes.OK


def workspaces_change(app: App, args: argparse.Namespace) -> int:
    client = app.client
    workspace = _workspace(client, args.workspace)
    label = workspace.name or workspace.id
    if args.change == "delete":
        with output.progress(f"deleting workspace {label}"):
            client.delete_workspace(workspace.id)
        output.note(f"deleted workspace {label}")
        return exit_codes.OK
    change = client.start_workspace if args.change == "start" else client.stop_workspace
    with output.progress(f"{'starting' if args.change == 'start' else 'stopping'} workspace {label}"):
        workspace = change(workspace.id)
    if args.json:
        output.print_json(ex.GetWorkspaceResponse(workspace=workspace))
    else:
        output.out.print(f"{label}: {_status_word(workspace.status)}", markup=False)
    return exit_codes.OK


# -- sessions ----------------------------------------------------------------------------------


def add_session_parsers(subparsers: argparse._SubParsersAction, parents: Parents) -> None:
    parser = subparsers.add_parser(
        "sessions", parents=parents, help="list, show, create, delete agent sessions"
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
    create.add_argument("--model", default="", help="model (default: the agent's)")
    create.add_argument("--system", default="", help="system prompt")
    _json_flag(create)
    create.set_defaults(handler=sessions_create)

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
            ("model", session.settings.model or "(agent default)"),
            ("created", output.when(session.create_time)),
            ("updated", output.when(session.update_time)),
            ("workspace", session.workspace_id or "-"),
            ("active run", session.active_run_id or "-"),
            ("tokens", f"{session.usage.input_tokens} in, {session.usage.output_tokens} out"),
        ]
    )
    for message in response.messages:
        role = output.enum_word(ag.Role.Name(message.role), "ROLE_")
        output.out.print(f"\n[bold]{role}[/bold]", end="")
        if message.status == ag.MESSAGE_STATUS_INTERRUPTED:
            output.out.print(" [yellow](interrupted)[/yellow]", end="")
        output.out.print()
        if message.content:
            output.out.print(message.content, markup=False)
        for call in message.tool_calls:
            output.out.print(f"▶ {call.name} {call.arguments}", style="cyan", markup=False)
    return exit_codes.OK


def sessions_create(app: App, args: argparse.Namespace) -> int:
    settings = ag.SessionSettings(model=args.model, system_prompt=args.system)
    session = app.client.create_session(args.title, settings=settings)
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


# -- runs --------------------------------------------------------------------------------------


def add_run_parsers(subparsers: argparse._SubParsersAction, parents: Parents) -> None:
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


# -- status ------------------------------------------------------------------------------------


def add_status_parser(subparsers: argparse._SubParsersAction, parents: Parents) -> None:
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
            detail = (
                f"model {model}, provider {provider}, executor {info.get('executorTarget') or '-'}"
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
