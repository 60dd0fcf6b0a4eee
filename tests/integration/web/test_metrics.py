"""``/metrics`` of a real ``mailroom serve`` process: Prometheus' text format, every value
read from the database, no address and no secret in it."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import insert

from mailroom.config import load_settings
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.schema import events
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status
from mailroom.web.metrics import DURATION_BUCKETS
from support.service import ServiceProcess

SECRET = "metrics-test-secret-key-that-must-never-show-0123456789"


def scrape(url: str) -> tuple[str, dict[str, list[Sample]]]:
    answer = httpx.get(f"{url}/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f.samples for f in text_string_to_metric_families(answer.text)}
    return answer.text, families


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_a_fresh_outbox_scrapes_with_every_series_at_zero(tmp_path: Path) -> None:
    with ServiceProcess({"SECRET_KEY": SECRET}, ["--no-worker"], cwd=tmp_path) as service:
        text, families = scrape(service.url)
    assert value(families["mailroom_attempts"], "mailroom_attempts_total", outcome="sent") == 0
    assert value(families["mailroom_events"], "mailroom_events_total", type="opened") == 0
    assert families["mailroom_queue_messages"] == []  # no stream has a message yet
    oldest = families["mailroom_queue_oldest_due_seconds"]
    assert value(oldest, "mailroom_queue_oldest_due_seconds") == 0
    histogram = families["mailroom_attempt_duration_seconds"]
    assert value(histogram, "mailroom_attempt_duration_seconds_count") == 0
    assert "process_resident_memory_bytes" in families
    assert SECRET not in text


def test_the_figures_follow_what_the_worker_did(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "SECRET_KEY": SECRET,
        "MAILROOM_TRANSPORT": "file",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "WORKER_POLL_INTERVAL": "0.05",
    }
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    try:
        with ServiceProcess(env, cwd=tmp_path) as service:
            outbox.send_many(
                [Message(to=[f"person{i}@example.com"], subject="s", text="t") for i in range(3)]
            )
            outbox.send(
                Message(to=["later@example.com"], subject="s", text="t"),
                stream="bulk",
                send_at=datetime.now(UTC) + timedelta(hours=1),
            )
            deadline = time.monotonic() + 30
            while outbox.counts()[Status.SENT] < 3:
                assert time.monotonic() < deadline, "the worker did not send"
                time.sleep(0.05)
            with outbox.engine.begin() as connection:  # as the tracking endpoints will
                connection.execute(
                    insert(events),
                    [{"message_pk": None, "recipient": "x@example.com", "type": "opened", "at": 1}],
                )
            text, families = scrape(service.url)
    finally:
        outbox.dispose()
    queue = families["mailroom_queue_messages"]
    assert value(queue, "mailroom_queue_messages", status="sent", stream="transactional") == 3
    assert value(queue, "mailroom_queue_messages", status="scheduled", stream="bulk") == 1
    assert value(queue, "mailroom_queue_messages", status="queued", stream="transactional") == 0
    attempts = families["mailroom_attempts"]
    assert value(attempts, "mailroom_attempts_total", outcome="sent") == 3
    assert value(attempts, "mailroom_attempts_total", outcome="failed") == 0
    assert value(families["mailroom_events"], "mailroom_events_total", type="opened") == 1
    histogram = families["mailroom_attempt_duration_seconds"]
    assert value(histogram, "mailroom_attempt_duration_seconds_count") == 3
    assert value(histogram, "mailroom_attempt_duration_seconds_bucket", le="+Inf") == 3
    bounds = [s for s in histogram if s.name.endswith("_bucket")]
    assert len(bounds) == len(DURATION_BUCKETS) + 1
    cumulative = [s.value for s in bounds]
    assert cumulative == sorted(cumulative)
    assert value(histogram, "mailroom_attempt_duration_seconds_sum") > 0
    assert "@" not in text  # no address in any label or value
    assert SECRET not in text


def test_a_scrape_neither_waits_for_nor_holds_up_a_writer(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}"}
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as service:
        writer = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # the write lock, as a worker recording holds it
            started = time.monotonic()
            _text, families = scrape(service.url)
            took = time.monotonic() - started
            writer.execute("DELETE FROM mailroom_streams")  # the writer is not held up either
            writer.execute("COMMIT")
        finally:
            writer.close()
    assert took < 3
    assert value(families["mailroom_attempts"], "mailroom_attempts_total", outcome="sent") == 0
