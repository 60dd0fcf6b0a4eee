"""Writing the rows of a suppression import: what ``mailroom suppressions import`` and the
admin page's CSV upload both call, so a file imports the same wherever it is given.

The rows come checked from :func:`mailroom.consent.suppression_csv.read_rows`; each one
that cannot be imported (refused there, or by the database here) is handed to ``report``
with its line and why, and the others are written :data:`IMPORT_BATCH` to a transaction,
each with its consent-log line (:func:`mailroom.consent.suppression.suppress_in`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError

from mailroom.consent.suppression import suppress_in
from mailroom.consent.suppression_csv import ImportRow, Rejected

__all__ = ["IMPORT_BATCH", "import_rows"]

IMPORT_BATCH = 1000
"""Rows an import writes per transaction: a commit per row made a large list take hours."""


def import_rows(
    engine: Engine,
    rows: Iterable[ImportRow | Rejected],
    *,
    now: float,
    source: str,
    report: Callable[[Rejected], None],
) -> int:
    """Write every importable row of ``rows`` (its consent log naming ``source``); hand
    each rejected one to ``report`` as it is met; return how many were imported."""
    imported = 0
    batch: list[ImportRow] = []
    for row in rows:
        if isinstance(row, Rejected):
            report(row)
            continue
        batch.append(row)
        if len(batch) >= IMPORT_BATCH:
            imported += _import_batch(engine, batch, now, source, report)
            batch = []
    return imported + _import_batch(engine, batch, now, source, report)


def _import_batch(
    engine: Engine,
    batch: list[ImportRow],
    now: float,
    source: str,
    report: Callable[[Rejected], None],
) -> int:
    """Write ``batch`` in one transaction; how many rows were imported. If the database
    refuses a row's values, the batch is written again a row per transaction, so that row
    is reported and the others are kept; any other database error ends the import (the
    batches before it are committed)."""
    if not batch:
        return 0
    try:
        with engine.begin() as connection:
            for row in batch:
                _import_one(connection, row, now, source)
        return len(batch)
    except (DataError, IntegrityError):
        pass
    imported = 0
    for row in batch:
        try:
            with engine.begin() as connection:
                _import_one(connection, row, now, source)
        except (DataError, IntegrityError) as exc:
            report(
                Rejected(str(row.line), f"{row.address!r}: the database refused it ({exc.orig})")
            )
        else:
            imported += 1
    return imported


def _import_one(connection: Connection, row: ImportRow, now: float, source: str) -> None:
    suppress_in(
        connection,
        row.address,
        row.reason,
        scope=row.scope,
        expires_at=row.expires_at,
        note=row.note,
        source=source,
        now=now,
    )
