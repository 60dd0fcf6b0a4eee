"""``mailroom config show``: every resolved setting and where it came from."""

from __future__ import annotations

import json
from typing import Any

import click

from mailroom.cli.base import cli_settings, config_option, main
from mailroom.cli.render import printable
from mailroom.config import SECRET_SETTINGS, SETTING_NAMES, Settings


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


def _shown_value(settings: Settings, name: str) -> Any:
    value = getattr(settings, name)
    if name in SECRET_SETTINGS:
        return "********" if value.get_secret_value() else "(not set)"
    if value is None:
        return None
    if hasattr(value, "value"):  # StrEnum
        return str(value.value)
    if isinstance(value, tuple):  # ADMINS, EMAIL_TEMPLATE_DIRS
        return ", ".join(str(item) for item in value)
    return str(value) if not isinstance(value, bool | int | float) else value


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@click.pass_context
def config_show(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Print the resolved settings and where each value came from (password masked)."""
    settings = cli_settings(ctx, config_path)
    rows = [
        (name, _shown_value(settings, name), settings.source_of(name)) for name in SETTING_NAMES
    ]
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
        }
        click.echo(json.dumps(payload, indent=2))
        return
    width = max(len(name) for name, _, _ in rows)
    value_width = min(40, max(len(str(v)) for _, v, _ in rows + derived))
    for name, value, source in rows:
        shown = "(not set)" if value is None else printable(value)
        click.echo(f"{name:<{width}}  {shown:<{value_width}}  {printable(source)}")
    click.echo()
    for label, value, source in derived:
        click.echo(f"{label:<{width}}  {printable(value):<{value_width}}  {source}")
    if settings.warnings:
        click.echo()
        for warning in settings.warnings:
            click.echo(f"warning: {printable(warning)}")
