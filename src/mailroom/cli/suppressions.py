"""``mailroom suppressions list|add|remove|import|export``: the suppression list from the
shell.

Every change goes through :func:`mailroom.consent.suppress` and
:func:`~mailroom.consent.unsuppress`, so each is written to the consent log (source ``cli``)
exactly as a change made through the API is. Listing and export page through the list by
entry id (:func:`mailroom.consent.list_suppressions`), so neither holds the whole list.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import IO

import click

from mailroom.cli.base import CommandError, config_option, existing_outbox, main
from mailroom.cli.csv_files import reading_csv
from mailroom.cli.render import printable
from mailroom.consent import list_suppressions, suppress, unsuppress
from mailroom.consent import queries as q
from mailroom.consent.listing import MAX_PAGE, SuppressionEntry, all_suppressions
from mailroom.consent.scopes import SCOPE_ALL, check_scope, normalize_address
from mailroom.consent.suppression_csv import (
    Rejected,
    check_note,
    export_header,
    export_row,
    export_writer,
    parse_expiry,
    read_rows,
)
from mailroom.consent.suppression_import import import_rows
from mailroom.errors import MessageError
from mailroom.outbox.presentation import clip, utc_time
from mailroom.outbox.vocabulary import SuppressionReason

SOURCE = "cli"
"""The consent log's ``source`` for a change made here."""

_SCOPE_HELP = "all, type:<notification type> or list:<list name>."


