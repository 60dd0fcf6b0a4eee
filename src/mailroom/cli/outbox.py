"""The outbox commands: ``db upgrade``, ``send``, ``worker`` and ``status``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TextIO

import click

from mailroom.cli.base import cli_settings, config_option, main
from mailroom.config import Settings
from mailroom.delivery.processes import run_worker, run_worker_processes
from mailroom.errors import MailroomError
from mailroom.logs import attach_log_files
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.store import Outbox
from mailroom.status import outbox_status


@main.group("db")
def db_group() -> None:
    """The outbox database."""


@db_group.command("upgrade")
@config_option
@click.pass_context
def db_upgrade(ctx: click.Context, config_path: str | None) -> None:
    """Create or migrate the outbox tables to this version's schema."""
    settings = cli_settings(ctx, config_path)
    try:
        engine = create_outbox_engine(settings.DATABASE_URL)
        try:
            before, after = database.upgrade(engine)
        finally:
            engine.dispose()
    except MailroomError as exc:
        raise click.ClickException(str(exc)) from None
    shown = database.display_url(settings.DATABASE_URL)
    if before == after:
        click.echo(f"{shown} is already at schema revision {after}; nothing to do")
    elif before is None:
        click.echo(f"created the Mailroom tables in {shown} (schema revision {after})")
    else:
        click.echo(f"upgraded {shown} from schema revision {before} to {after}")


@main.command("send")
@click.option("--to", "to", multiple=True, required=True, help="Recipient (repeatable).")
@click.option("--subject", required=True)
@click.option("--text", help="Plain-text body.")
@click.option("--html", "html_file", type=click.File("r", encoding="utf-8"), help="HTML body file.")
@click.option("--from", "from_email", help="Sender; default DEFAULT_FROM_EMAIL.")
@click.option("--stream", default="transactional", show_default=True)
@click.option(
    "--send-at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"]),
    help="Schedule, with a UTC offset: 2026-12-24T09:00:00+0100.",
)
@click.option("--idempotency-key", help="The same key never makes a second message.")
@config_option
@click.pass_context
def send_command(
    ctx: click.Context,
    *,
    to: tuple[str, ...],
    subject: str,
    text: str | None,
    html_file: TextIO | None,
    from_email: str | None,
    stream: str,
    send_at: datetime | None,
    idempotency_key: str | None,
    config_path: str | None,
) -> None:
    """Put one message in the outbox and print its id."""
    settings = cli_settings(ctx, config_path)
    message = Message(
        to=list(to),
        subject=subject,
        text=text,
        from_email=from_email,
        html=html_file.read() if html_file else None,
    )
    try:
        outbox = Outbox(settings)
        try:
            message_pk = outbox.send(
                message, stream=stream, send_at=send_at, idempotency_key=idempotency_key
            )
        finally:
            outbox.dispose()
    except MailroomError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(message_pk)


@main.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 1000), help="Connections (default setting).")
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    help="Worker processes side by side (default WORKER_PROCESSES).",
)
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@config_option
@click.pass_context
def worker_command(
    ctx: click.Context,
    concurrency: int | None,
    processes: int | None,
    once: bool,
    config_path: str | None,
) -> None:
    """Deliver the outbox: claim due messages, send them, record the outcome."""
    settings = cli_settings(ctx, config_path)
    count = processes or settings.WORKER_PROCESSES
    if count == 1:
        _worker_process(settings, concurrency, once)
        return
    failed = run_worker_processes(
        settings, count, concurrency=concurrency, once=once, child=_worker_child
    )
    if failed:
        raise click.ClickException(f"{failed} of {count} worker processes ended with an error")


def _worker_process(
    settings: Settings, concurrency: int | None, once: bool, *, supervised: bool = False
) -> None:
    """One worker, in this process: the whole run, or one child of ``--processes``."""
    attach_log_files(settings)
    try:
        name, stats = run_worker(
            settings, concurrency=concurrency, once=once, supervised=supervised
        )
    except MailroomError as exc:  # the schema, or the database itself (DatabaseError)
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"worker {name}: sent {stats.sent}, deferred {stats.deferred}, "
        f"failed {stats.failed}, paused {stats.paused}, released {stats.released}, "
        f"suppressed {stats.suppressed}"
    )


def _worker_child(settings: Settings, concurrency: int | None, once: bool) -> None:
    """The target of each ``--processes`` child: an error is shown, not a traceback."""
    try:
        _worker_process(settings, concurrency, once, supervised=True)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def status_command(ctx: click.Context, as_json: bool, config_path: str | None) -> None:
    """Counts per status, send rates, recent failures and paused streams."""
    settings = cli_settings(ctx, config_path)
    try:
        # must_exist: run in the wrong folder, this must say so, not leave an empty outbox.
        engine = create_outbox_engine(settings.DATABASE_URL, must_exist=True)
        try:
            database.check_schema(engine)
            state = outbox_status(engine)
        finally:
            engine.dispose()
    except MailroomError as exc:  # SchemaOutdatedError, DatabaseError
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    counts = "  ".join(f"{name} {count}" for name, count in state["counts"].items())
    click.echo(f"messages: {counts}")
    click.echo(
        f"sent: {state['sent_last_minute']} in the last minute "
        f"({state['rate_per_second_last_minute']}/s), {state['sent_last_hour']} in the last hour"
    )
    for pause in state["paused_streams"]:
        until = datetime.fromtimestamp(pause["paused_until"], UTC).strftime("%H:%M:%S UTC")
        click.echo(f"PAUSED stream {pause['name']} until {until}: {pause['pause_reason']}")
    if state["recent_failures"]:
        click.echo("recent failures:")
    for failure in state["recent_failures"]:
        when = datetime.fromtimestamp(failure["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        reply = " ".join(
            str(p)
            for p in (failure["code"], failure["enhanced_status"], failure["server_text"])
            if p
        )
        click.echo(
            f"  {when} #{failure['message_pk']} {failure['recipient']} {failure['outcome']}: "
            f"{reply}"
        )
