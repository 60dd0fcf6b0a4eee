"""``mailroom campaign ...``: write a campaign, send it and watch it go, pause, resume, cancel,
retry its failed recipients, and read where it is."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from mailroom.campaigns import control, previews
from mailroom.campaigns.progress import progress
from mailroom.campaigns.store import Campaign, CampaignDraft, Campaigns
from mailroom.cli.base import cli_settings, config_option, main
from mailroom.cli.campaign_watch import watch_and_deliver
from mailroom.cli.render import printable
from mailroom.errors import CampaignError
from mailroom.outbox.presentation import utc_time
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus


def _outbox(ctx: click.Context, config_path: str | None) -> Outbox:
    outbox = Outbox(cli_settings(ctx, config_path))
    outbox.ensure_schema()
    return outbox


@main.group("campaign")
def campaign_group() -> None:
    """Bulk campaigns: write one, send it to a list, watch it, pause, resume, cancel."""


@campaign_group.command("create")
@click.option("--list", "list_name", required=True, help="The mailing list it goes to.")
@click.option("--subject", required=True, help="Its subject; merge fields allowed.")
@click.option("--html", "html_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--markdown", "markdown_file", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--from", "from_email", required=True, help="The From address.")
@click.option("--reply-to", default=None)
@click.option("--name", default=None, help="What the admin pages call it (default: subject).")
@click.option("--stream", default=None, help="Its stream (default: CAMPAIGN_STREAM).")
@config_option
@click.pass_context
def create(
    ctx: click.Context,
    *,
    list_name: str,
    subject: str,
    html_file: Path | None,
    markdown_file: Path | None,
    from_email: str,
    reply_to: str | None,
    name: str | None,
    stream: str | None,
    config_path: str | None,
) -> None:
    """Write a campaign from an HTML or Markdown file; prints its id."""
    if (html_file is None) == (markdown_file is None):
        raise click.UsageError("give the body as exactly one of --html FILE or --markdown FILE")
    body_file = html_file or markdown_file
    assert body_file is not None  # noqa: S101 - one of the two, checked above
    outbox = _outbox(ctx, config_path)
    try:
        campaign_id = Campaigns(outbox).create(
            CampaignDraft(
                name=name or subject,
                audience=f"list:{list_name}",
                subject=subject,
                from_email=from_email,
                body=_read(body_file),
                body_format="html" if html_file is not None else "markdown",
                reply_to=reply_to,
                stream=stream,
            )
        )
    finally:
        outbox.dispose()
    click.echo(campaign_id)


@campaign_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def list_campaigns(ctx: click.Context, as_json: bool, config_path: str | None) -> None:
    """The newest campaigns with their status."""
    outbox = _outbox(ctx, config_path)
    try:
        found = Campaigns(outbox).list()
    finally:
        outbox.dispose()
    if as_json:
        click.echo(json.dumps({"campaigns": [_summary(c) for c in found]}, indent=2))
        return
    for campaign in found:
        click.echo(
            f"{campaign.id:>6}  {campaign.status.value:<9}  {printable(campaign.audience):<24}  "
            f"{printable(campaign.name)}"
        )


@campaign_group.command("status")
@click.argument("campaign_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def status(ctx: click.Context, campaign_id: int, as_json: bool, config_path: str | None) -> None:
    """Where a campaign is: its status and its recipients by outcome."""
    outbox = _outbox(ctx, config_path)
    try:
        campaign = Campaigns(outbox).get(campaign_id)
        with outbox.engine.connect() as connection:
            counts = progress(connection, campaign_id)
    finally:
        outbox.dispose()
    if as_json:
        click.echo(json.dumps({**_summary(campaign), "recipients": counts.as_dict()}, indent=2))
        return
    click.echo(f"campaign {campaign.id}: {printable(campaign.name)}")
    click.echo(f"  status:     {_status_line(campaign)}")
    click.echo(f"  audience:   {printable(campaign.audience)}")
    click.echo(f"  subject:    {printable(campaign.subject)}")
    click.echo(f"  from:       {printable(campaign.from_email)}")
    click.echo(
        f"  recipients: {counts.total} in the ledger"
        + ("" if campaign.fanout_done else " so far")
        + f": {counts.sent} sent, {counts.failed} failed, {counts.suppressed} suppressed, "
        f"{counts.skipped} skipped, {counts.remaining} remaining"
    )


@campaign_group.command("send")
@click.argument("campaign_id", type=int)
@click.option(
    "--at",
    "send_at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"]),
    default=None,
    help="Schedule it instead, e.g. 2026-12-24T09:00:00+00:00.",
)
@click.option(
    "--detach",
    is_flag=True,
    help="Start it and return; the running workers (`mailroom worker`, `serve`) send it.",
)
@config_option
@click.pass_context
def send(
    ctx: click.Context,
    campaign_id: int,
    send_at: datetime | None,
    detach: bool,
    config_path: str | None,
) -> None:
    """Send a campaign (or schedule it with --at), and watch it go.

    Without --detach this command also delivers (as `mailroom worker` would, beside any
    other worker) and shows sent, failed, suppressed and remaining recipients, the rate and
    the time left, until the campaign finishes. Ctrl-C detaches: the campaign goes on in the
    other workers, or in the next one started."""
    outbox = _outbox(ctx, config_path)
    try:
        campaigns = Campaigns(outbox)
        current = campaigns.get(campaign_id)
        if current.status in {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED}:
            current = campaigns.start(campaign_id, send_at=send_at)
        elif current.status is not CampaignStatus.SENDING:
            raise CampaignError(
                f"campaign {campaign_id} is {current.status.value}"
                + (
                    f" ({current.paused_reason})"
                    if current.status is CampaignStatus.PAUSED and current.paused_reason
                    else ""
                )
                + (
                    "; resume it with `mailroom campaign resume`"
                    if current.status is CampaignStatus.PAUSED
                    else ""
                )
            )
        click.echo(f"campaign {campaign_id}: {_status_line(current)}")
        if detach or current.status is CampaignStatus.SCHEDULED:
            return
        ended = watch_and_deliver(outbox, current)
    finally:
        outbox.dispose()
    if ended is not None and ended.status is CampaignStatus.PAUSED:
        raise CampaignError(f"campaign {campaign_id} paused: {ended.paused_reason or 'by hand'}")


@campaign_group.command("pause")
@click.argument("campaign_id", type=int)
@config_option
@click.pass_context
def pause(ctx: click.Context, campaign_id: int, config_path: str | None) -> None:
    """Stop sending; the messages still waiting are taken back until `resume`."""
    _control(ctx, config_path, campaign_id, "pause")


@campaign_group.command("resume")
@click.argument("campaign_id", type=int)
@config_option
@click.pass_context
def resume(ctx: click.Context, campaign_id: int, config_path: str | None) -> None:
    """Go on sending a paused campaign from where it stopped."""
    _control(ctx, config_path, campaign_id, "resume")


@campaign_group.command("cancel")
@click.argument("campaign_id", type=int)
@config_option
@click.pass_context
def cancel(ctx: click.Context, campaign_id: int, config_path: str | None) -> None:
    """Stop for good: nobody not yet sent it will be."""
    _control(ctx, config_path, campaign_id, "cancel")


@campaign_group.command("retry-failed")
@click.argument("campaign_id", type=int)
@config_option
@click.pass_context
def retry_failed(ctx: click.Context, campaign_id: int, config_path: str | None) -> None:
    """Queue the failed recipients' messages again, and only theirs."""
    _control(ctx, config_path, campaign_id, "retry-failed")


