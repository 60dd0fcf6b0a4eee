"""``mailroom apikeys create|list|revoke``: the keys applications call the HTTP API with.

A key is printed once, when it is made; the database keeps only its digest, so neither
``list`` nor anything else can show it again. A lost key is revoked and replaced.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click

from mailroom.access import ApiKey, ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from mailroom.access.apikeys import check_name
from mailroom.cli.base import config_option, existing_outbox, main
from mailroom.cli.render import printable
from mailroom.outbox.presentation import utc_time
from mailroom.outbox.vocabulary import ApiKeyScope


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_name(value)
    except ApiKeyError as exc:
        raise click.BadParameter(str(exc).partition(": ")[2], ctx=ctx, param=param) from None


def _described(key: ApiKey) -> str:
    return f"API key {key.id} “{printable(key.name)}” (prefix {key.prefix}, scope {key.scope})"


@main.group("apikeys")
def apikeys_group() -> None:
    """Keys for the HTTP API: create (shown once), list, revoke."""


@apikeys_group.command("create")
@click.option("--name", required=True, callback=_name, help="What the key is for (1-100 chars).")
@click.option(
    "--scope",
    type=click.Choice([scope.value for scope in ApiKeyScope]),
    default=ApiKeyScope.SEND.value,
    show_default=True,
    help="send: send mail and read what it sent; admin: all of the API.",
)
@click.option("--quiet", is_flag=True, help="Print the key alone (for scripts).")
@config_option
@click.pass_context
def apikeys_create(
    ctx: click.Context, name: str, scope: str, quiet: bool, config_path: str | None
) -> None:
    """Make an API key and print it. It is shown this once: store it now."""
    with existing_outbox(ctx, config_path) as engine, engine.begin() as connection:
        key, plaintext = create_api_key(
            connection, name=name, scope=ApiKeyScope(scope), now=time.time()
        )
    if quiet:
        click.echo(plaintext)
        return
    click.echo(f"created {_described(key)}:")
    click.echo()
    click.echo(f"    {plaintext}")
    click.echo()
    click.echo(
        "This key will not be shown again: store it now (a secret store, the app's "
        "environment). Send it as `Authorization: Bearer <key>`."
    )


@apikeys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def apikeys_list(ctx: click.Context, as_json: bool, config_path: str | None) -> None:
    """Every key, revoked ones included: name, prefix, scope, when made, last used, revoked.
    Never the key itself (it is not stored)."""
    with existing_outbox(ctx, config_path) as engine, engine.connect() as connection:
        keys = list_api_keys(connection)
    if as_json:
        click.echo(json.dumps({"api_keys": [asdict(key) for key in keys]}, indent=2))
        return
    if not keys:
        click.echo("no API keys; make one with: mailroom apikeys create --name NAME")
        return
    header = ("ID", "NAME", "PREFIX", "SCOPE", "CREATED (UTC)", "LAST USED", "REVOKED")
    cells = [
        (
            str(key.id),
            printable(key.name),
            key.prefix,
            key.scope.value,
            utc_time(key.created_at),
            utc_time(key.last_used_at),
            utc_time(key.revoked_at),
        )
        for key in keys
    ]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    for line in (header, *cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


@apikeys_group.command("revoke")
@click.argument("ident", metavar="ID_OR_PREFIX")
@config_option
@click.pass_context
def apikeys_revoke(ctx: click.Context, ident: str, config_path: str | None) -> None:
    """Revoke a key (by its id or prefix, as `apikeys list` shows them): requests made with it
    are refused from now on. This cannot be undone."""
    now = time.time()
    with existing_outbox(ctx, config_path) as engine, engine.begin() as connection:
        key = revoke_api_key(connection, ident, now)
    if key is None:
        raise click.ClickException(
            f"there is no API key with id or prefix {printable(ident)}; "
            "see them with: mailroom apikeys list"
        )
    if key.revoked_at is not None and key.revoked_at < now:
        click.echo(f"{_described(key)} was already revoked at {utc_time(key.revoked_at)} UTC")
        return
    click.echo(f"revoked {_described(key)}: requests with it are refused from now on")
