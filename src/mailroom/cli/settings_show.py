"""``mailroom config show``: every resolved setting and where it came from.

It reads the settings leniently (:func:`mailroom.config.load_settings_report`): a broken
setting is what an operator runs it to find, so it shows every value and every problem, then
exits with status 1.
"""

from __future__ import annotations

import json
from typing import Any

import click

from mailroom.cli.base import config_option, main
from mailroom.cli.render import printable
from mailroom.config import (
    SECRET_SETTINGS,
    SETTING_NAMES,
    URL_SETTINGS,
    Settings,
    SettingsReport,
    load_settings_report,
    redact_url,
)


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


def settings_report(ctx: click.Context, config_path: str | None) -> SettingsReport:
    """Every setting and every problem, for the commands that diagnose (``config show``,
    ``status``); like :func:`mailroom.cli.base.cli_settings`, its --config or the group's."""
    return load_settings_report(config_path or ctx.obj.get("config_path"))


def _shown_value(settings: Settings, name: str) -> Any:
    value = getattr(settings, name)
    if name in SECRET_SETTINGS:
        return "********" if value.get_secret_value() else "(not set)"
    if value is None:
        return None
    if name in URL_SETTINGS:
        return redact_url(str(value))
    if hasattr(value, "value"):  # StrEnum
        return str(value.value)
    if isinstance(value, tuple):  # ADMINS, EMAIL_TEMPLATE_DIRS
        return ", ".join(str(item) for item in value)
    return str(value) if not isinstance(value, bool | int | float) else value


def _row_value(report: SettingsReport, name: str) -> Any:
    """The value as given when it was refused (the default stands in for it), else as used."""
    if name in report.rejected:
        given = report.rejected[name]
        return redact_url(str(given)) if name in URL_SETTINGS else str(given)
    return _shown_value(report.settings, name)


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@click.pass_context
def config_show(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Print the resolved settings and where each value came from (password masked), then
    every problem found; the exit status is 1 if there is one."""
    report = settings_report(ctx, config_path)
    settings = report.settings
    rows = [(name, _row_value(report, name), settings.source_of(name)) for name in SETTING_NAMES]
    derived = [
        ("port in use", settings.port, "EMAIL_PORT, or implied by TLS/SSL"),
        (
            "noreply address",
            settings.noreply_address,
            "NOREPLY_EMAIL_ADDRESS or DEFAULT_FROM_EMAIL",
        ),
    ]
    if as_json:
        payload = {
            "settings": {name: {"value": value, "source": source} for name, value, source in rows},
            "warnings": list(settings.warnings),
            "errors": [
                {"setting": error.setting, "message": str(error)} for error in report.errors
            ],
        }
        click.echo(json.dumps(payload, indent=2))
        ctx.exit(1 if report.errors else 0)
    width = max(len(name) for name, _, _ in rows)
    value_width = min(40, max(len(str(v)) for _, v, _ in rows + derived))
    for name, value, source in rows:
        shown = "(not set)" if value is None else printable(value)
        invalid = "  (refused)" if name in report.rejected else ""
        click.echo(f"{name:<{width}}  {shown:<{value_width}}  {printable(source)}{invalid}")
    click.echo()
    for label, value, source in derived:
        click.echo(f"{label:<{width}}  {printable(value):<{value_width}}  {source}")
    if settings.warnings:
        click.echo()
        for warning in settings.warnings:
            click.echo(f"warning: {printable(warning)}")
    if report.errors:
        click.echo()
        for error in report.errors:
            click.echo(printable(f"mailroom: error: {error}"), err=True)
        ctx.exit(1)
