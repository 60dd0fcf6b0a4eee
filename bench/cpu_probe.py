"""CPU time per delivered message: a steadier figure than a rate on a busy machine.

    .venv/bin/python bench/cpu_probe.py [--messages 20000] [--processes 1] [--loop auto]

Queues copied ~4 KB rows in a fresh SQLite outbox, runs ``mailroom worker --once`` against
smtp-sink and prints the worker's user+system CPU seconds per message (children included),
next to the wall-clock rate.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import CACHE
from scenarios import worker_env
from sink import Sink, ensure_postfix
from workload import fill_backlog, remove_sqlite, settings_for, sqlite_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], help="NAME=value, a setting")
    parser.add_argument(
        "--transport",
        "--backend",  # its earlier name, as the README's figures were taken with
        default="smtp",
        help="MAILROOM_TRANSPORT; null: no network, the worker and database alone",
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    postfix = ensure_postfix(CACHE)
    with tempfile.TemporaryDirectory(prefix="mailroom-cpu-") as tmp:
        workdir = Path(tmp)
        url = args.database_url or sqlite_url(workdir, "outbox.db")
        fill_backlog(settings_for(url), args.messages)
        sink = Sink(postfix, workdir).start()
        try:
            env = {
                **worker_env(url, sink),
                "WORKER_PROCESSES": str(args.processes),
                "WORKER_EVENT_LOOP": args.loop,
                "WORKER_CONCURRENCY": str(args.concurrency),
                "MAILROOM_TRANSPORT": args.transport,
                **dict(item.split("=", 1) for item in args.set),
            }
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "mailroom", "worker", "--once"],
                env=env,
                cwd=workdir,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            seconds = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            counted = sink.wait_quiet() if args.transport == "smtp" else args.messages
        finally:
            sink.stop()
            if args.database_url is None:
                remove_sqlite(url)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"{counted} sent in {seconds:.2f} s = {counted / seconds:,.0f} msg/s; worker CPU "
        f"{cpu:.2f} s = {cpu / max(counted, 1) * 1e6:.0f} us/msg "
        f"(processes {args.processes}, loop {args.loop}, concurrency {args.concurrency})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
