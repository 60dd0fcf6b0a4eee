"""``mailroom queue``: the operator's tools for looking at and steering the outbox."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from mailroom.cli.base import F, config_option, existing_outbox, main
from mailroom.cli.render import printable
from mailroom.errors import NothingSelectedError
from mailroom.outbox import operations, presentation
from mailroom.outbox.vocabulary import Status
from mailroom.transports.smtp_replies import format_reply

# -- queue: the operator's tools ---------------------------------------------------------

_PURGE_BATCH = 1000


def _queue_duration(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> float | None:
    """Parse ``--older-than``/``--newer-than`` (``30m``, ``2h``, ``7d``, ``1d12h``) to seconds.

    An option callback rather than a ``click.ParamType`` subclass: that class is generic only in
    newer Click releases, and this must type-check and run on every Click we accept.
    """
    if value is None:
        return None
    try:
        return presentation.parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _queue_table(rows: list[operations.MessageRow]) -> None:
    """The rows as aligned columns; every stored text passed through printable() so that
    nothing in it acts on the terminal."""
    header = presentation.LIST_COLUMNS
    cells = [presentation.list_cells(row, printable) for row in rows]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    for line in (header, *cells):
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _queue_filter_options(statuses: tuple[Status, ...]) -> Callable[[F], F]:
    """The options that select messages, shared by ``list``, ``retry`` and ``cancel``."""

    def decorate(func: F) -> F:
        for option in reversed(
            (
                click.option(
                    "--status",
                    type=click.Choice([s.value for s in statuses]),
                    help="Only messages in this state.",
                ),
                click.option("--stream", help="Only messages of this stream."),
                click.option(
                    "--to", "recipient", help="Only messages to an address containing this text."
                ),
                click.option(
                    "--older-than",
                    metavar="DURATION",
                    callback=_queue_duration,
                    help="Only messages created more than this long ago (30m, 2h, 7d).",
                ),
                click.option(
                    "--newer-than",
                    metavar="DURATION",
                    callback=_queue_duration,
                    help="Only messages created less than this long ago.",
                ),
            )
        ):
            func = option(func)
        return func

    return decorate


def _queue_filters(
    *,
    status: str | None,
    stream: str | None,
    recipient: str | None,
    older_than: float | None,
    newer_than: float | None,
    now: float,
) -> operations.Filters:
    """The options as :mod:`mailroom.outbox.operations` filters (durations become cut-off times)."""
    return {
        "status": Status(status) if status else None,
        "stream": stream,
        "recipient": recipient,
        "older_than": now - older_than if older_than is not None else None,
        "newer_than": now - newer_than if newer_than is not None else None,
    }


@main.group("queue")
def queue_group() -> None:
    """Inspect and manage the messages in the outbox."""


@queue_group.command("list")
@_queue_filter_options(tuple(Status))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--before-id", type=int, help="Next page: the messages older than this id.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@config_option
@click.pass_context
def queue_list(
    ctx: click.Context,
    *,
    status: str | None,
    stream: str | None,
    recipient: str | None,
    older_than: float | None,
    newer_than: float | None,
    limit: int,
    before_id: int | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """List messages, newest first; page on with --before-id."""
    filters = _queue_filters(
        status=status,
        stream=stream,
        recipient=recipient,
        older_than=older_than,
        newer_than=newer_than,
        now=time.time(),
    )
    with existing_outbox(ctx, config_path) as engine, engine.connect() as connection:
        rows = operations.list_messages(connection, **filters, limit=limit, before_id=before_id)
        total = operations.count_messages(connection, **filters)
    # Only a full page can have a next one; "total" counts every page, not just the later ones.
    next_before_id = rows[-1].id if len(rows) == limit else None
    if as_json:
        payload = {
            "messages": [presentation.row_json(row) for row in rows],
            "total": total,
            "next_before_id": next_before_id,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    if not rows:
        click.echo("no messages match")
        return
    _queue_table(rows)
    more = f"; next page: --before-id {next_before_id}" if next_before_id is not None else ""
    click.echo(f"{len(rows)} shown, {total} match in all{more}")


def _queue_raw(data: bytes) -> None:
    """The stored bytes: exactly, into a pipe or file (``> message.eml``); on a terminal, as
    lines with every control character made visible."""
    stdout = sys.stdout.buffer
    if not stdout.isatty():
        stdout.write(data)
        stdout.flush()
        return
    text = data.decode("utf-8", errors="surrogateescape").replace("\r\n", "\n")
    click.echo(printable(text, keep_newlines=True), nl=not text.endswith("\n"))


@queue_group.command("show")
@click.argument("message_pk", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option(
    "--raw",
    is_flag=True,
    help="Print the message as stored (exact bytes into a pipe or file; control characters "
    "made visible on a terminal).",
)
@config_option
@click.pass_context
def queue_show(
    ctx: click.Context, message_pk: int, as_json: bool, raw: bool, config_path: str | None
) -> None:
    """Show one message: its state, its headers and every delivery attempt."""
    with existing_outbox(ctx, config_path) as engine, engine.connect() as connection:
        detail = operations.message_detail(connection, message_pk)
        tries = operations.attempts_for(connection, message_pk)
    if detail is None:
        raise click.ClickException(f"there is no message with id {message_pk}")
    if raw:
        _queue_raw(detail.data)
        return
    if as_json:
        click.echo(json.dumps(presentation.detail_json(detail, tries), indent=2))
        return
    headers = presentation.message_headers(detail.data)
    last_reply = format_reply(detail.last_code, detail.last_enhanced_status, detail.last_error)
    fields_shown = [
        ("status", detail.status.value),
        ("stream", f"{detail.stream} (priority {detail.priority})"),
        ("envelope from", detail.sender),
        ("envelope to", ", ".join(detail.recipients)),
        ("attempts", str(detail.attempts)),
        ("created", presentation.utc_time(detail.created_at) + " UTC"),
        ("due", presentation.utc_time(detail.due_at) + " UTC"),
        ("updated", presentation.utc_time(detail.updated_at) + " UTC"),
        ("sent", presentation.utc_time(detail.sent_at) + (" UTC" if detail.sent_at else "")),
        ("last error", last_reply or "-"),
        ("idempotency key", detail.idempotency_key or "-"),
        ("metadata", json.dumps(detail.extra) if detail.extra else "-"),
        ("consent", presentation.consent_summary(detail)),
        ("size", f"{len(detail.data)} bytes"),
    ]
    # Every value below is someone else's text (the application's, the recipient's, the
    # relay's): printable() keeps it from acting on the terminal.
    click.echo(f"message {detail.id}")
    for label, value in fields_shown:
        click.echo(f"  {label:<16} {printable(value)}")
    click.echo("headers")
    for name, header in headers:
        click.echo(f"  {printable(name)}: {printable(header)}")
    click.echo(f"send log ({len(tries)} rows)" if tries else "send log: no attempts yet")
    for attempt in tries:
        reply = format_reply(attempt.code, attempt.enhanced_status, attempt.server_text)
        duplicate = " [possible duplicate]" if attempt.possible_duplicate else ""
        when = presentation.utc_time(attempt.at)
        line = (
            f"  #{attempt.attempt} {when} {attempt.recipient} {attempt.outcome}"
            f"{': ' + reply if reply else ''} ({attempt.transport}, {attempt.worker}, "
            f"{attempt.duration_ms:.0f} ms){duplicate}"
        )
        click.echo(printable(line))


def _queue_change(
    ctx: click.Context,
    change: Callable[..., int],
    *,
    ids: tuple[int, ...],
    everything: bool,
    config_path: str | None,
    options: dict[str, Any],
) -> int:
    """Run ``retry`` or ``cancel`` in one transaction, refusing an unfiltered run without --all."""
    now = time.time()
    filters = _queue_filters(**options, now=now)
    refusal = click.UsageError(
        "give message IDs or a filter (--status, --stream, --to, --older-than, "
        "--newer-than), or --all to act on every message"
    )
    # Checked before touching the database, and again by the query itself (which also
    # counts an empty --to as no filter).
    if not ids and not everything and all(value is None for value in filters.values()):
        raise refusal
    with existing_outbox(ctx, config_path) as engine, engine.begin() as connection:
        try:
            return change(connection, now=now, ids=ids or None, everything=everything, **filters)
        except NothingSelectedError:
            raise refusal from None


def _queue_left_alone(ids: tuple[int, ...], changed: int, states: tuple[Status, ...]) -> None:
    if ids and changed < len(set(ids)):
        allowed = ", ".join(s.value for s in states)
        click.echo(
            f"{len(set(ids)) - changed} of the given ids were left alone: "
            f"not {allowed}, or no such message"
        )


_RETRY_HELP = """Send failed, deferred or cancelled messages again, now.

