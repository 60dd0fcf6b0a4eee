"""``mailroom streams list|resume``: see which streams are paused, and lift a pause."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click
from sqlalchemy import Connection

from mailroom.cli.base import config_option, existing_outbox, main
from mailroom.cli.render import printable
from mailroom.outbox import operations
from mailroom.outbox.presentation import utc_time


def echo_pause(stream: operations.StreamRow, *, err: bool = False) -> None:
    """A paused stream as people read it: until when, why, what to change, how to lift it.

    Shared with ``mailroom status`` and the worker's ``--once`` report, so all three say the
    same thing.
    """
    assert stream.paused_until is not None  # noqa: S101 - callers pass paused streams only
    name = printable(stream.name)
    click.echo(
        f"PAUSED stream {name} until {utc_time(stream.paused_until)} UTC: "
        f"{printable(stream.reason or 'no reason recorded')}",
        err=err,
    )
    for line in (stream.advice or "").splitlines():
        click.echo(f"  {printable(line)}", err=err)
    click.echo(
        f"  Once fixed, resume it now with: mailroom streams resume {name} "
        "(else it resumes by itself when the pause ends)",
        err=err,
    )


def paused_streams(connection: Connection, now: float | None = None) -> list[operations.StreamRow]:
    now = time.time() if now is None else now
    return [s for s in operations.list_streams(connection, now=now) if s.paused_until is not None]


@main.group("streams")
def streams_group() -> None:
    """Message streams (transactional, bulk...): their pauses."""


@streams_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def streams_list(ctx: click.Context, as_json: bool, config_path: str | None) -> None:
    """Every stream: its priority, messages waiting, and whether it is paused and why."""
    with existing_outbox(ctx, config_path) as engine, engine.connect() as connection:
        rows = operations.list_streams(connection, now=time.time())
    if as_json:
        click.echo(json.dumps({"streams": [asdict(row) for row in rows]}, indent=2))
        return
    header = ("STREAM", "PRIORITY", "WAITING", "PAUSED UNTIL")
    cells = [
        (
            printable(row.name),
            str(row.priority),
            str(row.waiting),
            utc_time(row.paused_until) + " UTC" if row.paused_until is not None else "-",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    for line in (header, *cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    paused = [row for row in rows if row.paused_until is not None]
    if paused:
        click.echo()
    for row in paused:
        echo_pause(row)


@streams_group.command("resume")
@click.argument("name")
@config_option
@click.pass_context
def streams_resume(ctx: click.Context, name: str, config_path: str | None) -> None:
    """Lift the pause of stream NAME now (after fixing the setting that caused it)."""
    with existing_outbox(ctx, config_path) as engine, engine.begin() as connection:
        lifted = operations.resume_stream(connection, name, now=time.time())
        known = {row.name for row in operations.list_streams(connection, now=time.time())}
    shown = printable(name)
    if lifted:
        click.echo(f"stream {shown} resumed: its messages go with the next worker pass")
        return
    if name not in known:
        names = ", ".join(printable(n) for n in sorted(known))
        raise click.ClickException(f"there is no stream {shown}; the streams are: {names}")
    click.echo(f"stream {shown} is not paused; nothing to do")
