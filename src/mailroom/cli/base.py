"""The ``mailroom`` command: the group and what its subcommands share."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mailroom import __version__
from mailroom.config import Settings, load_settings
from mailroom.errors import MailroomError

F = TypeVar("F", bound=Callable[..., Any])


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
    """Settings read afresh for this command: its --config, the group's, or the defaults."""
    path = config_path or ctx.obj.get("config_path")
    try:
        return load_settings(path)
    except MailroomError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="mailroom")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Mailroom: outbound email for web applications."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
