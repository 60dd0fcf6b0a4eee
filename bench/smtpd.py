"""The SMTP submission port's benchmark (issue #13): messages a second into the outbox
through a real ``mailroom smtpd`` process, on SQLite, with the durable commit kept.

    .venv/bin/python bench/smtpd.py [--client smtp-source|aiosmtplib] [--clients 16]
                                    [--messages 1500] [--tls] [--profile FILE]

Two kinds of client, each on ``--clients`` persistent connections sending ``--messages``
messages of about 4 KB one after another, each answered ``250`` only once committed:

- ``smtp-source`` (the default): Postfix's load generator, in C (``smtp-source -s 16 -d -m N
  -l 4000 -c``, fetched as the other benches fetch it), so the clients take little of the
  cores the server runs on. It has no AUTH: the server is started with
  ``SMTPD_TRUSTED_NETWORKS=127.0.0.1/32``, so this measures **no AUTH, a trusted network, C
  clients**.
- ``aiosmtplib``: Python clients in this process (asyncio), each EHLO and AUTH PLAIN with a
  real API key once; ``--tls`` adds STARTTLS before AUTH (a throwaway trustme certificate).
  They need about as much CPU a message as the server, on the same cores.

The server's own CPU per message is printed beside the rate, with the clients' and the
machine's load. Every message acknowledged is then counted in the outbox (smtp-source stops
at the first reply that is not 2xx, so its exit status 0 means every one was acknowledged).
Progress goes to stderr; stdout gets the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from common import Figure, log
from mailroom.delivery.loop import run  # uvloop where installed: less client CPU per message
from run import CACHE
from sink import BenchSetupError, Postfix, ensure_postfix

TARGET = 3000.0  # messages a second
TRUSTED = "127.0.0.1/32"  # smtp-source has no AUTH: its clients submit as a trusted network
_SENDER = "app@example.com"
_RECIPIENT = "user@example.com"
_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
# ~4 KB with the headers, in lines of 75 characters as people write them.
_BODY = "\r\n".join(["All work and no play makes Jack a dull boy, said the line again. "] * 58)


def _message(client: int, n: int) -> bytes:
    return (
        f"From: App <app@example.com>\r\nTo: user{client}-{n}@example.com\r\n"
        f"Subject: Benchmark {client}-{n}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{_BODY}\r\n"
    ).encode()


def _env(workdir: Path, extra: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "MAILROOM_"))}
    keep = {k: v for k, v in keep.items() if not k.startswith(("SMTPD_", "DATABASE_"))}
    return {**keep, "DATABASE_URL": f"sqlite:///{workdir / 'mailroom.db'}", **extra}


def _mailroom(*args: str, env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


def _certificate(workdir: Path) -> tuple[dict[str, str], ssl.SSLContext]:
    import trustme  # noqa: PLC0415 - only for --tls (a test dependency)

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile = workdir / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return {"SMTPD_TLS_CERTFILE": str(certfile)}, client


def _cpu(stat: Path) -> float:
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``mailroom smtpd --port 0`` in ``workdir``."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "smtpd", "--port", "0"],
            env=env,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        self.port = 0
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("mailroom smtpd ended before it listened")
            found = _LISTENING.search(line)
            if found:
                self.port = int(found.group(1))
                break
        if not self.port:
            raise RuntimeError("mailroom smtpd did not say where it listens")
        # Read the rest all along, so a chatty server never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds the server has used: all its threads, and its event loop's thread
        alone (the writer's and the checkpointer's threads run mostly in SQLite, outside
        the GIL, on another core)."""
        pid = self.process.pid
        return _cpu(Path(f"/proc/{pid}/stat")), _cpu(Path(f"/proc/{pid}/task/{pid}/stat"))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


async def _client(
    port: int, key: str, client: int, count: int, context: ssl.SSLContext | None
) -> int:
    smtp = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=port,
        timeout=60,
        start_tls=context is not None,
        tls_context=context,
    )
    await smtp.connect()
    await smtp.login("bench", key)
    sent = 0
    for n in range(count):
        message = _message(client, n)
        await smtp.sendmail("app@example.com", [f"user{client}-{n}@example.com"], message)
        sent += 1
    await smtp.quit()
    return sent


async def _load(
    ports: list[int], key: str, clients: int, messages: int, context: ssl.SSLContext | None
) -> int:
    """``clients`` connections, spread over ``ports`` in turn."""
    results = await asyncio.gather(
        *(
            _client(ports[client % len(ports)], key, client, messages, context)
            for client in range(clients)
        )
    )
    return sum(results)


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if part < total % parts else 0) for part in range(parts)]


