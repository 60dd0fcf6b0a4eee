"""The ``mailroom`` command: the group and what its subcommands share.

How it ends (documented in the README, "Exit status"):

- 0: done;
- 1: a :class:`~mailroom.errors.MailroomError` (a setting, the input, the database, the relay):
  one line on stderr, ``mailroom: error: ...``, naming what to change;
- 2: the command line itself is wrong (Click's usage errors, a non-UTF-8 argument);
- 3: ``mailroom worker --once`` ended with a stream paused (see :data:`EXIT_STREAM_PAUSED`);
- 70 (``EX_SOFTWARE``): anything else, which is a bug: one line and a hint to run with ``-v``.

The traceback is printed only with ``-v``; an unexpected one also goes to ``ERROR_LOG_FILE``
when a command (the worker) has attached it.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import click
from sqlalchemy import Engine

from mailroom import __version__
from mailroom.cli.render import PrintableFormatter, printable
from mailroom.config import Settings, load_settings
from mailroom.errors import MailroomError
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1
EXIT_STREAM_PAUSED = 3
"""``worker --once`` delivered what it could, but a stream is paused (our configuration is
wrong): distinct from 0 so cron and CI notice, and from 1 because the worker itself worked."""
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE

logger = logging.getLogger(__name__)


class CommandError(click.ClickException):
    """An error shown as ``mailroom: error: <message>`` on stderr."""

    def show(self, file: IO[Any] | None = None) -> None:
        out = file or sys.stderr
        for line in printable(self.format_message(), keep_newlines=True).splitlines() or [""]:
            click.echo(f"mailroom: error: {line}", file=out)


class InternalError(CommandError):
    """Anything that is not a MailroomError: a bug, or a fault not mapped to one yet."""

    exit_code = EXIT_INTERNAL


def _not_utf8(value: object) -> str | None:
    """The first byte of ``value`` that was not UTF-8 on the command line, shown as ``\\xff``.

    Python decodes ``argv`` with ``surrogateescape``: each such byte became a lone surrogate,
    which would fail much later (encoding a header, writing the database) with a traceback.
    """
    items: Sequence[object] = value if isinstance(value, tuple | list) else (value,)
    for item in items:
        if isinstance(item, str):
            for char in item:
                if "\udc80" <= char <= "\udcff":
                    return f"\\x{ord(char) - 0xDC00:02x}"
    return None


class _CheckedArguments(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.get_params(ctx):
            byte = _not_utf8(ctx.params.get(param.name or ""))
            if byte is not None:
                raise click.BadParameter(
                    f"is not valid UTF-8 (byte {byte}); give the text in UTF-8 (check the "
                    "terminal's or the script's encoding, e.g. LANG=C.UTF-8)",
                    ctx=ctx,
                    param=param,
                )
        return rest


class MailroomCommand(_CheckedArguments):
    """Every ``mailroom`` subcommand: refuses non-UTF-8 arguments, naming the option."""


class MailroomGroup(_CheckedArguments, click.Group):
    """The ``mailroom`` group (and its subgroups): the errors of every command end here."""

    command_class = MailroomCommand
    group_class = type  # subgroups are MailroomGroups too

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:  # a subgroup: the top-level group handles errors
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.UsageError, CommandError):
            raise
        except click.ClickException as exc:
            if exc.exit_code != EXIT_ERROR:
                raise
            # A command's own refusal ("there is no message with id 7"): same form as ours.
            raise CommandError(exc.format_message()) from None
        except MailroomError as exc:
            _traceback_if_verbose(ctx)
            raise CommandError(str(exc)) from None
        except Exception as exc:
            _traceback_if_verbose(ctx)
            _to_error_log(exc)
            first = (str(exc).strip().splitlines() or [""])[0]
            raise InternalError(
                f"unexpected {type(exc).__name__}: {first}\n"
                "this is a bug in Mailroom or a fault it does not know yet; run it again as "
                "`mailroom -v ...` for the traceback"
            ) from None


def _traceback_if_verbose(ctx: click.Context) -> None:
    if ctx.params.get("verbose"):
        click.echo(printable(traceback.format_exc(), keep_newlines=True), file=sys.stderr, nl=False)


def _to_error_log(exc: BaseException) -> None:
    """Give the traceback to the error-log files attached to ``mailroom`` (ERROR_LOG_FILE).

    Handed to those handlers directly: through the logger it would also reach the terminal's
    handler, which must show one line, not the traceback.
    """
    handlers = logging.getLogger("mailroom").handlers
    if not handlers:
        return
    record = logger.makeRecord(
        logger.name,
        logging.ERROR,
        __file__,
        0,
        "unexpected error in the mailroom command",
        (),
        (type(exc), exc, exc.__traceback__),
    )
    for handler in handlers:
        if record.levelno >= handler.level:
            handler.handle(record)


def config_option(func: F) -> F:
    """``--config`` on a subcommand too, so ``mailroom send-test-email --config x`` works."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Settings file (TOML). Default: $MAILROOM_CONFIG, else ./mailroom.toml if present.",
    )(func)


def cli_settings(ctx: click.Context, config_path: str | None) -> Settings:
    """Settings read afresh for this command: its --config, the group's, or the defaults.

    A :class:`~mailroom.errors.SettingsError` goes up to :class:`MailroomGroup`, which shows
    it in one line (and its traceback with ``-v``).
    """
    path = config_path or ctx.obj.get("config_path")
    return load_settings(path)


@contextmanager
def existing_outbox(ctx: click.Context, config_path: str | None) -> Iterator[Engine]:
    """The outbox engine for a command that only reads or changes what is there: it refuses a
    schema this version cannot use, a missing outbox file and a broken database, as a
    MailroomError, which MailroomGroup shows in one line (exit 1; the traceback with -v)."""
    settings = cli_settings(ctx, config_path)
    # must_exist: run in the wrong folder, this must say so, not leave an empty outbox.
    engine = create_outbox_engine(settings.DATABASE_URL, must_exist=True)
    try:
        database.check_schema(engine)
        yield engine
    finally:
        engine.dispose()


@click.group(cls=MailroomGroup, context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug); tracebacks.")
@click.version_option(__version__, prog_name="mailroom")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Mailroom: outbound email for web applications."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
