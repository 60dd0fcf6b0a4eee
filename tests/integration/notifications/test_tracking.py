"""Notifications of a tracked stream: the pixel and tracked links, stored with the message."""

from __future__ import annotations

from collections.abc import Callable

import lxml.html
from sqlalchemy import select

from mailroom.compose.templates import Template
from mailroom.config import Settings
from mailroom.notifications import NotificationRegistry, Notifier
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import NotificationOutcome
from mailroom.tracking.tokens import TokenKind, verify_public_token
from support.mail_checks import html_part, parse

NEWS = Template(
    "news",
    subject="This week",
    html=(
        "<html><body><p>Hi {{ recipient.name }}</p>"
        '<p><a href="https://blog.example/a">post</a> <a href="mailto:ed@acme.example">ed</a>'
        '<a href="{{ unsubscribe_url }}">unsubscribe</a></p></body></html>'
    ),
)


def test_a_tracked_stream_gets_the_pixel_and_links_and_a_key_still_matches(
    make_settings: Callable[..., Settings],
    make_outbox: Callable[[Settings], Outbox],
    registry: NotificationRegistry,
) -> None:
    settings = make_settings(TRACK_OPENS="bulk", TRACK_CLICKS="bulk")
    outbox = make_outbox(settings)
    registry.register("news.weekly", template=NEWS, stream="bulk")
    notifier = Notifier(outbox, registry)
    first = notifier.notify("news.weekly", "Ada <ada@example.com>", idempotency_key="news-1")
    again = notifier.notify("news.weekly", "Ada <ada@example.com>", idempotency_key="news-1")
    (sent,) = first.outcomes
    assert sent.outcome is NotificationOutcome.QUEUED
    # The same request again: the same message, though its tokens name a new Message-ID.
    assert [o.message_pk for o in again.outcomes] == [sent.message_pk]
    with outbox.engine.connect() as connection:
        row = connection.execute(
            select(messages.c.data, messages.c.message_id, messages.c.tracked_links).where(
                messages.c.id == sent.message_pk
            )
        ).one()
    assert row.tracked_links == ["https://blog.example/a"]
    message = parse(row.data)
    assert message["Message-ID"] == row.message_id
    document = lxml.html.document_fromstring(html_part(message) or "")
    hrefs = [a.get("href") or "" for a in document.iter("a")]
    assert hrefs[1] == "mailto:ed@acme.example"
    assert hrefs[2].startswith("https://acme.example/unsubscribe/")  # never rewritten
    click = verify_public_token(settings, TokenKind.CLICK, hrefs[0].rsplit("/c/", 1)[1])
    assert (click.message_id, click.recipient, click.link_index) == (
        row.message_id,
        "ada@example.com",
        0,
    )
    (pixel,) = [img.get("src") or "" for img in document.iter("img")]
    opened = verify_public_token(settings, TokenKind.OPEN, pixel.rsplit("/trck/", 1)[1])
    assert opened.message_id == row.message_id


def test_an_untracked_stream_is_left_as_it_is(
    make_settings: Callable[..., Settings],
    make_outbox: Callable[[Settings], Outbox],
    registry: NotificationRegistry,
) -> None:
    settings = make_settings(TRACK_OPENS="bulk", TRACK_CLICKS="bulk")
    outbox = make_outbox(settings)
    registry.register("news.daily", template=NEWS, stream="transactional")
    (sent,) = Notifier(outbox, registry).notify("news.daily", "ada@example.com").outcomes
    with outbox.engine.connect() as connection:
        row = connection.execute(
            select(messages.c.data, messages.c.tracked_links).where(
                messages.c.id == sent.message_pk
            )
        ).one()
    assert row.tracked_links is None
    html = html_part(parse(row.data)) or ""
    assert "/trck/" not in html
    assert "https://blog.example/a" in html