def _scope(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_scope(value)
    except MessageError as exc:
        raise click.BadParameter(str(exc).partition(": ")[2], ctx=ctx, param=param) from None


@main.group("suppressions")
def suppressions_group() -> None:
    """The suppression list: who is never mailed (for all mail, a type or a list)."""


@suppressions_group.command("list")
@click.option("--scope", default=None, callback=_scope, help=f"Only this scope: {_SCOPE_HELP}")
@click.option("--search", default=None, help="Only addresses containing this text.")
@click.option(
    "--limit", type=click.IntRange(1, MAX_PAGE), default=50, show_default=True, help="Per page."
)
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=None,
    metavar="ID",
    help="Start after the entry with this id (the next page's cursor, as printed).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def suppressions_list(
    ctx: click.Context,
    *,
    scope: str | None,
    search: str | None,
    limit: int,
    after: int | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Entries, oldest first, a page at a time (expired ones too, marked)."""
    with existing_outbox(ctx, config_path) as engine, engine.connect() as connection:
        page = list_suppressions(connection, after=after, limit=limit, search=search, scope=scope)
    following = page[-1].id if len(page) == limit else None
    if as_json:
        entries = [asdict(entry) for entry in page]
        click.echo(json.dumps({"suppressions": entries, "next_after": following}, indent=2))
        return
    if not page:
        click.echo("no entries" + (" after that one" if after is not None else ""))
        return
    _table(page, time.time())
    if following is not None:
        again = [f"--after {following}", f"--limit {limit}"]
        again += [f"--scope {printable(scope)}"] if scope else []
        again += [f"--search {printable(search)}"] if search else []
        click.echo(f"\nmore: mailroom suppressions list {' '.join(again)}")


def _table(page: list[SuppressionEntry], now: float) -> None:
    header = ("ID", "ADDRESS", "SCOPE", "REASON", "CREATED (UTC)", "EXPIRES (UTC)", "NOTE")
    cells = [
        (
            str(e.id),
            printable(e.address),
            printable(e.scope),
            e.reason.value,
            utc_time(e.created_at),
            utc_time(e.expires_at) + ("" if e.active(now) else " (expired)"),
            clip(e.note or "", 40, printable) or "-",
        )
        for e in page
    ]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    for line in (header, *cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


@suppressions_group.command("add")
@click.argument("address")
@click.option("--scope", default=SCOPE_ALL, show_default=True, callback=_scope, help=_SCOPE_HELP)
@click.option(
    "--reason",
    type=click.Choice([reason.value for reason in SuppressionReason]),
    default=SuppressionReason.MANUAL.value,
    show_default=True,
)
@click.option(
    "--expires",
    default=None,
    help="When it stops applying: +30d (or +12h, +2w), 2026-12-31 or 2026-12-31T18:00Z. "
    "Default: never.",
)
@click.option("--note", default=None, help="Why, for whoever reads the list later.")
@config_option
@click.pass_context
def suppressions_add(
    ctx: click.Context,
    address: str,
    *,
    scope: str,
    reason: str,
    expires: str | None,
    note: str | None,
    config_path: str | None,
) -> None:
    """Put ADDRESS on the suppression list (an existing entry takes the new reason)."""
    now = time.time()
    expires_at = parse_expiry(expires or "", now, field="--expires", future_only=True)
    check_note(note, field="--note")
    normalized = normalize_address(address)
    with existing_outbox(ctx, config_path) as engine:
        suppress(
            engine,
            normalized,
            SuppressionReason(reason),
            scope=scope,
            expires_at=expires_at,
            note=note,
            source=SOURCE,
            now=now,
        )
    until = f" until {utc_time(expires_at)} UTC" if expires_at is not None else ""
    click.echo(f"suppressed {printable(normalized)} for {printable(scope)} ({reason}){until}")


@suppressions_group.command("remove")
@click.argument("address")
@click.option("--scope", default=SCOPE_ALL, show_default=True, callback=_scope, help=_SCOPE_HELP)
@config_option
@click.pass_context
def suppressions_remove(
    ctx: click.Context, address: str, scope: str, config_path: str | None
) -> None:
    """Take ADDRESS off the suppression list for one scope: mail may go to it again."""
    normalized = normalize_address(address)
    with existing_outbox(ctx, config_path) as engine:
        removed = unsuppress(engine, normalized, scope=scope, source=SOURCE)
        with engine.connect() as connection:
            others = sorted(e.scope for e in q.list_suppressions(connection, normalized))
    shown = printable(normalized)
    if removed:
        click.echo(f"removed {shown} from the suppression list for {printable(scope)}")
    else:
        click.echo(f"{shown} was not on the suppression list for {printable(scope)}; no change")
    if others:
        click.echo(f"{shown} is still suppressed for: {printable(', '.join(others))}")


@suppressions_group.command("import")
@click.argument("path", metavar="FILE.csv", type=click.Path(dir_okay=False, allow_dash=True))
@config_option
@click.pass_context
def suppressions_import(ctx: click.Context, path: str, config_path: str | None) -> None:
    """Add the entries of a CSV file: address[,scope,reason,expires_at,note] (a first row of
    column names only is a header, which may name them in any order). A cell starting with
    ' before =, +, -, @, a TAB or a CR (as export writes it, so that a spreadsheet does not
    run it) is read without that one '. Every row that cannot be imported is listed on
    stderr with its line and why; the others are imported, 1000 rows a commit. Exit
    status 1 if any row was rejected."""
    now = time.time()
    rejected = 0

    def report(row: Rejected) -> None:
        nonlocal rejected
        rejected += 1
        click.echo(f"{printable(path)}:{row.line}: {printable(row.why)}", err=True)

    with existing_outbox(ctx, config_path) as engine, reading_csv(path) as stream:
        imported = import_rows(
            engine, read_rows(stream, now), now=now, source=SOURCE, report=report
        )
    click.echo(f"imported {imported} entries; rejected {rejected} rows")
    if rejected:
        raise CommandError(
            f"{rejected} rows of {printable(path)} were not imported (each is listed above "
            "with why); fix them and import the file again (imported rows are kept as they are)"
        )


@suppressions_group.command("export")
@click.argument(
    "path", metavar="[FILE|-]", default="-", type=click.Path(dir_okay=False, allow_dash=True)
)
@click.option("--scope", default=None, callback=_scope, help=f"Only this scope: {_SCOPE_HELP}")
@config_option
@click.pass_context
def suppressions_export(
    ctx: click.Context, path: str, scope: str | None, config_path: str | None
) -> None:
    """Write the whole list as CSV (to FILE, or stdout), in the columns import reads. A cell
    starting with =, +, -, @, a TAB or a CR is written with a ' before it, so that a
    spreadsheet shows it rather than runs it; import takes that ' off again."""
    count = 0
    with existing_outbox(ctx, config_path) as engine, engine.connect() as connection:
        entries = all_suppressions(connection, scope=scope)
        with _writing(path) as out:
            count = _write(out, entries)
    if path != "-":
        click.echo(f"exported {count} entries to {printable(path)}", err=True)


@contextmanager
def _writing(path: str) -> Iterator[IO[str]]:
    """Where export writes (``-``: stdout). A file is written beside itself and renamed
    into place when complete, so a failed export never leaves half a list behind."""
    if path == "-":
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        try:
            yield stream
        finally:
            stream.flush()
            stream.detach()
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as file:
            yield file
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CommandError(f"cannot write {printable(path)}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)


def _write(out: IO[str], entries: Iterable[SuppressionEntry]) -> int:
    writer = export_writer(out)
    writer.writerow(export_header())
    count = 0
    for entry in entries:
        writer.writerow(export_row(entry))
        count += 1
    return count
