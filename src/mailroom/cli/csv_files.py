"""Opening a CSV file an import command was given: what ``mailroom suppressions import`` and
``mailroom lists import`` share."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from mailroom.cli.base import CommandError
from mailroom.cli.render import printable

__all__ = ["reading_csv"]


@contextmanager
def reading_csv(path: str) -> Iterator[IO[str]]:
    """The file to import (``-``: stdin) as text for :mod:`csv`: UTF-8 (a BOM, as
    spreadsheets write, skipped), bytes that are not UTF-8 kept to be reported (see
    :mod:`mailroom.csv_lines`)."""
    encoding, errors = "utf-8-sig", "surrogateescape"
    if path == "-":
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding=encoding, errors=errors, newline="")
        try:
            yield stream
        finally:
            stream.detach()
        return
    try:
        file = open(path, encoding=encoding, errors=errors, newline="")  # noqa: SIM115 - closed below, errors made one line
    except OSError as exc:
        raise CommandError(f"cannot read {printable(path)}: {exc.strerror}") from None
    with file:
        yield file
