"""Agent scale-out on a single-node swarm: compose.yaml + compose.postgres.yaml deployed with
scripts/stack-deploy.sh as 3 agent replicas, 2 executors and PostgreSQL, the agents' model a fake
OpenAI-compatible server on the host (tests/support/fake_provider.py, reached on the
docker_gwbridge gateway). Runs stream through every replica; one replica's container that owns
runs is killed (SIGKILL) mid-run; every run is followed to its end from the others.

What it shows: within a bounded wait every run ends COMPLETED: the kept replicas' runs
undisturbed, the killed replica's taken over by another replica and continued there (a
RunResumed event, the model call made again); every client saw the run's event indices
contiguous from 1, none lost or repeated across the kill and its reconnection, and the same
events as a client following the run from another replica.

The agents publish their port in host mode, one free host port per replica (FIREBOX_AGENT_PORT=0):
the routing mesh (FIREBOX_AGENT_PORT_MODE=ingress) needs the kernel's IPVS, which this machine's
kernel lacks (docs/deploy.md). A client here does what an editor behind the mesh would: when its
replica goes away it reconnects to another and resumes with StreamRun(after_index)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from firebox.agent.v1 import agent_pb2 as ag
from firebox.agent.v1 import agent_pb2_grpc
from tests.support.deploy import (
    REPO,
    SwarmStack,
    bridge_gateway,
    have_tools,
    joined_swarm,
    prepare_images,
    run,
    swarm_stack,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

AGENTS = 3
EXECUTORS = 2
RUNS = 6  # two started on each replica
# Each answer: DELTAS text deltas PAUSE s apart (about 15 s), so runs are live when one dies.
DELTAS = 60
PAUSE = 0.25
EXPECTED_TEXT = "".join(f"tok{n} " for n in range(DELTAS))
HEALTHY_WITHIN_SECONDS = 300
# A client that hears nothing for this long drops its stream and resumes on another replica: a
# killed container's connections are not always reset. Longer than a takeover's silence is not
# needed: resuming is always allowed.
IDLE_SECONDS = 8.0
# Every run must end within this long after the kill (lease 5 s, takeover scan, the rest of the
# answer, a loaded machine).
END_WITHIN_SECONDS = 150.0
TERMINAL = ("run_completed", "run_failed", "run_cancelled")


@dataclass(frozen=True)
class Replicas:
    stack: SwarmStack
    # host:port of each agent replica, with its container.
    agents: dict[str, str]


def _start_provider(host: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.fake_provider",
            "--deltas",
            str(DELTAS),
            "--pause",
            str(PAUSE),
            "--host",
            host,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    assert base_url.startswith("http://"), f"fake provider did not start: {base_url!r}"
    return process, base_url


@pytest.fixture(scope="module")
def replicas() -> Iterator[Replicas]:
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    prepare_images()
    with joined_swarm():
        # The agents' tasks reach the host through docker_gwbridge, which exists once in a swarm.
        provider, base_url = _start_provider(bridge_gateway())
        env = {
            "FIREBOX_AGENT_REPLICAS": str(AGENTS),
            "FIREBOX_AGENT_PORT": "0",
            "FIREBOX_EXECUTOR_REPLICAS": str(EXECUTORS),
            "FIREBOX_POSTGRES_PASSWORD": secrets.token_hex(16),
            "FIREBOX_PROVIDER_BASE_URL": base_url,
            "FIREBOX_MODEL": "fake-model",
        }
        try:
            with swarm_stack(
                "fbscale",
                {"postgres": 1, "executor": EXECUTORS, "agent": AGENTS},
                env=env,
                overlays=["compose.postgres.yaml"],
                volumes=("executor-state", "agent-state", "postgres-data"),
                within=HEALTHY_WITHIN_SECONDS,
            ) as stack:
                agents = {f"127.0.0.1:{stack.host_port(c, 50052)}": c for c in stack.containers("agent")}
                yield Replicas(stack, agents)
        finally:
            provider.terminate()
            provider.wait(timeout=10)


def _events(response: ag.SendMessageResponse | ag.StreamRunResponse) -> list[ag.RunEvent]:
    if response.events:
        return list(response.events)
    return [response.event] if response.HasField("event") else []


def _payload(event: ag.RunEvent) -> tuple[int, str, bytes]:
    """What two clients of one run must agree on: index, kind and content (not the stamp)."""
    kind = event.WhichOneof("event") or ""
    content = getattr(event, kind).SerializeToString(deterministic=True) if kind else b""
    return event.index, kind, content


@dataclass
class Follower:
    """One client following one run to its end: from a first stream (SendMessage's, or StreamRun
    on some replica), then, whenever its stream breaks or goes quiet, StreamRun(after_index = the
    last index it saw) on the next replica in its list."""

    name: str
    run_id: str
    addresses: list[str]
    channels: dict[str, grpc.Channel]
    events: list[ag.RunEvent] = field(default_factory=list)
    resumes: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    error: str = ""
    call: Any = None  # the stream being read, cancelled from the test's thread when quiet
    last_progress: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, first: Any, deadline: float) -> None:
        threading.Thread(target=self._follow, args=(first, deadline), daemon=True).start()

    @property
    def terminal(self) -> str:
        with self._lock:
            return (self.events[-1].WhichOneof("event") or "") if self.events else ""

    def seen(self) -> int:
        with self._lock:
            return len(self.events)

    def stop_if_idle(self) -> None:
        call = self.call
        if call is not None and time.monotonic() - self.last_progress > IDLE_SECONDS:
            call.cancel()

    def _follow(self, first: Any, deadline: float) -> None:
        try:
            attempt = 0
            call = first
            while time.monotonic() < deadline:
                address = self.addresses[attempt % len(self.addresses)]
                if call is None:
                    after = self.events[-1].index if self.events else 0
                    self.resumes.append(f"{address} after {after}")
                    stub = agent_pb2_grpc.AgentServiceStub(self.channels[address])
                    call = stub.StreamRun(
                        ag.StreamRunRequest(run_id=self.run_id, after_index=after, batch_events=True),
                        timeout=max(1.0, deadline - time.monotonic()),
                    )
                self.call = call
                self.last_progress = time.monotonic()
                try:
                    for response in call:
                        self.last_progress = time.monotonic()
                        with self._lock:
                            self.events.extend(_events(response))
                        if self.terminal in TERMINAL:
                            return
                except grpc.RpcError:
                    pass
                if self.terminal in TERMINAL:
                    return
                # Broken, refused or quiet: the next replica, after a moment.
                call = None
                attempt += 1
                time.sleep(0.3)
            self.error = f"no end of run within the deadline ({len(self.events)} events seen)"
        except Exception as exc:  # the test reports it, with the run
            self.error = repr(exc)
        finally:
            self.done.set()


def test_each_agent_replica_keeps_its_own_config_dir(replicas: Replicas) -> None:
    # The replicas share one volume on this node; with a database URL each writes its logs and
    # training log under slot-N (deploy/entrypoint.sh), and no SQLite file is made.
    listings = {
        c: run(["docker", "exec", c, "ls", "/var/lib/firebox/agent"]).stdout.split()
        for c in replicas.agents.values()
    }
    slots = {f"slot-{replicas.stack.slot_of(c)}" for c in replicas.agents.values()}
    assert slots == {f"slot-{n}" for n in range(1, AGENTS + 1)}
    for container, listing in listings.items():
        assert slots <= set(listing) and "agent.db" not in listing, (container, listing)


def test_runs_survive_the_kill_of_an_agent_replica(replicas: Replicas) -> None:
    addresses = sorted(replicas.agents)
    assert len(addresses) == AGENTS
    channels = {a: grpc.insecure_channel(a) for a in addresses}
    stubs = {a: agent_pb2_grpc.AgentServiceStub(c) for a, c in channels.items()}
    try:
        _start_follow_kill_and_check(replicas, addresses, channels, stubs)
    finally:
        for channel in channels.values():
            channel.close()


def _start_follow_kill_and_check(
    replicas: Replicas,
    addresses: list[str],
    channels: dict[str, grpc.Channel],
    stubs: dict[str, agent_pb2_grpc.AgentServiceStub],
) -> None:
    started_by: dict[str, str] = {}  # run id -> the replica that started (owns) it
    followers: list[tuple[Follower, Follower]] = []
    far = time.monotonic() + 600
    for n in range(RUNS):
        owner = addresses[n % AGENTS]
        others = [a for a in addresses if a != owner]
        session = stubs[owner].CreateSession(
            ag.CreateSessionRequest(title=f"scale-{n}", settings=ag.SessionSettings(no_turn_snapshots=True)),
            timeout=120,
        )
        call = stubs[owner].SendMessage(
            ag.SendMessageRequest(
                session_id=session.session.id, content=f"say the tokens ({n})", batch_events=True
            ),
            timeout=600,
        )
        first = next(iter(call))
        events = _events(first)
        assert events and events[0].HasField("run_started"), first
        run_id = events[0].run_id
        started_by[run_id] = owner
        # The sending client: its SendMessage stream on the owner, then the other replicas.
        sender = Follower(f"sender of {run_id}", run_id, [owner, *others], channels, events=list(events))
        sender.start(call, far)
        # A client following from another replica from the start, then the rest.
        watcher = Follower(
            f"watcher of {run_id}", run_id, [*others[n % 2 :], *others[: n % 2], owner], channels
        )
        watcher.start(None, far)
        followers.append((sender, watcher))

    # Mid-run: every run has streamed a few deltas and none has ended.
    deadline = time.monotonic() + 60
    while not all(s.seen() >= 5 and w.seen() >= 5 for s, w in followers):
        assert time.monotonic() < deadline, [(s.name, s.seen(), w.seen()) for s, w in followers]
        time.sleep(0.2)
    victim = addresses[0]
    container = replicas.agents[victim]
    at_kill = {s.run_id: (s.seen(), s.terminal) for s, _ in followers}
    run(["docker", "kill", "--signal", "KILL", container])
    killed_at = time.monotonic()
    victims = [run_id for run_id, owner in started_by.items() if owner == victim]
    assert victims and all(at_kill[r][1] not in TERMINAL for r in victims), at_kill

    # Follow every run to its end, bounded; quiet streams are dropped and resumed elsewhere.
    end_by = killed_at + END_WITHIN_SECONDS
    while not all(f.done.is_set() for pair in followers for f in pair):
        if time.monotonic() > end_by:
            pending = [
                (f.name, f.seen(), f.resumes) for pair in followers for f in pair if not f.done.is_set()
            ]
            raise AssertionError(f"runs still going {END_WITHIN_SECONDS:.0f} s after the kill: {pending}")
        for pair in followers:
            for follower in pair:
                follower.stop_if_idle()
        time.sleep(0.5)
    took = time.monotonic() - killed_at

    survivor = stubs[addresses[1]]
    report = []
    for sender, watcher in followers:
        run_id = sender.run_id
        for follower in (sender, watcher):
            assert not follower.error, f"{follower.name}: {follower.error}; resumed {follower.resumes}"
            indices = [e.index for e in follower.events]
            # No event lost, none repeated, whatever replica each came from.
            assert indices == list(range(1, len(indices) + 1)), (
                f"{follower.name}: indices {indices}; resumed {follower.resumes}"
            )
            assert all(e.run_id == run_id for e in follower.events)
        # Both clients saw the very same events.
        assert [_payload(e) for e in sender.events] == [_payload(e) for e in watcher.events], (
            f"{run_id}: the sender (resumed {sender.resumes}) and the watcher (resumed {watcher.resumes}) differ"
        )
        final = sender.events[-1]
        stored = survivor.GetRun(ag.GetRunRequest(run_id=run_id), timeout=30).run
        text = "".join(e.text_delta.text for e in sender.events if e.HasField("text_delta"))
        if started_by[run_id] != victim:
            # Runs on the replicas that stayed are not disturbed.
            assert final.HasField("run_completed"), (run_id, final)
            assert stored.status == ag.RUN_STATUS_COMPLETED, (run_id, stored)
            assert text == EXPECTED_TEXT, (run_id, text)
        else:
            # Taken over and continued elsewhere to its end: the taker says so (RunResumed),
            # closes the answer that was streaming and makes the model call again.
            resumed = [e.run_resumed for e in sender.events if e.HasField("run_resumed")]
            assert len(resumed) == 1 and resumed[0].interrupted_message_ids, (run_id, resumed)
            assert final.HasField("run_completed"), (run_id, final)
            assert stored.status == ag.RUN_STATUS_COMPLETED and stored.takeovers == 1, (run_id, stored)
            assert text.endswith(EXPECTED_TEXT), (run_id, text)
        assert stored.last_event_index == final.index, (run_id, stored.last_event_index, final.index)
        report.append(
            f"{run_id} on {'killed' if started_by[run_id] == victim else 'kept'} replica: "
            f"{ag.RunStatus.Name(stored.status)}, {final.index} events "
            f"(GetRun elsewhere: last_event_index {stored.last_event_index}) "
            f"(sender resumed {len(sender.resumes)}x, watcher {len(watcher.resumes)}x)"
        )
    print(f"\nall {RUNS} runs ended {took:.1f} s after the kill:\n  " + "\n  ".join(report))