@campaign_group.command("duplicate")
@click.argument("campaign_id", type=int)
@click.option("--name", default=None)
@config_option
@click.pass_context
def duplicate(
    ctx: click.Context, campaign_id: int, name: str | None, config_path: str | None
) -> None:
    """A new draft with the same content; prints its id."""
    outbox = _outbox(ctx, config_path)
    try:
        click.echo(Campaigns(outbox).duplicate(campaign_id, name=name))
    finally:
        outbox.dispose()


@campaign_group.command("test")
@click.argument("campaign_id", type=int)
@click.argument("addresses", nargs=-1, required=True)
@click.option("--as", "as_contact", default=None, help="Whose merge fields (a contact's address).")
@config_option
@click.pass_context
def test(
    ctx: click.Context,
    campaign_id: int,
    addresses: tuple[str, ...],
    as_contact: str | None,
    config_path: str | None,
) -> None:
    """Send the campaign to ADDRESSES as a test ("[Test]" in the subject; not in its ledger)."""
    outbox = _outbox(ctx, config_path)
    try:
        campaign = Campaigns(outbox).get(campaign_id)
        ids = previews.send_test(outbox, campaign, list(addresses), as_contact=as_contact)
    finally:
        outbox.dispose()
    click.echo(f"queued {len(ids)} test message(s): {', '.join(map(str, ids))}")


# -- helpers ---------------------------------------------------------------------------------


def _control(ctx: click.Context, config_path: str | None, campaign_id: int, action: str) -> None:
    outbox = _outbox(ctx, config_path)
    try:
        engine = outbox.engine
        if action == "pause":
            outcome = control.pause(engine, campaign_id)
            said = f"paused; {outcome.withdrawn} waiting message(s) taken back"
        elif action == "resume":
            outcome = control.resume(engine, campaign_id)
            said = "sending again"
        elif action == "cancel":
            outcome = control.cancel(engine, campaign_id)
            said = f"cancelled; {outcome.withdrawn} waiting message(s) taken back"
        else:
            outcome = control.retry_failed(engine, campaign_id)
            said = f"{outcome.withdrawn} failed message(s) queued again"
    finally:
        outbox.dispose()
    click.echo(f"campaign {campaign_id}: {said}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text") from None


def _summary(campaign: Campaign) -> dict[str, Any]:
    values = asdict(campaign)
    values["status"] = campaign.status.value
    values.pop("body")
    return values


def _status_line(campaign: Campaign) -> str:
    line = campaign.status.value
    if campaign.status is CampaignStatus.SCHEDULED and campaign.send_at is not None:
        line += f" for {utc_time(campaign.send_at)} UTC"
    if campaign.status is CampaignStatus.PAUSED and campaign.paused_reason:
        line += f": {printable(campaign.paused_reason)}"
    return line
