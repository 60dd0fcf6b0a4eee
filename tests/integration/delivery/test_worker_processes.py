"""``mailroom worker --processes N``: a supervisor and N worker processes on one outbox.

Everything is real: the supervisor runs as ``python -m mailroom worker`` in a subprocess, its
children are spawned by multiprocessing as in production, the outbox is a SQLite file and the
relay is aiosmtpd on loopback, which keeps the Message-ID of every message it accepts.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select

from mailroom.config import SETTING_NAMES, load_settings
from mailroom.errors import SettingsError
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status
from support.processes import Spawn
from support.smtp_server import ScriptedHandler, ServerFactory, SMTPTestServer

MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE | re.IGNORECASE)
WORKER_LINE = re.compile(r"^worker (\S+): sent (\d+)((?:, \w+ \d+)*)$", re.MULTILINE)
"""What each worker prints at the end: "worker NAME: sent N, deferred N, failed N, ..."."""


@dataclass
class SinkHandler(ScriptedHandler):
    """Keeps the Message-ID of each message accepted. Before accepting it waits
    ``delays["DATA"]``, if set, and until ``gate`` is open."""

    arrivals: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        await self._pause("DATA")
        found = MESSAGE_ID.search(envelope.original_content or b"")
        with self.lock:
            self.arrivals.append(found[1].decode() if found else "?")
        return "250 2.0.0 OK"


def clean_env() -> dict[str, str]:
    """The environment for a worker: ours without any mailroom setting."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in SETTING_NAMES and not name.startswith(("EMAIL_", "MAILROOM_"))
    }


@dataclass
class Setup:
    settings_env: dict[str, str]
    outbox: Outbox
    handler: SinkHandler
    server: SMTPTestServer

    def env(self, **extra: str) -> dict[str, str]:
        return {**clean_env(), **self.settings_env, **extra}

    def stored_message_ids(self) -> set[str]:
        with self.outbox.engine.connect() as connection:
            return set(connection.execute(select(messages.c.message_id)).scalars())

    def lease_holders(self) -> int:
        """How many workers hold claimed messages now."""
        query = select(func.count(messages.c.lease_token.distinct())).where(
            messages.c.status == Status.SENDING
        )
        with self.outbox.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def sent_by_worker(self) -> dict[str, int]:
        """From the attempts log: how many messages each worker sent."""
        query = (
            select(attempts.c.worker, func.count())
            .where(attempts.c.outcome == "sent")
            .group_by(attempts.c.worker)
        )
        with self.outbox.engine.connect() as connection:
            return {str(worker): int(count) for worker, count in connection.execute(query)}

    def wait_for_two_workers(self, supervisor: subprocess.Popen[bytes]) -> None:
        """Until both worker processes hold claimed messages: both run their worker."""
        deadline = time.monotonic() + 30
        while self.lease_holders() < 2:
            assert supervisor.poll() is None, supervisor.communicate()[1].decode()
            assert time.monotonic() < deadline, "the second worker never claimed anything"
            time.sleep(0.05)


@pytest.fixture
def setup(tmp_path: Path, smtp_server_factory: ServerFactory) -> Iterator[Setup]:
    handler = SinkHandler()
    server = smtp_server_factory(handler=handler)
    settings_env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'o.db'}",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
    }
    outbox = Outbox(load_settings(environ=settings_env))
    database.upgrade(outbox.engine)
    yield Setup(settings_env, outbox, handler, server)
    outbox.dispose()


def queue(outbox: Outbox, count: int) -> None:
    outbox.send_many(
        [
            Message(to=[f"u{i}@example.com"], subject=f"n{i}", text="hello " * 20)
            for i in range(count)
        ],
        stream="bulk",
    )