A cancelled message that was scheduled for later, and never tried, keeps its time: it goes
back to scheduled, not out at once.

A retried message starts with a fresh allowance of EMAIL_MAX_ATTEMPTS attempts (its
attempt counter goes back to 0; the send log keeps the earlier ones). EMAIL_MAX_AGE still
counts from when it was first enqueued. Sent messages and messages being sent are never
touched.
"""

_CANCEL_HELP = """Withdraw queued, scheduled or deferred messages before they are sent.

A message already being sent cannot be cancelled: the relay may have it.
"""


def _queue_change_command(
    name: str, change: Callable[..., int], states: tuple[Status, ...], done: str, help_text: str
) -> None:
    """Add ``queue retry`` or ``queue cancel``: the same arguments and steps, each with its own
    change, the states that change acts on (the choices of --status) and what it says done."""

    @queue_group.command(name, help=help_text)
    @click.argument("ids", metavar="[ID]...", nargs=-1, type=int)
    @_queue_filter_options(states)
    @click.option(
        "--all", "everything", is_flag=True, help="Without ids or filters: every message."
    )
    @config_option
    @click.pass_context
    def command(
        ctx: click.Context,
        /,
        ids: tuple[int, ...],
        everything: bool,
        config_path: str | None,
        **options: Any,
    ) -> None:
        changed = _queue_change(
            ctx, change, ids=ids, everything=everything, config_path=config_path, options=options
        )
        click.echo(f"{changed} message{'s' if changed != 1 else ''} {done}")
        _queue_left_alone(ids, changed, states)


_queue_change_command("retry", operations.retry, operations.RETRYABLE, "queued again", _RETRY_HELP)
_queue_change_command(
    "cancel", operations.cancel, operations.CANCELLABLE, "cancelled", _CANCEL_HELP
)


@queue_group.command("purge")
@click.option(
    "--older-than",
    metavar="DURATION",
    callback=_queue_duration,
    required=True,
    help="Delete messages that reached their final state more than this long ago (7d, 12h).",
)
@click.option(
    "--status",
    "statuses",
    type=click.Choice([s.value for s in operations.PURGEABLE]),
    multiple=True,
    help="Only this final state (repeatable). Default: sent, failed, cancelled and suppressed.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="How many of the messages to list with --dry-run.",
)
@config_option
@click.pass_context
def queue_purge(
    ctx: click.Context,
    *,
    older_than: float,
    statuses: tuple[str, ...],
    dry_run: bool,
    limit: int,
    config_path: str | None,
) -> None:
    """Delete old sent, failed, cancelled and suppressed messages and their send log.

    Queued, scheduled, deferred and sending messages are never deleted.
    """
    cutoff = time.time() - older_than
    chosen = tuple(Status(s) for s in statuses) or operations.PURGEABLE
    with existing_outbox(ctx, config_path) as engine:
        if dry_run:
            with engine.connect() as connection:
                total = operations.count_purgeable(connection, older_than=cutoff, statuses=chosen)
                rows = operations.purgeable(
                    connection, older_than=cutoff, statuses=chosen, limit=limit
                )
            if rows:
                _queue_table(rows)
            click.echo(f"would delete {total} message{'s' if total != 1 else ''} (dry run)")
            return
        deleted = 0
        # Short transactions: SQLite has one writer, and the workers need it too.
        while True:
            with engine.begin() as connection:
                batch = operations.purge(
                    connection, older_than=cutoff, statuses=chosen, limit=_PURGE_BATCH
                )
            deleted += batch
            if batch < _PURGE_BATCH:
                break
    click.echo(f"deleted {deleted} message{'s' if deleted != 1 else ''} and their send log")
