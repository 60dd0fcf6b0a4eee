"""The claim's statement on a real SQLite file and a real PostgreSQL: it must read the claim
index, whichever indexes the message search adds beside it."""

from __future__ import annotations

import time

from mailroom.message import Message
from mailroom.outbox.lease_queries import claim_due, claim_plan, recover_expired_leases
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import TEST_STREAM, Status


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


def test_a_test_email_whose_sender_stopped_is_failed_not_sent_again(outbox: Outbox) -> None:
    # The command that sent it died between the commit and the outcome: a test email is tried
    # once, so the sweep of expired leases fails it instead of handing it to a worker.
    now = time.time()
    test_pk = outbox.start_send_now(
        Message(to="ops@example.com", subject="test", text="hi"),
        stream=TEST_STREAM,
        lease_token="gone",
        lease_until=now - 1,
    ).id
    other_pk = outbox.start_send_now(
        Message(to="ops@example.com", subject="real", text="hi"),
        stream="transactional",
        lease_token="gone",
        lease_until=now - 1,
    ).id
    with outbox.engine.begin() as connection:
        recovered = recover_expired_leases(connection, now)
        later = time.time() + 1  # both were due when they were committed, after ``now``
        claimed = claim_due(
            connection, now=later, limit=10, lease_token="w", lease_until=later + 60
        )
    assert [pk for pk, _ in recovered] == [other_pk]
    assert [message.id for message in claimed] == [other_pk]
    test_email = outbox.get(test_pk)
    assert test_email is not None
    assert test_email.status is Status.FAILED
    assert test_email.last_error is not None
    assert "tried only once" in test_email.last_error