def worker(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailroom", *args]


def worker_lines(stdout: bytes, *, only_sent: bool = True) -> list[tuple[str, int]]:
    """(name, sent) for each worker's closing line; with ``only_sent``, its other counts
    (deferred, failed, paused, released...) must all be 0."""
    found = WORKER_LINE.findall(stdout.decode())
    for _name, _sent, others in found:
        assert others, stdout.decode()
        if only_sent:
            assert set(re.findall(r" (\d+)", others)) == {"0"}, stdout.decode()
    return [(name, int(sent)) for name, sent, _ in found]


def worker_children(pid: int) -> list[int]:
    """The processes multiprocessing spawned under ``pid`` to run a target (its resource
    tracker, also a child, is not one of them)."""
    with open(f"/proc/{pid}/task/{pid}/children") as listed:
        children = [int(child) for child in listed.read().split()]
    found = []
    for child in children:
        with open(f"/proc/{child}/cmdline", "rb") as cmdline:
            if b"spawn_main" in cmdline.read():
                found.append(child)
    return found


@contextmanager
def reaping(supervisor: subprocess.Popen[bytes]) -> Iterator[list[int]]:
    """Yields a list for the worker pids the test finds; at the end, whatever runs of them
    and of the supervisor's workers is killed. The ``spawn`` fixture kills the supervisor
    alone, and a worker left behind would go on sending."""
    known: list[int] = []
    try:
        yield known
    finally:
        running = worker_children(supervisor.pid) if supervisor.poll() is None else []
        for child in {*known, *running}:
            if alive(child):
                with suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- delivering with two processes -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "settings"),
    [(["--processes", "2"], {}), ([], {"WORKER_PROCESSES": "2"})],
    ids=["--processes", "WORKER_PROCESSES"],
)
def test_two_processes_deliver_every_message_exactly_once(
    setup: Setup, spawn: Spawn, args: list[str], settings: dict[str, str]
) -> None:
    total = 300
    queue(setup.outbox, total)
    # Small batches, and the relay holds every message until both workers hold some: so
    # both take part however fast the first one starts.
    setup.handler.gate.clear()
    supervisor = spawn(
        worker("worker", "--once", *args), setup.env(WORKER_BATCH_SIZE="10", **settings)
    )
    with reaping(supervisor):
        try:
            setup.wait_for_two_workers(supervisor)
        finally:
            setup.handler.gate.set()
        out, err = supervisor.communicate(timeout=60)

    assert supervisor.returncode == 0, err.decode()
    assert b"Traceback" not in err, err.decode()
    lines = worker_lines(out)
    assert len(lines) == 2, out.decode()
    assert len({name for name, _ in lines}) == 2
    assert sum(sent for _, sent in lines) == total
    assert all(sent > 0 for _, sent in lines), lines
    assert setup.sent_by_worker() == dict(lines)

    arrived = Counter(setup.handler.arrivals)
    assert len(setup.handler.arrivals) == total
    assert max(arrived.values()) == 1
    assert set(arrived) == setup.stored_message_ids()
    counts = setup.outbox.counts()
    assert counts[Status.SENT] == total
    assert counts[Status.QUEUED] == counts[Status.SENDING] == 0


def test_sigterm_stops_both_processes_and_loses_nothing(setup: Setup, spawn: Spawn) -> None:
    total = 300
    queue(setup.outbox, total)
    # One connection a process, each message 0.1 s at the relay: minutes of work, so the
    # workers are surely busy when the signal comes.
    setup.handler.delays["DATA"] = 0.1
    supervisor = spawn(
        worker("worker", "--processes", "2"),
        setup.env(WORKER_CONCURRENCY="1", WORKER_BATCH_SIZE="5"),
    )
    with reaping(supervisor) as children:
        # Both hold messages, so both are well past their start (their signal handlers
        # are set before they claim anything), and sending.
        setup.wait_for_two_workers(supervisor)
        children.extend(worker_children(supervisor.pid))
        assert len(children) == 2, children
        deadline = time.monotonic() + 10
        while len(setup.handler.arrivals) < 4:
            assert time.monotonic() < deadline, "nothing arrives"
            time.sleep(0.05)

        signalled = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        out, err = supervisor.communicate(timeout=10)
        stopped_after = time.monotonic() - signalled

    assert supervisor.returncode == 0, err.decode()
    assert stopped_after < 5.0
    assert b"Traceback" not in err, err.decode()
    assert not any(alive(child) for child in children)
    lines = worker_lines(out, only_sent=False)
    assert len(lines) == 2, out.decode()
    sent_by_workers = sum(sent for _, sent in lines)

    counts = setup.outbox.counts()
    assert counts[Status.SENDING] == 0  # whatever was claimed was given back
    assert counts[Status.SENT] + counts[Status.QUEUED] == total
    assert 0 < counts[Status.SENT] < total
    assert counts[Status.SENT] == sent_by_workers == len(setup.handler.arrivals)
    assert max(Counter(setup.handler.arrivals).values()) == 1

    # What is still queued goes out with the next run, and nothing twice.
    setup.handler.delays.clear()
    final = spawn(worker("worker", "--once"), setup.env())
    _, err = final.communicate(timeout=60)
    assert final.returncode == 0, err.decode()
    arrived = Counter(setup.handler.arrivals)
    assert len(setup.handler.arrivals) == total
    assert set(arrived) == setup.stored_message_ids()
    assert setup.outbox.counts()[Status.SENT] == total


