"""``mailroom lists [list]|create|show|delete|add|remove|import``: mailing lists and their
contacts from the shell, through the same operations the API calls
(:mod:`mailroom.campaigns.lists`).

``import`` streams the file (:mod:`mailroom.campaigns.contacts_import`) and ends with status
0 when every row was imported, :data:`EXIT_ROWS_REJECTED` when some were rejected (the others
are in the list; each rejected one was named), and :data:`EXIT_FILE_REFUSED` when the file as
a whole was refused (no such file, no header, wrong columns): nothing was imported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import click
from sqlalchemy import Engine

from mailroom.campaigns.contacts import KEEP, Contact, Keep
from mailroom.campaigns.contacts_csv import ContactsFile, CsvFileRefusedError
from mailroom.campaigns.contacts_import import ImportResult, import_contacts
from mailroom.campaigns.lists import (
    ListNotFoundError,
    MailingList,
    add_contact,
    all_lists,
    check_list_name,
    contact_page,
    create_list,
    delete_list,
    find_list,
    remove_contact,
)
from mailroom.cli.base import CommandError, config_option, existing_outbox, main
from mailroom.cli.csv_files import reading_csv
from mailroom.cli.render import printable
from mailroom.consent.scopes import normalize_address
from mailroom.csv_lines import Rejected
from mailroom.errors import MessageError
from mailroom.outbox.presentation import clip, utc_time

EXIT_ROWS_REJECTED = 1
"""``import``: some rows were rejected (each named); the others were imported."""
EXIT_FILE_REFUSED = 2
"""``import``: the file was refused as a whole; nothing was imported."""
_SHOWN = 20
NEWLINE = "\n"


class _FileRefusedError(CommandError):
    exit_code = EXIT_FILE_REFUSED


def _list_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_list_name(value)
    except MessageError as exc:
        raise click.BadParameter(str(exc).partition(": ")[2], ctx=ctx, param=param) from None


def _attrs(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for item in value:
        key, equals, text = item.partition("=")
        if not equals:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx=ctx, param=param)
        attributes[key.strip()] = text
    return attributes


def _json_list(mailing_list: MailingList) -> dict[str, Any]:
    return {**asdict(mailing_list), "scope": mailing_list.scope}


def _missing(name: str) -> CommandError:
    return CommandError(
        f"there is no mailing list named {printable(name)}; see them with `mailroom lists`, "
        f"make it with `mailroom lists create {printable(name)}`"
    )


@main.group("lists", invoke_without_command=True)
@click.pass_context
def lists_group(ctx: click.Context) -> None:
    """Mailing lists and their contacts (what campaigns are sent to); alone: `lists list`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(lists_list)


@lists_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def lists_list(ctx: click.Context, as_json: bool = False, config_path: str | None = None) -> None:
    """Every list, by name, with how many contacts it has."""
    with existing_outbox(ctx, config_path) as engine, engine.connect() as connection:
        found = all_lists(connection)
    if as_json:
        click.echo(json.dumps({"lists": [_json_list(item) for item in found]}, indent=2))
        return
    if not found:
        click.echo("no mailing lists; make one with: mailroom lists create NAME")
        return
    header = ("NAME", "CONTACTS", "CREATED (UTC)", "DESCRIPTION")
    cells = [
        (
            item.name,
            f"{item.contacts:,}",
            utc_time(item.created_at),
            clip(item.description or "", 50, printable) or "-",
        )
        for item in found
    ]
    _table(header, cells)


