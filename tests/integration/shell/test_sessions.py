"""Shell sessions and Execute over them, on the executor's Docker backend (busybox ash; exec socket and FIFOs) and bubblewrap backend."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from executor_service.execution import EndReason, Execution, Finished, Output, shell_quote
from firebox.common import errors
from tests.integration.shell.conftest import KINDS, OUTPUT_CAP, Env, Result, collect

# Prints "gone" once the process whose pid is in $bg no longer runs (a zombie counts as gone),
# waiting up to 2 s for a killed process to die, with builtins and sleep only; "no-pid" when $bg
# holds no pid (with an empty one, /proc/$bg/stat would be /proc/stat, which always exists).
BG_GONE = (
    'case $bg in ""|*[!0-9]*) s=no-pid;; *) '
    "n=0; while :; do s=gone; "
    'if { IFS= read -r l </proc/$bg/stat; } 2>/dev/null; then case $l in *") Z "*) ;; *) s=alive;; esac; fi; '
    "[ $s = gone ] || [ $n -ge 20 ] && break; n=$((n+1)); sleep 0.1; done;; esac; echo $s"
)


async def test_cd_persists_between_commands(env: Env) -> None:
    sid = await env.session()
    await env.run("cd /tmp", sid)
    assert (await env.run("pwd", sid)).stdout == b"/tmp\n"


async def test_exported_and_shell_variables_and_functions_persist(env: Env) -> None:
    sid = await env.session()
    await env.run('export EXPORTED=e1; plain=p1; greet() { echo "hi $1"; }', sid)
    result = await env.run(
        'echo "$EXPORTED $plain"; greet you; sh -c \'echo "child sees ${EXPORTED}-${plain}"\'', sid
    )
    assert result.stdout == b"e1 p1\nhi you\nchild sees e1-\n"


async def test_stdout_and_stderr_stay_separate(env: Env) -> None:
    result = await env.run("echo out1; echo err1 >&2; echo out2; echo err2 >&2")
    assert result.stdout == b"out1\nout2\n"
    assert result.stderr == b"err1\nerr2\n"
    assert result.finished.exit_code == 0
    assert result.finished.reason is EndReason.EXITED


async def test_binary_invalid_utf8_and_missing_final_newline_arrive_intact(env: Env) -> None:
    sid = await env.session()
    # Every byte value, an invalid UTF-8 sequence, the protocol's \x1f marker, no final newline.
    result = await env.run(
        r"i=0; while [ $i -lt 256 ]; do printf \\$(printf %o $i); i=$((i+1)); done; printf '\377\376\037FBX'",
        sid,
    )
    expected = bytes(range(256)) + b"\xff\xfe\x1fFBX"
    assert result.stdout == expected
    result = await env.run("printf 'no newline'", sid)
    assert result.stdout == b"no newline"


async def test_output_streams_while_the_command_runs(env: Env) -> None:
    execution = await env.start("echo before; sleep 30; echo after")
    await execution.close_input()
    first_output, finished = None, False

    async def read_until_first_output() -> None:
        nonlocal first_output, finished
        async for event in execution.events():
            if isinstance(event, Output) and event.stdout:
                first_output = event.stdout
                return
            finished = finished or isinstance(event, Finished)

    # Output held back to the end would arrive only after `sleep 30`, as `before` and `after` together.
    await asyncio.wait_for(read_until_first_output(), 20)
    assert first_output == b"before\n" and not finished
    await execution.cancel()


async def test_cat_echoes_input_and_ends_at_end_of_input(env: Env) -> None:
    sid = await env.session()
    data = bytes(range(256)) * 200  # 51 KiB: several stdin frames
    result = await env.run("cat", sid, stdin=data)
    assert result.stdout == data
    assert result.finished.exit_code == 0


async def test_read_reads_a_line_of_input(env: Env) -> None:
    sid = await env.session()
    result = await env.run('read -r x; echo "got [$x]"', sid, stdin=b"hello world\nrest\n")
    assert result.stdout == b"got [hello world]\n"
    # The variable read in one command is there in the next.
    assert (await env.run('echo "$x"', sid)).stdout == b"hello world\n"


async def test_input_written_before_the_command_reads_is_not_lost(env: Env) -> None:
    execution = await env.start("sleep 0.3; cat")
    await execution.write_input(b"early\n")
    await execution.close_input()
    result = await collect(execution)
    assert result.stdout == b"early\n"


async def _stop_once_started(execution: Execution, kill: bool) -> tuple[bytes, float]:
    """Read the command's output to its end, stopping it when it has printed `started`; returns
    the output and when the stop was sent."""
    await execution.close_input()
    stdout, stopped_at = b"", 0.0
    async for event in execution.events():
        if isinstance(event, Output):
            stdout += event.stdout
            if stdout == b"started\n":
                stopped_at = time.monotonic()
                await execution.stop(kill=kill)
    return stdout, stopped_at


@pytest.mark.parametrize("kill", [False, True], ids=["interrupt", "kill"])
async def test_stop_kills_children_and_background_jobs_and_session_stays_usable(env: Env, kill: bool) -> None:
    sid = await env.session()
    await env.run("cd /tmp; marker=kept", sid)
    execution = await env.start("sleep 30 & bg=$!; echo started; sleep 30; echo not-reached", sid)
    stdout, stopped_at = await _stop_once_started(execution, kill)
    finished = await asyncio.wait_for(execution.wait(), 5)
    assert time.monotonic() - stopped_at < 3
    assert finished.reason is EndReason.STOPPED
    assert not finished.session_ended
    # The shell was not restarted: it keeps what the stopped command set ($bg).
    assert "restarted" not in finished.message
    assert stdout == b"started\n"  # the rest of the script did not run
    after = await env.run(f"{BG_GONE}; pwd; echo $marker", sid)
    assert after.stdout == b"gone\n/tmp\nkept\n"


async def test_kill_stops_a_builtin_loop_and_keeps_the_whole_state(env: Env) -> None:
    sid = await env.session()
    await env.run("cd /tmp; export KEPT=yes; plain=also; fn() { echo fn-kept; }", sid)
    execution = await env.start("while :; do :; done; echo not-reached", sid)
    await execution.close_input()
    await asyncio.sleep(0.2)
    stopped_at = time.monotonic()
    await execution.stop(kill=True)
    finished = await asyncio.wait_for(execution.wait(), 5)
    assert time.monotonic() - stopped_at < 3
    assert finished.reason is EndReason.STOPPED
    assert finished.exit_code == 137
    after = await env.run('pwd; echo "$KEPT $plain"; fn', sid)
    assert after.stdout == b"/tmp\nyes also\nfn-kept\n"


async def test_kill_also_kills_a_child_the_shell_starts_after_the_stop_and_keeps_the_state(env: Env) -> None:
    sid = await env.session()
    await env.run("cd /tmp; fn() { echo fn-kept; }", sid)
    # The shell acts on a stop only between commands. Here it is still expanding the argument of
    # `sleep` when the stop comes: the command substitution's writer left the process group (the
    # stop does not end it) and answers only once the stop has killed the background canary, so
    # the shell starts `sleep 30` in the foreground after the stop's first sweep, and waits for it.
    after_the_stop = (
        "n=0; while [ $n -lt 1000 ] && { IFS= read -r l </proc/$1/stat; } 2>/dev/null; do "
        'case $l in *") Z "*) break;; esac; n=$((n+1)); sleep 0.01; done; echo 30'
    )
    script = (
        f'sleep 30 & bg=$!; echo started; sleep "$(setsid sh -c {shell_quote(after_the_stop)} - $bg)"; '
        "echo not-reached"
    )
    execution = await env.start(script, sid)
    stdout, _ = await _stop_once_started(execution, kill=True)
    finished = await asyncio.wait_for(execution.wait(), 5)
    assert finished.reason is EndReason.STOPPED
    assert finished.exit_code == 137
    assert stdout == b"started\n"
    # The late `sleep` was killed too, so the shell acted on the stop and kept its whole state.
    assert "restarted" not in finished.message
    assert (await env.run(f"{BG_GONE}; fn; pwd", sid)).stdout == b"gone\nfn-kept\n/tmp\n"


async def test_kill_of_a_shell_deaf_to_signals_restarts_it_with_cwd_and_variables(env: Env) -> None:
    sid = await env.session()
    await env.run("cd /tmp; export KEPT=yes; plain=also", sid)
    # The command replaces the session's traps, so only killing its shell can stop the loop.
    execution = await env.start("trap '' INT TERM; while :; do :; done", sid)
    await execution.close_input()
    await asyncio.sleep(0.2)
    stopped_at = time.monotonic()
    await execution.stop(kill=True)
    finished = await asyncio.wait_for(execution.wait(), 5)
    assert time.monotonic() - stopped_at < 3
    assert finished.reason is EndReason.STOPPED
    assert finished.exit_code == 137
    assert "restarted" in finished.message
    after = await env.run('pwd; echo "$KEPT $plain"; sh -c \'echo "child $KEPT"\'', sid)
    assert after.stdout == b"/tmp\nyes also\nchild yes\n"


async def test_interrupt_of_a_builtin_loop_escalates_to_a_kill(env: Env) -> None:
    sid = await env.session()
    execution = await env.start("while :; do :; done", sid)
    await execution.close_input()
    await asyncio.sleep(0.2)
    await execution.stop(kill=False)
    finished = await asyncio.wait_for(execution.wait(), 5)
    assert finished.reason is EndReason.STOPPED
    assert (await env.run("echo alive", sid)).stdout == b"alive\n"


async def test_timeout_kills_the_command_and_keeps_partial_output(env: Env) -> None:
    sid = await env.session()
    began = time.monotonic()
    result = await env.run("echo partial; sleep 30 & bg=$!; sleep 30", sid, timeout=0.5)
    assert time.monotonic() - began < 4
    assert result.finished.reason is EndReason.TIMED_OUT
    assert result.stdout == b"partial\n"
    assert "timeout" in result.finished.message
    assert (await env.run(BG_GONE, sid)).stdout == b"gone\n"


async def test_cancel_kills_the_command_as_cancelled(env: Env) -> None:
    sid = await env.session()
    execution = await env.start("sleep 30", sid)
    await execution.close_input()
    await asyncio.sleep(0.2)
    await asyncio.wait_for(execution.cancel(), 5)
    assert execution.finished is not None
    assert execution.finished.reason is EndReason.CANCELLED
    assert (await env.run("echo next", sid)).stdout == b"next\n"


async def test_output_past_the_cap_is_dropped_and_the_command_runs_on(env: Env) -> None:
    sid = await env.session()
    result = await env.run("head -c 3000000 /dev/zero; echo done-marker >&2; echo tail", sid)
    assert result.finished.output_truncated
    assert len(result.stdout) + len(result.stderr) == OUTPUT_CAP
    assert result.finished.exit_code == 0
    # It ran to its end: the next command sees the session idle and working.
    assert (await env.run("echo next", sid)).stdout == b"next\n"


async def test_exit_ends_the_session_and_the_next_command_is_refused(env: Env) -> None:
    sid = await env.session()
    result = await env.run("echo bye; exit 3", sid)
    assert result.stdout == b"bye\n"
    assert result.finished.exit_code == 3
    assert result.finished.session_ended
    assert env.sessions.get(sid).status == "ended"
    with pytest.raises(errors.FailedPrecondition, match="ended"):
        await env.start("true", sid)


async def test_exec_ends_the_session_cleanly(env: Env) -> None:
    sid = await env.session()
    result = await env.run("exec true", sid)
    assert result.finished.session_ended
    assert result.finished.exit_code == 0
    with pytest.raises(errors.FailedPrecondition):
        await env.start("true", sid)


async def test_busy_session_refuses_a_second_command_at_once_naming_the_first(env: Env) -> None:
    sid = await env.session()
    first = await env.start("sleep 30", sid)
    with pytest.raises(errors.FailedPrecondition, match=first.id):
        await env.start("echo second", sid)
    await first.stop(kill=True)
    await first.wait()
    assert (await env.run("echo second", sid)).stdout == b"second\n"


async def test_different_sessions_run_in_parallel(env: Env) -> None:
    # A rendezvous, not a stopwatch: each command marks that it runs, then waits (up to 20 s) for the
    # other's mark. Run one after the other, the first would give up waiting and say "alone".
    a, b = await env.session(), await env.session()
    tag = secrets.token_hex(4)

    # Each bwrap session has a /tmp of its own; its sessions share /workspace.
    place = "d=/workspace; " if env.kind == "bwrap" else "d=/tmp; "

    def meet(me: str, other: str) -> str:
        return (
            f"{place}: > $d/.meet-{tag}-{me}; i=0; "
            f"while [ ! -e $d/.meet-{tag}-{other} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; "
            f"if [ -e $d/.meet-{tag}-{other} ]; then echo met; else echo alone; fi"
        )

    results = await asyncio.gather(env.run(meet("a", "b"), a), env.run(meet("b", "a"), b))
    await env.run(f"{place}rm -f $d/.meet-{tag}-a $d/.meet-{tag}-b")
    assert [r.stdout for r in results] == [b"met\n", b"met\n"], [r.stderr for r in results]


async def test_sessionless_command_keeps_nothing(env: Env) -> None:
    before = await env.run('pwd; echo "[$LEAK$leak2]"')
    await env.run("cd /tmp; export LEAK=1; leak2=2; leak() { :; }")
    result = await env.run('pwd; echo "[$LEAK$leak2]"; command -v leak || echo no-function')
    assert result.stdout == before.stdout + b"no-function\n"
    assert not result.stdout.startswith(b"/tmp\n")


async def test_directory_and_env_act_like_cd_and_export_in_a_session(env: Env) -> None:
    sid = await env.session()
    result = await env.run(
        'pwd; echo "$GREETING"', sid, directory="/tmp", env={"GREETING": 'it\'s "quoted" $HOME'}
    )
    assert result.stdout == b'/tmp\nit\'s "quoted" $HOME\n'
    assert (await env.run('pwd; echo "$GREETING"', sid)).stdout == b'/tmp\nit\'s "quoted" $HOME\n'


async def test_missing_directory_fails_the_command_without_running_it(env: Env) -> None:
    result = await env.run("echo ran", directory="no/such/dir")
    assert result.stdout == b""
    assert b"no/such/dir" in result.stderr
    assert result.finished.exit_code not in (0, None)


async def test_argv_is_passed_without_shell_interpretation(env: Env) -> None:
    argv = ["printf", "%s|", "a b", "$HOME", "it's", "*", "`id`", ""]
    result = await env.run(argv=argv)
    assert result.stdout == b"a b|$HOME|it's|*|`id`||"


async def test_syntax_error_fails_the_command_and_keeps_the_session(env: Env) -> None:
    sid = await env.session()
    result = await env.run("echo 'unterminated", sid)
    assert result.finished.exit_code == 2
    assert not result.finished.session_ended
    assert (await env.run("echo fine", sid)).stdout == b"fine\n"


# Each bwrap session is its own sandbox, so another session cannot see its processes: the probe
# below needs a shared process view, which the other kinds have.
@pytest.mark.parametrize("backing", [k for k in KINDS if k.values[0] != "bwrap"], indirect=True)
async def test_closing_a_session_kills_what_it_started(env: Env) -> None:
    sid = await env.session()
    await env.run("sleep 60 & echo $! > /tmp/closing-bg-$$", sid)
    probe = await env.session()
    pid_file = (await env.run(f"ls /tmp/closing-bg-{env.sessions.get(sid).shell.pid}", probe)).stdout.strip()
    await env.sessions.close(sid)
    with pytest.raises(errors.NotFound):
        env.sessions.get(sid)
    result = await env.run(f"bg=$(cat {pid_file.decode()}); {BG_GONE}", probe)
    assert result.stdout == b"gone\n"


async def test_unknown_session_is_not_found(env: Env) -> None:
    with pytest.raises(errors.NotFound, match="nope"):
        await env.start("true", "nope")
    with pytest.raises(errors.NotFound):
        await env.sessions.close("nope")


async def test_session_ids_are_validated_unique_and_bounded(env: Env) -> None:
    with pytest.raises(errors.InvalidArgument, match="session_id"):
        await env.sessions.create(env.workspace, "bad id!")
    await env.sessions.create(env.workspace, "mine.1")
    with pytest.raises(errors.AlreadyExists):
        await env.sessions.create(env.workspace, "mine.1")
    for _ in range(3):
        await env.sessions.create(env.workspace)
    with pytest.raises(errors.ResourceExhausted):
        await env.sessions.create(env.workspace)
    listed = env.sessions.list(env.workspace.id)
    assert listed[0].id == "mine.1"
    assert all(s.status == "idle" for s in listed)


async def test_shutdown_kills_running_commands_after_the_grace(env: Env) -> None:
    sid = await env.session()
    execution = await env.start("sleep 30", sid)
    await execution.close_input()
    await asyncio.sleep(0.2)
    await asyncio.wait_for(env.sessions.shutdown(0.2), 10)
    finished = await execution.wait()
    assert isinstance(finished, Finished)
    assert finished.reason is EndReason.SHUTDOWN


async def _run_to_rest(env: Env, script: str) -> Result:
    """A sessionless command to its end, and its shell back in the warm list (or closed)."""
    execution = await env.start(script)
    await execution.close_input()
    result = await collect(execution)
    assert execution.task is not None
    await execution.task
    return result


async def test_sessionless_command_runs_in_the_prestarted_spare_shell(env: Env) -> None:
    env.sessions.prestart(env.workspace)
    spare = await env.sessions._spares[env.workspace.id]
    result = await _run_to_rest(env, "echo hi")
    assert result.stdout == b"hi\n"
    assert result.started.pid == spare.pid
    # Kept warm for the next sessionless command; a new spare is on its way too.
    assert not spare.ended and env.sessions._warm[env.workspace.id] == [spare]
    assert env.sessions._spares[env.workspace.id] is not None


async def test_sessionless_commands_reuse_a_warm_shell_and_keep_nothing(env: Env) -> None:
    first = await _run_to_rest(env, "pwd; cd /tmp && export LEAK=1 && f() { :; } && sleep 600 & echo started")
    start_dir, started = first.stdout.split(b"\n")[:2]
    assert started == b"started" and start_dir != b"/tmp"
    second = await _run_to_rest(env, 'echo "$PWD ${LEAK:-none} $(command -v f || echo nof)"; exit 3')
    # The same shell, and nothing of the first command in it: cwd, variables, functions.
    assert second.started.pid == first.started.pid
    assert second.stdout == start_dir + b" none nof\n" and second.finished.exit_code == 3
    # The first command's background job was killed when it ended.
    third = await _run_to_rest(env, "ps -o args 2>/dev/null | grep -c '[s]leep 600' || true")
    assert third.stdout.strip() == b"0"
    assert third.started.pid == first.started.pid


async def test_concurrent_sessionless_commands_take_separate_shells_and_all_come_back(env: Env) -> None:
    results = await asyncio.gather(*(_run_to_rest(env, f"sleep 0.3; echo {i}") for i in range(4)))
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(4)]
    # Four shells at once (pids may repeat: each bwrap shell has its own pid namespace).
    assert len({id(shell) for shell in env.sessions._warm[env.workspace.id]}) == 4


async def test_sessionless_interrupt_abandons_the_script_but_waits_for_a_program_ignoring_it(
    env: Env,
) -> None:
    # An interrupted program ends the script, as in a session ...
    execution = await env.start("sleep 30; echo after")
    await execution.close_input()
    await asyncio.sleep(0.3)
    await execution.stop()
    result = await collect(execution)
    assert b"after" not in result.stdout and result.finished.reason is EndReason.STOPPED
    # ... and a program that ignores SIGINT is not abandoned by its subshell: the stop escalates.
    execution = await env.start("sh -c \"trap '' INT; echo started; sleep 30; echo never\"")
    await execution.close_input()
    await asyncio.sleep(0.5)
    await execution.stop()
    result = await collect(execution)
    # 137: killed after the grace, not 130 (its subshell giving up at the first SIGINT).
    assert result.stdout.startswith(b"started\n") and result.finished.reason is EndReason.STOPPED
    assert result.finished.exit_code == 137, result.finished
    assert result.finished.message == "killed: it did not end within the grace period after an interrupt"


async def test_a_command_past_the_memory_limit_is_out_of_memory_and_the_session_lives_on(env: Env) -> None:
    """The workspace's memory limit (64 MiB here) ends the program that outgrew it, reported as
    such (the backend's OOM count rose), and the session's shell keeps its state."""
    sid = await env.session()
    await env.run("export KEPT=yes", sid)
    hog = "sh -c 'x=xxxxxxxxxxxxxxxx; while :; do x=$x$x; done'"
    result = await env.run(hog, sid, timeout=60)
    assert result.finished.reason == EndReason.OUT_OF_MEMORY, result.finished
    assert not result.finished.session_ended
    assert (await env.run('echo "$KEPT"', sid)).stdout == b"yes\n"
