"""The claim's statement on a real SQLite file and a real PostgreSQL: it must read the claim
index, whichever indexes the message search adds beside it."""

from __future__ import annotations

import time

from mailroom.message import Message
from mailroom.outbox.lease_queries import claim_plan
from mailroom.outbox.store import Outbox


def test_the_claim_reads_the_claim_index(outbox: Outbox) -> None:
    # SQLite once took (status, created_at, id), the search's index, for the claim: it then
    # read and sorted every due row on each claim, and a 15,000-message backlog cost the
    # worker 40 % more CPU per message (bench/cpu_probe.py).
    for i in range(20):
        outbox.send(Message(to=f"user{i}@example.com", subject="hi", text="hi"))
    with outbox.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Twenty rows: PostgreSQL rightly reads them all unless told not to.
            connection.exec_driver_sql("SET enable_seqscan = off")
            connection.exec_driver_sql("SET enable_bitmapscan = off")
        plan = " ".join(claim_plan(connection, now=time.time()))
    assert "ix_mailroom_messages_status_priority_due_at" in plan, plan