def test_sigterm_while_the_workers_are_starting_stops_them_all(setup: Setup, spawn: Spawn) -> None:
    queue(setup.outbox, 30)
    supervisor = spawn(worker("worker", "--processes", "8"), setup.env())
    with reaping(supervisor):
        deadline = time.monotonic() + 20
        while not worker_children(supervisor.pid):
            assert supervisor.poll() is None, supervisor.communicate()[1].decode()
            assert time.monotonic() < deadline, "no worker process was started"
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.communicate(timeout=8)
        except subprocess.TimeoutExpired:
            left = worker_children(supervisor.pid)
            pytest.fail(f"8 s after SIGTERM the supervisor runs on, and {len(left)} workers")
    assert setup.outbox.counts()[Status.SENDING] == 0


def test_a_failing_child_makes_the_supervisor_fail(tmp_path: Path, spawn: Spawn) -> None:
    """Children that cannot work (here: the schema was never created) are reported."""
    env = {**clean_env(), "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    supervisor = spawn(worker("worker", "--once", "--processes", "2"), env)
    out, err = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 1
    assert err.count(b"mailroom db upgrade") == 2, err.decode()
    assert b"2 of 2 worker processes ended with an error" in err
    assert b"Traceback" not in err, err.decode()
    assert worker_lines(out) == []


# -- the event loop ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loop_name", "selector_loop"), [("asyncio", True), ("uvloop", False), ("auto", False)]
)
def test_worker_event_loop_setting_picks_the_loop_and_delivers(
    setup: Setup, spawn: Spawn, loop_name: str, selector_loop: bool
) -> None:
    """(``auto`` is uvloop where it is installed, as it is here.)"""
    total = 50
    queue(setup.outbox, total)
    # -vv: debug logging, where asyncio's own loop says which selector it uses; uvloop does not.
    process = spawn(worker("-vv", "worker", "--once"), setup.env(WORKER_EVENT_LOOP=loop_name))
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err.decode()
    assert (b"asyncio: Using selector" in err) == selector_loop, err.decode()
    assert [sent for _, sent in worker_lines(out)] == [total]
    assert sorted(setup.handler.arrivals) == sorted(setup.stored_message_ids())
    assert setup.outbox.counts()[Status.SENT] == total


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_bad_worker_event_loop_is_refused_naming_the_setting(
    setup: Setup, spawn: Spawn, processes: str
) -> None:
    queue(setup.outbox, 3)
    process = spawn(
        worker("worker", "--once", "--processes", processes),
        setup.env(WORKER_EVENT_LOOP="bogus"),
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert b"WORKER_EVENT_LOOP" in err, err.decode()
    assert b"Traceback" not in err, err.decode()
    assert worker_lines(out) == []
    assert setup.handler.arrivals == []
    assert setup.outbox.counts()[Status.QUEUED] == 3


def test_worker_settings_defaults_and_checks() -> None:
    defaults = load_settings(environ={})
    assert defaults.WORKER_PROCESSES == 1
    assert defaults.WORKER_EVENT_LOOP == "auto"
    for value in ("auto", "asyncio", "uvloop"):
        chosen = load_settings(environ={"WORKER_EVENT_LOOP": value})
        assert value == chosen.WORKER_EVENT_LOOP
    assert load_settings(environ={"WORKER_PROCESSES": "3"}).WORKER_PROCESSES == 3
    for name, value in [
        ("WORKER_EVENT_LOOP", "bogus"),
        ("WORKER_EVENT_LOOP", "trio"),
        ("WORKER_PROCESSES", "0"),
    ]:
        with pytest.raises(SettingsError) as caught:
            load_settings(environ={name: value})
        assert caught.value.setting == name
        assert name in str(caught.value)


def test_processes_below_one_is_a_usage_error(setup: Setup, spawn: Spawn) -> None:
    queue(setup.outbox, 3)
    process = spawn(worker("worker", "--once", "--processes", "0"), setup.env())
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert b"--processes" in err
    assert setup.handler.connections == 0
    assert setup.outbox.counts()[Status.QUEUED] == 3