def _smtp_source(postfix: Postfix, ports: list[int], sessions: int, messages: int) -> int:
    """``smtp-source -s SESSIONS -d -m MESSAGES -l 4000 -c``: MESSAGES in all, shared by the
    sessions (one smtp-source a port, each with its share of both); each message its own
    transaction of one recipient. The number sent (all of them: smtp-source exits non-zero
    at the first reply that is not 2xx)."""
    running = []
    for port, share, count in zip(
        ports, _shares(sessions, len(ports)), _shares(messages, len(ports)), strict=True
    ):
        command = [
            str(postfix.source),
            *("-s", str(share), "-d", "-m", str(count), "-l", "4000", "-c"),
            *("-f", _SENDER, "-t", _RECIPIENT, "-M", "bench.example.com"),
            f"127.0.0.1:{port}",
        ]
        running.append(
            subprocess.Popen(
                command, env=postfix.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        )
    for source in running:
        _, errors = source.communicate(timeout=600)
        if source.returncode != 0:
            raise BenchSetupError(
                f"smtp-source failed ({source.returncode}): "
                f"{errors.decode(errors='replace')[-500:]}"
            )
    return messages


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stored(database: Path) -> tuple[int, int]:
    """Messages in the outbox, and the commits they took (a group commit gives every
    message of a commit the same ``created_at``)."""
    with sqlite3.connect(database) as connection:
        count, commits = connection.execute(
            "select count(*), count(distinct created_at) from mailroom_messages"
        ).fetchone()
    return int(count), int(commits)


def _py_spy(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy (``pip install py-spy``) recording ``pid`` until it gets SIGINT."""
    spy = Path(sys.executable).with_name("py-spy")
    shape = "flamegraph" if output.endswith(".svg") else "raw"
    recording = ["record", "--pid", str(pid), "--output", output, "--rate", "200"]
    return subprocess.Popen(
        [str(spy), *recording, "--nonblocking", "--gil", "--format", shape],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass(frozen=True)
class Measured:
    sent: int
    expected: int
    """Acknowledged, with the warm-up's."""
    seconds: float
    server_cpu: float
    loop_cpu: float
    client_cpu: float
    stored: int
    commits: int
    log_peak: int
    """The largest the database's write-ahead log was seen during the load, in bytes."""


class _LogWatch:
    """Samples the size of the outbox's write-ahead log every 0.1 s while the load runs: the
    server's checkpoints must keep it bounded however long the load lasts."""

    def __init__(self, database: Path) -> None:
        self._log = Path(f"{database}-wal")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _LogWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, self._log.stat().st_size)
            except FileNotFoundError:
                continue


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument(
        "--client",
        choices=("smtp-source", "aiosmtplib"),
        default="smtp-source",
        help="smtp-source: C, no AUTH, a trusted network; aiosmtplib: Python, AUTH PLAIN",
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--messages", type=int, default=1500, help="per client")
    parser.add_argument("--tls", action="store_true", help="STARTTLS before AUTH (aiosmtplib)")
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="mailroom smtpd processes on the one database, each on a port of its own, the "
        "clients spread over them",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the database goes (default: $TMPDIR)"
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy's profile of the server under load (.svg: a flame graph, else stacks)",
    )
    args = parser.parse_args()
    if args.client == "smtp-source" and args.tls:
        parser.error("--tls needs --client aiosmtplib (smtp-source has no STARTTLS)")
    return args


def _measure(args: argparse.Namespace, postfix: Postfix | None) -> Measured:
    warm_up = 100
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-smtpd-", dir=args.dir) as folder:
        workdir = Path(folder)
        extra, context = _certificate(workdir) if args.tls else ({}, None)
        if postfix is not None:
            extra["SMTPD_TRUSTED_NETWORKS"] = TRUSTED
        # Every client comes from 127.0.0.1: room for as many as asked for, warm-up included.
        extra["SMTPD_MAX_CONNECTIONS"] = str(max(200, args.clients + 10))
        extra["SMTPD_MAX_CONNECTIONS_PER_CLIENT"] = str(max(50, args.clients + 10))
        env = _env(workdir, extra)
        _mailroom("db", "upgrade", env=env, cwd=workdir)
        created = _mailroom("apikeys", "create", "--name", "bench", env=env, cwd=workdir)
        found = re.search(r"mrk_\S+", created)
        assert found is not None, created
        key = found.group(0)
        servers = [Server(workdir, env) for _ in range(args.servers)]
        ports = [server.port for server in servers]
        try:
            log(f"warming up on port(s) {', '.join(map(str, ports))}")
            if postfix is not None:
                warmed = _smtp_source(postfix, ports, 2 * len(ports), warm_up)
            else:
                each = max(1, warm_up // (2 * len(ports)))
                warmed = run(_load(ports, key, 2 * len(ports), each, context))
            total = args.clients * args.messages
            log(f"{args.client}: {args.clients} clients, {total} messages of ~4 KB in all")
            cpu_before = [server.cpu_seconds() for server in servers]
            spy = _py_spy(servers[0].process.pid, args.profile) if args.profile else None
            started = time.perf_counter()
            client_cpu = time.process_time() + _children_cpu()
            with _LogWatch(workdir / "mailroom.db") as log_watch:
                if postfix is not None:
                    sent = _smtp_source(postfix, ports, args.clients, total)
                else:
                    sent = run(_load(ports, key, args.clients, args.messages, context))
            elapsed = time.perf_counter() - started
            client_cpu = time.process_time() + _children_cpu() - client_cpu
            cpu_after = [server.cpu_seconds() for server in servers]
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
        finally:
            for server in servers:
                server.stop()
        stored, commits = _stored(workdir / "mailroom.db")
    return Measured(
        sent=sent,
        expected=sent + warmed,
        seconds=elapsed,
        server_cpu=sum(
            after[0] - before[0] for after, before in zip(cpu_after, cpu_before, strict=True)
        ),
        loop_cpu=sum(
            after[1] - before[1] for after, before in zip(cpu_after, cpu_before, strict=True)
        ),
        client_cpu=client_cpu,
        stored=stored,
        commits=commits,
        log_peak=log_watch.peak,
    )


def main() -> None:
    args = _arguments()
    postfix = ensure_postfix(CACHE) if args.client == "smtp-source" else None
    load_before = os.getloadavg()
    got = _measure(args, postfix)
    load_after = os.getloadavg()
    rate = got.sent / got.seconds
    if postfix is not None:
        shape = "smtp-source (C clients), no AUTH, a trusted network (SMTPD_TRUSTED_NETWORKS)"
    else:
        shape = "aiosmtplib (Python clients), AUTH PLAIN" + (" after STARTTLS" if args.tls else "")
    per_message = {
        "server": got.server_cpu / got.sent * 1e6,
        "loop": got.loop_cpu / got.sent * 1e6,
        "clients": got.client_cpu / got.sent * 1e6,
    }
    figure = Figure(
        "smtpd",
        "submitted, " + shape,
        rate,
        "msg/s",
        target=f">= {TARGET:,.0f} msg/s",
        ok=rate >= TARGET and got.stored == got.expected,
        extra={
            "client": args.client,
            "auth": postfix is None,
            "tls": bool(args.tls),
            "clients": args.clients,
            "servers": args.servers,
            "messages": got.sent,
            "seconds": round(got.seconds, 2),
            "server_cpu_us_per_message": round(per_message["server"], 1),
            "event_loop_cpu_us_per_message": round(per_message["loop"], 1),
            "client_cpu_us_per_message": round(per_message["clients"], 1),
            "stored": got.stored,
            "messages_per_commit": round(got.stored / got.commits, 1),
            "log_peak_mb": round(got.log_peak / 1e6, 1),
            "cores": os.cpu_count(),
            "load_before": round(load_before[0], 2),
            "load_after": round(load_after[0], 2),
        },
    )
    print(f"clients: {shape}; {args.servers} server process(es)")
    print(f"submitted {got.sent} messages in {got.seconds:.2f} s: {rate:,.0f} msg/s")
    print(
        f"  server CPU: {per_message['server']:.0f} µs per message, "
        f"{per_message['loop']:.0f} of them in its event loop's thread"
    )
    print(f"  clients' CPU: {per_message['clients']:.0f} µs per message")
    print(f"  commits: {got.commits}, {got.stored / got.commits:.1f} messages each on average")
    print(f"  in the outbox: {got.stored} of {got.expected} acknowledged")
    print(f"  write-ahead log: {got.log_peak / 1e6:,.1f} MB at its largest")
    print(f"  load average (1 min): {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(json.dumps(figure.as_json()))
    if got.stored != got.expected:
        sys.exit("an acknowledged message is missing from the outbox")


if __name__ == "__main__":
    main()
