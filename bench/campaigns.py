"""Bulk campaigns' benchmarks (issue #14), on SQLite:

    .venv/bin/python bench/campaigns.py [--sizes 10000,100000,1000000] [--compose 20000]
                                        [--e2e 20000] [--skip-e2e]

- **fan-out**: a synthetic list of each size goes into a campaign's ledger, page by page with
  its checkpoint (recipients a second), in a process of its own whose peak memory (its
  high-water RSS) is reported: it must stay flat however large the audience. Then the first
  ``--compose`` recipients are composed and queued into the outbox, batch by batch (the part
  of the way into the outbox that is per recipient).
- **end to end**: ``--e2e`` messages queued as plain outbox rows and sent by ``mailroom worker
  --once`` to Postfix's smtp-sink, then a campaign to a list of as many contacts sent by the
  same command (fan-out, composition and sending together), in the same run: the campaign's
  rate as a fraction of the plain one (issue 14 asks 0.9).

Progress goes to stderr; stdout gets the figures, then one JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Figure, log
from mailroom.campaigns import fanout
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import CampaignDraft, Campaigns
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from run import CACHE
from scenarios import run_worker
from sink import Sink, ensure_postfix
from workload import BODY, fill_backlog, settings_for

CAMPAIGN_ENV = {
    "DEFAULT_FROM_EMAIL": "Mailroom Bench <bench@example.com>",
    "PUBLIC_BASE_URL": "https://mail.example.com",
    "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnop",
    "ORGANIZATION_POSTAL_ADDRESS": "Mailroom Bench, 1 Main St, Springfield",
}
FANOUT_TARGET = 20_000.0  # recipients a second
E2E_TARGET = 0.9
# About the benchmark message's size: a heading and the ~4 KB body, one merge field.
CAMPAIGN_BODY = (
    "<html><body><h1>Hello {{ contact.name }}</h1>"
    + "".join(f"<p>{line}</p>" for line in BODY.splitlines() if line.strip())
    + '<p><a href="https://example.com/read">Read more</a></p></body></html>'
)


def make_list(path: Path, count: int) -> None:
    """``count`` contacts written with sqlite3 directly (the import has its own bench)."""
    connection = sqlite3.connect(path)
    now = time.time()
    with connection:
        connection.execute(
            "INSERT INTO mailroom_lists (name, created_at) VALUES ('bench', ?)", (now,)
        )
        for start in range(0, count, 50_000):
            connection.executemany(
                "INSERT INTO mailroom_contacts (list_id, address, name, attributes, created_at, "
                'updated_at) VALUES (1, ?, ?, \'{"plan": "pro"}\', ?, ?)',
                (
                    (f"user{n}@example.com", f"User {n}", now, now)
                    for n in range(start, min(start + 50_000, count))
                ),
            )
    connection.close()


def prepared(folder: Path, count: int) -> tuple[str, int]:
    """A database with a list of ``count`` contacts and a started campaign to it."""
    url = f"sqlite:///{folder / 'bench.db'}"
    settings = settings_for(url, **CAMPAIGN_ENV, CAMPAIGN_QUEUE_AHEAD=str(10**9))
    outbox = Outbox(settings)
    database.upgrade(outbox.engine)
    make_list(folder / "bench.db", count)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(
        CampaignDraft(
            name="Bench",
            audience="list:bench",
            subject="News for {{ contact.name }}",
            from_email="Mailroom Bench <bench@example.com>",
            body=CAMPAIGN_BODY,
        )
    )
    campaigns.start(campaign_id)
    outbox.dispose()
    return url, campaign_id


def fanout_child(url: str, campaign_id: int, compose: int) -> None:
    """In a process of its own: the ledger fan-out timed, then ``compose`` recipients
    composed and queued; one JSON line with the rates and the peak RSS."""
    settings = settings_for(url, **CAMPAIGN_ENV, CAMPAIGN_QUEUE_AHEAD=str(compose))
    outbox = Outbox(settings)
    started = time.perf_counter()
    added = 0
    while True:
        step = fanout.fan_out_page(outbox.engine, campaign_id)
        added += step.added
        if step.done:
            break
    ledger_seconds = time.perf_counter() - started
    peak_after_fanout = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runner = CampaignRunner(outbox, max_batches=compose // settings.EMAILS_PER_TASK)
    started = time.perf_counter()
    queued = runner.step().queued
    compose_seconds = time.perf_counter() - started
    outbox.dispose()
    print(
        json.dumps(
            {
                "recipients": added,
                "ledger_seconds": ledger_seconds,
                "ledger_rate": added / ledger_seconds,
                "peak_rss_kb_after_fanout": peak_after_fanout,
                "composed": queued,
                "compose_rate": queued / compose_seconds if compose_seconds else 0.0,
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def fanout_figures(sizes: list[int], compose: int) -> list[Figure]:
    figures = []
    peaks = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="mailroom-bench-fanout-") as folder:
            url, campaign_id = prepared(Path(folder), size)
            log(f"fan-out of {size:,} contacts")
            result = subprocess.run(
                [sys.executable, __file__, "--child", url, str(campaign_id), str(compose)],
                capture_output=True,
                text=True,
                check=True,
                timeout=3600,
            )
        got = json.loads(result.stdout.strip().splitlines()[-1])
        peaks.append(got["peak_rss_kb_after_fanout"])
        peak_mb = got["peak_rss_kb_after_fanout"] / 1024
        log(
            f"  ledger {got['ledger_rate']:,.0f}/s, peak RSS {peak_mb:.0f} MB; composed and "
            f"queued {got['composed']:,} at {got['compose_rate']:,.0f}/s"
        )
        figures.append(
            Figure(
                "campaign-fanout",
                f"{size:,} contacts into the ledger",
                got["ledger_rate"],
                "recipients/s",
                target=f">= {FANOUT_TARGET:,.0f} recipients/s",
                ok=got["ledger_rate"] >= FANOUT_TARGET,
                extra={
                    "contacts": size,
                    "peak_rss_mb": round(got["peak_rss_kb_after_fanout"] / 1024, 1),
                },
            )
        )
        figures.append(
            Figure(
                "campaign-compose",
                f"first {got['composed']:,} of {size:,} composed and queued into the outbox",
                got["compose_rate"],
                "recipients/s",
                target=f">= {FANOUT_TARGET:,.0f} recipients/s (into ledger and outbox)",
                ok=got["compose_rate"] >= FANOUT_TARGET,
                extra={"peak_rss_mb": round(got["peak_rss_kb"] / 1024, 1)},
            )
        )
    if len(peaks) > 1:
        spread = max(peaks) / min(peaks) - 1
        figures.append(
            Figure(
                "campaign-fanout",
                "peak memory, largest over smallest audience",
                spread * 100,
                "% more",
                target="within 20 %",
                ok=spread <= 0.2,
                extra={"peaks_mb": [round(p / 1024, 1) for p in peaks]},
            )
        )
    return figures


def e2e_figures(count: int) -> list[Figure]:
    postfix = ensure_postfix(CACHE)
    rates = {}
    for kind in ("plain", "campaign"):
        with tempfile.TemporaryDirectory(prefix=f"mailroom-bench-{kind}-") as folder:
            workdir = Path(folder)
            if kind == "plain":
                url = f"sqlite:///{workdir / 'bench.db'}"
                fill_backlog(settings_for(url), count)
            else:
                url, _ = prepared(workdir, count)
            log(f"e2e {kind}: {count:,} messages, mailroom worker --once")
            with Sink(postfix, workdir) as sink:
                run = run_worker(url, sink, workdir, once=True, extra_env=CAMPAIGN_ENV)
            if run.returncode != 0 or run.sink_counted != count:
                raise RuntimeError(
                    f"{kind}: exit {run.returncode}, sink counted {run.sink_counted}: {run.stderr}"
                )
            rates[kind] = count / run.seconds
            log(f"  {rates[kind]:,.0f} msg/s start to exit ({run.seconds:.1f} s)")
    ratio = rates["campaign"] / rates["plain"]
    return [
        Figure("campaign-e2e", "plain outbox, queued -> sent", rates["plain"], "msg/s"),
        Figure(
            "campaign-e2e",
            "campaign, list -> sent (fan-out, composition, sending)",
            rates["campaign"],
            "msg/s",
            ratio=ratio,
            ratio_to="the plain outbox in the same run",
            target=f">= {E2E_TARGET} x the plain outbox",
            ok=ratio >= E2E_TARGET,
        ),
    ]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        fanout_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--compose", type=int, default=20_000)
    parser.add_argument("--e2e", type=int, default=20_000)
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    figures = fanout_figures(sizes, args.compose)
    if not args.skip_e2e:
        figures += e2e_figures(args.e2e)
    for figure in figures:
        ratio = f" ({figure.ratio:.2f} x)" if figure.ratio is not None else ""
        print(f"{figure.bench}: {figure.metric}: {figure.value:,.0f} {figure.unit}{ratio}")
    for figure in figures:
        print(json.dumps(figure.as_json()))


if __name__ == "__main__":
    main()