def _table(header: tuple[str, ...], cells: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    for line in (header, *cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


@lists_group.command("create")
@click.argument("name", callback=_list_name)
@click.option("--description", default=None, help="What the list is, for whoever reads it.")
@config_option
@click.pass_context
def lists_create(
    ctx: click.Context, name: str, description: str | None, config_path: str | None
) -> None:
    """Make an empty list NAME (lower-case letters, digits, - and _, dots between them)."""
    with existing_outbox(ctx, config_path) as engine:
        made = create_list(engine, name, description=description)
    click.echo(f"created the list {made.name} (its unsubscribes: scope {made.scope})")


@lists_group.command("show")
@click.argument("name")
@click.option("--limit", type=click.IntRange(0, 1000), default=_SHOWN, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def lists_show(
    ctx: click.Context, name: str, limit: int, as_json: bool, config_path: str | None
) -> None:
    """A list: how many contacts it has, and its first ones (by when they were added)."""
    with existing_outbox(ctx, config_path) as engine, engine.connect() as connection:
        try:
            found = find_list(connection, name)
        except ListNotFoundError:
            raise _missing(name) from None
        first = contact_page(connection, found.id, after_id=None, limit=limit)
    if as_json:
        contacts = [asdict(contact) for contact in first]
        click.echo(json.dumps({"list": _json_list(found), "contacts": contacts}, indent=2))
        return
    click.echo(f"list {found.name}: {found.contacts:,} contacts, scope {found.scope}")
    click.echo(f"created {utc_time(found.created_at)} UTC")
    if found.description:
        click.echo(f"description: {printable(found.description)}")
    if first:
        click.echo()
        _table(("ID", "ADDRESS", "NAME", "ATTRIBUTES"), [_contact_cells(c) for c in first])
    if found.contacts > len(first):
        click.echo(f"... and {found.contacts - len(first):,} more")


def _contact_cells(contact: Contact) -> tuple[str, ...]:
    attributes = json.dumps(contact.attributes, ensure_ascii=False) if contact.attributes else ""
    return (
        str(contact.id),
        printable(contact.address),
        clip(contact.name or "", 40, printable) or "-",
        clip(attributes, 60, printable) or "-",
    )


@lists_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Delete it: the list and every contact on it.")
@config_option
@click.pass_context
def lists_delete(ctx: click.Context, name: str, yes: bool, config_path: str | None) -> None:
    """Delete a list and its contacts. Its unsubscribes (scope list:NAME) are kept: a list
    made again under the same name still honours them."""
    with existing_outbox(ctx, config_path) as engine:
        try:
            if not yes:
                with engine.connect() as connection:
                    found = find_list(connection, name)
                raise CommandError(
                    f"this deletes the list {found.name} and its {found.contacts:,} contacts; "
                    f"to go ahead: mailroom lists delete {found.name} --yes"
                )
            removed = delete_list(engine, name)
        except ListNotFoundError:
            raise _missing(name) from None
    click.echo(f"deleted the list {printable(name)} and its {removed:,} contacts")


@lists_group.command("add")
@click.argument("name")
@click.argument("address")
@click.option("--name", "contact_name", default=None, help="The contact's name ('': none).")
@click.option(
    "--attr",
    "attributes",
    multiple=True,
    callback=_attrs,
    metavar="KEY=VALUE",
    help="An attribute (a merge field: {{ contact.KEY }}), as text; repeat for more.",
)
@config_option
@click.pass_context
def lists_add(
    ctx: click.Context,
    *,
    name: str,
    address: str,
    contact_name: str | None,
    attributes: dict[str, str],
    config_path: str | None,
) -> None:
    """Add ADDRESS to the list NAME, or update it if it is there (the attributes given are
    set, the others kept)."""
    given: str | Keep | None = KEEP if contact_name is None else contact_name or None
    with existing_outbox(ctx, config_path) as engine:
        try:
            contact, created = add_contact(engine, name, address, name=given, attributes=attributes)
        except ListNotFoundError:
            raise _missing(name) from None
    done = "added" if created else "updated"
    click.echo(f"{done} {printable(contact.address)} {'to' if created else 'in'} {name}")


@lists_group.command("remove")
@click.argument("name")
@click.argument("address")
@config_option
@click.pass_context
def lists_remove(ctx: click.Context, name: str, address: str, config_path: str | None) -> None:
    """Take ADDRESS off the list NAME."""
    normalized = normalize_address(address)
    with existing_outbox(ctx, config_path) as engine:
        try:
            removed = remove_contact(engine, name, normalized)
        except ListNotFoundError:
            raise _missing(name) from None
    shown = printable(normalized)
    if removed:
        click.echo(f"removed {shown} from {name}")
    else:
        click.echo(f"{shown} is not on {name}; no change")


@lists_group.command("import")
@click.argument("name")
@click.argument(
    "path",
    metavar="FILE.csv",
    type=click.Path(exists=True, dir_okay=False, readable=True, allow_dash=True),
)
@click.option("--create", is_flag=True, help="Make the list first if there is none.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, every rejected row in it.")
@config_option
@click.pass_context
def lists_import(
    ctx: click.Context,
    *,
    name: str,
    path: str,
    create: bool,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Add the contacts of a CSV file to the list NAME (updating those already on it). The
    first row names the columns: email (or address), optionally name, and any others, each
    an attribute. Every row that cannot be imported is named on stderr with its line and
    why (with --json, in the JSON); a summary goes to stdout. Exit status: 0 all imported,
    1 some rows rejected, 2 the file refused (nothing imported)."""
    with reading_csv(path) as stream:
        try:
            file = ContactsFile(stream)
        except CsvFileRefusedError as exc:
            raise _FileRefusedError(f"{printable(path)}: {exc}") from None
        with existing_outbox(ctx, config_path) as engine:
            if create:
                _ensure_list(engine, name)
            report = _JsonReport(name, path) if as_json else _TextReport(path)
            try:
                result = import_contacts(engine, name, file, report=report)
            except ListNotFoundError:
                raise _missing(name) from None
    report.close(result)
    if result.rejected:
        if as_json:
            ctx.exit(EXIT_ROWS_REJECTED)
        raise CommandError(
            f"{result.rejected:,} rows of {printable(path)} were not imported (each is listed "
            "above with why); fix them and import the file again (rows already on the list "
            "are updated, not added twice)"
        )


def _ensure_list(engine: Engine, name: str) -> None:
    check_list_name(name)
    with engine.connect() as connection:
        try:
            find_list(connection, name)
            return
        except ListNotFoundError:
            pass
    create_list(engine, name)
    click.echo(f"created the list {name}", err=True)


def _summary(result: ImportResult) -> str:
    line = f"imported {result.imported:,}, updated {result.updated:,}, rejected {result.rejected:,}"
    if result.blank_lines:
        line += f" (and {result.blank_lines:,} empty lines skipped)"
    return line


class _TextReport:
    """Each rejected row on stderr as it is met (``FILE:LINE: why``), the summary on stdout."""

    def __init__(self, path: str) -> None:
        self._path = printable(path)

    def __call__(self, row: Rejected) -> None:
        click.echo(f"{self._path}:{row.line}: {printable(row.why)}", err=True)

    def close(self, result: ImportResult) -> None:
        click.echo(_summary(result))


class _JsonReport:
    """One JSON document on stdout, written as the rows are met (a file of a million bad rows
    is reported without being held): the rejected rows, then the counts."""

    def __init__(self, name: str, path: str) -> None:
        head = json.dumps({"list": name, "file": path})[:-1]
        click.echo(f'{head}, "rejected_rows": [', nl=False)
        self._first = True

    def __call__(self, row: Rejected) -> None:
        item = json.dumps({"line": row.line, "why": row.why})
        click.echo(f"{'' if self._first else ','}\n  {item}", nl=False)
        self._first = False

    def close(self, result: ImportResult) -> None:
        counts = json.dumps(asdict(result))[1:]  # the counts' object, without its "{"
        click.echo(f"{'' if self._first else NEWLINE}], {counts}")
