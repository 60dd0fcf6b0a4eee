"""Profile the end-to-end worker with py-spy: where does a delivering worker spend its time?

    .venv/bin/pip install py-spy     # a tool for this script only, not a project dependency
    .venv/bin/python bench/profile_worker.py [--seconds 10] [--messages 50000]

Queues ``--messages`` copied ~4 KB rows in a SQLite outbox, starts smtp-sink, and records
``python -m mailroom worker --once`` under ``py-spy record`` (idle samples excluded). Prints
the hottest functions by own time and by inclusive time, as shares of the active samples,
and the share of each thread. ``--gil`` samples only the thread holding the GIL: where the
CPU time of Python code goes, without threads that wait for the GIL or a lock.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from common import log
from run import CACHE
from scenarios import worker_env
from sink import Sink, ensure_postfix
from workload import fill_backlog, settings_for, sqlite_url

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def _name(frame: str) -> str:
    """``send (aiosmtplib/smtp.py:123)`` → ``send (aiosmtplib/smtp.py)``, shortened."""
    found = _FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    path = found["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{found['func']} ({path})"


def summarise(raw: Path, top: int) -> None:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = frames[0], [_name(f) for f in frames[1:]]
        total += count
        threads[re.sub(r"\(\d+\)|0x[0-9a-f]+", "", thread).strip()] += count
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        print("no samples recorded")
        return
    print(f"{total} active samples")
    print("\nby thread:")
    for name, count in threads.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    print(f"\ntop {top} by own time:")
    for name, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print(f"\ntop {top} by inclusive time:")
    for name, count in inclusive.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--gil", action="store_true", help="Sample only the thread holding the GIL (CPU work)."
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    postfix = ensure_postfix(CACHE)
    with tempfile.TemporaryDirectory(prefix="mailroom-profile-") as scratch:
        workdir = Path(scratch)
        url = sqlite_url(workdir, "profile.db")
        fill_backlog(settings_for(url), args.messages)
        raw = workdir / "profile.txt"
        with Sink(postfix, workdir) as sink:
            before = sink.count()
            log(f"profiling the worker for {args.seconds}s ({args.messages:,} queued)")
            subprocess.run(
                [
                    py_spy,
                    "record",
                    "--format",
                    "raw",
                    "--threads",
                    *(["--gil"] if args.gil else []),
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(args.seconds),
                    "--output",
                    str(raw),
                    "--",
                    sys.executable,
                    "-m",
                    "mailroom",
                    "worker",
                    "--once",
                ],
                env=worker_env(url, sink),
                cwd=workdir,
                check=False,
                stdout=subprocess.DEVNULL,
            )
            log(f"the sink counted {sink.wait_quiet() - before:,} messages during the profile")
        summarise(raw, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
