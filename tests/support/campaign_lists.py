"""Mailing lists for campaign tests, written straight into the tables (the CSV import has
tests of its own)."""

from __future__ import annotations

import time

from sqlalchemy import Engine, insert

from mailroom.outbox.schema import contacts, mailing_lists


def make_list(engine: Engine, name: str, count: int, *, start: int = 0) -> int:
    """A list of ``count`` contacts ``reader<n>@example.com`` named "Reader <n>", each with
    the attribute ``plan`` (``pro`` for odd n, else ``free``); its id."""
    now = time.time()
    with engine.begin() as connection:
        list_id = int(
            connection.execute(
                insert(mailing_lists)
                .values(name=name, created_at=now)
                .returning(mailing_lists.c.id)
            ).scalar_one()
        )
        if count:
            connection.execute(
                insert(contacts),
                [
                    {
                        "list_id": list_id,
                        "address": f"reader{n}@example.com",
                        "name": f"Reader {n}",
                        "attributes": {"plan": "pro" if n % 2 else "free"},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in range(start, start + count)
                ],
            )
    return list_id
