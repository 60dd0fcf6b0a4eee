"""The outbox commands: ``db upgrade``, ``send``, ``worker`` and ``status``."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click

from mailroom.campaigns.runner import worker_companions
from mailroom.cli.base import (
    EXIT_ERROR,
    EXIT_STREAM_PAUSED,
    CommandError,
    cli_settings,
    config_option,
    main,
)
from mailroom.cli.render import database_shown, printable
from mailroom.cli.settings_show import settings_report
from mailroom.cli.streams import echo_pause, paused_streams
from mailroom.config import Settings, SettingsReport, TransportName
from mailroom.delivery.processes import run_worker, run_worker_processes
from mailroom.errors import MailroomError
from mailroom.logs import attach_log_files
from mailroom.message import Message
from mailroom.outbox import database, operations, stream_queries
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.presentation import utc_time
from mailroom.outbox.status import outbox_status
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import STREAM_PRIORITIES
from mailroom.transports import transport_from_settings
from mailroom.transports.capture import CAPTURE_DESCRIPTION
from mailroom.transports.smtp_replies import format_reply

# Its own logger at INFO whatever -v says: the worker's one start line is always shown (the
# other INFO records, the send log's among them, stay quiet without -v).
start_log = logging.getLogger("mailroom.cli.worker")


@main.group("db")
def db_group() -> None:
    """The outbox database."""


@db_group.command("upgrade")
@config_option
@click.pass_context
def db_upgrade(ctx: click.Context, config_path: str | None) -> None:
    """Create or migrate the outbox tables to this version's schema."""
    settings = cli_settings(ctx, config_path)
    # A MailroomError (the database, the schema) goes up to MailroomGroup: one line, and the
    # traceback with -v.
    engine = create_outbox_engine(settings.DATABASE_URL)
    try:
        before, after = database.upgrade(engine)
    finally:
        engine.dispose()
    shown = database.display_url(settings.DATABASE_URL)
    if before == after:
        click.echo(f"{shown} is already at schema revision {after}; nothing to do")
    elif before is None:
        click.echo(f"created the Mailroom tables in {shown} (schema revision {after})")
    else:
        click.echo(f"upgraded {shown} from schema revision {before} to {after}")


@main.command("send")
@click.option(
    "--to", "to", multiple=True, required=True, help="Recipient (repeatable, or comma-separated)."
)
@click.option("--subject", required=True)
@click.option("--text", help="Plain-text body.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="HTML body file (UTF-8).",
)
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
    html_file: Path | None,
    from_email: str | None,
    stream: str,
    send_at: datetime | None,
    idempotency_key: str | None,
    config_path: str | None,
) -> None:
    """Put one message in the outbox and print its id."""
    settings = cli_settings(ctx, config_path)
    html = _read_utf8(ctx, "html_file", html_file) if html_file else None
    outbox = Outbox(settings)
    try:
        _warn_if_new_stream(outbox, stream)
        message = Message(to=list(to), subject=subject, text=text, from_email=from_email, html=html)
        message_pk = outbox.send(
            message, stream=stream, send_at=send_at, idempotency_key=idempotency_key
        )
    finally:
        outbox.dispose()
    click.echo(message_pk)


def _read_utf8(ctx: click.Context, param_name: str, path: Path) -> str:
    """A text file's content, or a usage error naming the option when it is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        param = next(p for p in ctx.command.params if p.name == param_name)
        line = data.count(b"\n", 0, exc.start) + 1
        raise click.BadParameter(
            f"{printable(str(path))} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
            f"{line}); save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            ctx=ctx,
            param=param,
        ) from None


def _warn_if_new_stream(outbox: Outbox, stream: str) -> None:
    """A stream no message has used yet is created by this send: most often a typo."""
    if stream in STREAM_PRIORITIES:
        return
    with outbox.engine.connect() as connection:
        known = stream_queries.stream_names(connection) if _has_schema(outbox) else set()
    if stream in known:
        return
    names = ", ".join(printable(n) for n in sorted(known | set(STREAM_PRIORITIES)))
    click.echo(
        f"mailroom: warning: --stream {printable(stream)} is a new stream (priority 50); the "
        f"known streams are: {names}. Check the spelling if you meant one of them.",
        err=True,
    )


def _has_schema(outbox: Outbox) -> bool:
    try:
        database.check_schema(outbox.engine)
    except MailroomError:
        return False  # the send itself says what to run
    return True


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
    _log_start(settings, concurrency or settings.WORKER_CONCURRENCY, count, once)
    if count == 1:
        _worker_process(settings, concurrency, once)
    else:
        failed = run_worker_processes(
            settings, count, concurrency=concurrency, once=once, child=_worker_child
        )
        if failed:
            raise click.ClickException(f"{failed} of {count} worker processes ended with an error")
    if once:
        _exit_if_paused(settings)


_START_LINE_WAIT = 2.0  # seconds the start line waits for the list of streams


def _log_start(settings: Settings, concurrency: int, processes: int, once: bool) -> None:
    """One line that says what this worker will do, so a log shows how it was started."""
    streams: list[operations.StreamRow] = []

    def list_streams() -> None:
        try:
            # must_exist: in the wrong folder this line must not leave an empty outbox behind.
            engine = create_outbox_engine(settings.DATABASE_URL, must_exist=True)
            try:
                with engine.connect() as connection:
                    streams.extend(operations.list_streams(connection, now=time.time()))
            finally:
                engine.dispose()
        except Exception:  # the worker itself reports a database it cannot use
            start_log.debug("could not list the streams for the start line", exc_info=True)

    # A database that hangs (a lock held elsewhere, a server that does not answer) must not
    # hold the start, before the worker can handle SIGTERM: the worker reports it itself.
    lister = threading.Thread(target=list_streams, name="mailroom-start-line", daemon=True)
    lister.start()
    lister.join(_START_LINE_WAIT)
    if lister.is_alive():
        streams = []  # the thread may still add to the list it holds
    shown = ", ".join(
        printable(s.name) + (" (paused)" if s.paused_until is not None else "") for s in streams
    )
    try:
        # The capture transport's sink is the worker's own; the line needs only the name.
        transport = (
            CAPTURE_DESCRIPTION
            if settings.MAILROOM_TRANSPORT is TransportName.CAPTURE
            else transport_from_settings(settings).describe()
        )
    except Exception as exc:  # the worker itself reports a transport it cannot set up
        transport = f"{settings.MAILROOM_TRANSPORT} (cannot be set up: {exc})"
    start_log.setLevel(logging.INFO)
    start_log.info(
        "worker starting%s: database %s, transport %s, streams %s, concurrency %d%s",
        " (--once)" if once else "",
        database_shown(settings.DATABASE_URL),
        transport,
        shown or "(none yet)",
        concurrency,
        f" per process, {processes} processes" if processes > 1 else "",
    )


def _exit_if_paused(settings: Settings) -> None:
    """``--once`` ends with exit status 3 while a stream is paused, so cron and CI notice."""
    engine = create_outbox_engine(settings.DATABASE_URL)
    try:
        with engine.connect() as connection:
            paused = paused_streams(connection)
    finally:
        engine.dispose()
    if not paused:
        return
    for stream in paused:
        echo_pause(stream, err=True)
    click.get_current_context().exit(EXIT_STREAM_PAUSED)


def _worker_process(
    settings: Settings, concurrency: int | None, once: bool, *, supervised: bool = False
) -> None:
    """One worker, in this process: the whole run, or one child of ``--processes``."""
    attach_log_files(settings)
    # A MailroomError (the schema, the database) goes up: to MailroomGroup in this process,
    # to _worker_child in a child.
    name, stats = run_worker(
        settings,
        concurrency=concurrency,
        once=once,
        supervised=supervised,
        companions=worker_companions,
    )
    click.echo(
        f"worker {name}: sent {stats.sent}, deferred {stats.deferred}, "
        f"failed {stats.failed}, paused {stats.paused}, released {stats.released}, "
        f"suppressed {stats.suppressed}"
    )


def _worker_child(settings: Settings, concurrency: int | None, once: bool) -> None:
    """The target of each ``--processes`` child: an error is shown in one line, never a
    traceback (MailroomGroup is in the parent; with several children the screen would fill
    with the same traceback each time). The parent then says how many children failed."""
    try:
        _worker_process(settings, concurrency, once, supervised=True)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MailroomError as exc:
        CommandError(str(exc)).show()
        sys.exit(EXIT_ERROR)


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def status_command(ctx: click.Context, as_json: bool, config_path: str | None) -> None:
    """Counts per status, send rates, recent failures and paused streams; then any settings
    error (the exit status is 1 if there is one), so a broken setting hides nothing else."""
    report = settings_report(ctx, config_path)
    if not report.usable("DATABASE_URL"):
        _settings_errors(report, as_json=as_json)
    settings = report.settings
    try:
        # must_exist: run in the wrong folder, this must say so, not leave an empty outbox.
        engine = create_outbox_engine(settings.DATABASE_URL, must_exist=True)
        try:
            database.check_schema(engine)
            state = outbox_status(engine)
        finally:
            engine.dispose()
    except MailroomError:  # SchemaOutdatedError, DatabaseError
        # A settings error may be why the outbox is not where it was expected: say both (the
        # database's error last, from MailroomGroup, with its traceback under -v).
        for error in report.errors:
            click.echo(printable(f"mailroom: error: {error}"), err=True)
        raise
    if as_json:
        state["settings_errors"] = [str(error) for error in report.errors]
        click.echo(json.dumps(state, indent=2))
        ctx.exit(1 if report.errors else 0)
    counts = "  ".join(f"{name} {count}" for name, count in state["counts"].items())
    click.echo(f"messages: {counts}")
    click.echo(
        f"sent: {state['sent_last_minute']} in the last minute "
        f"({state['rate_per_second_last_minute']}/s), {state['sent_last_hour']} in the last hour"
    )
    for pause in state["paused_streams"]:
        echo_pause(
            operations.StreamRow(
                name=pause["name"],
                priority=0,
                waiting=0,
                paused_until=pause["paused_until"],
                reason=pause["pause_reason"],
                advice=pause["advice"],
            )
        )
    if state["recent_failures"]:
        click.echo("recent failures:")
    for failure in state["recent_failures"]:
        when = utc_time(failure["at"])
        reply = format_reply(failure["code"], failure["enhanced_status"], failure["server_text"])
        # The recipient and the reply are other people's text: nothing in them may act on
        # the terminal.
        click.echo(
            printable(
                f"  {when} #{failure['message_pk']} {failure['recipient']} "
                f"{failure['outcome']}: {reply}"
            )
        )
    if report.errors:
        _settings_errors(report, as_json=False)


def _settings_errors(report: SettingsReport, *, as_json: bool) -> NoReturn:
    """Print the settings errors and exit with status 1."""
    if as_json:
        click.echo(json.dumps({"settings_errors": [str(error) for error in report.errors]}))
    else:
        for error in report.errors:
            click.echo(printable(f"mailroom: error: {error}"), err=True)
    sys.exit(1)
