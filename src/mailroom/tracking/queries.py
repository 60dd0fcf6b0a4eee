"""The queries of tracking: find the outbox rows a Message-ID names.

Tokens name a message by its ``Message-ID`` (known at composition, before the row has an
id). One Message-ID can have several rows: a follow-up row for recipients deferred by the
relay keeps the message's Message-ID. The row of a hit is the one whose recipients include
the token's recipient, else the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from mailroom.outbox.schema import messages
from mailroom.tracking.tokens import HitClaim

__all__ = ["MessageRef", "find_messages", "message_for", "tracked_link"]


@dataclass(frozen=True, slots=True)
class MessageRef:
    """What tracking needs of one outbox row."""

    pk: int
    message_id: str
    recipients: tuple[str, ...]
    sent_at: float | None
    tracked_links: tuple[str, ...] | None


def find_messages(
    connection: Connection, message_ids: Iterable[str]
) -> dict[str, list[MessageRef]]:
    """The rows of each Message-ID, oldest first (one query; the column is indexed)."""
    wanted = list(dict.fromkeys(message_ids))
    if not wanted:
        return {}
    rows = connection.execute(
        select(
            messages.c.id,
            messages.c.message_id,
            messages.c.recipients,
            messages.c.sent_at,
            messages.c.tracked_links,
        )
        .where(messages.c.message_id.in_(wanted))
        .order_by(messages.c.id)
    )
    found: dict[str, list[MessageRef]] = {}
    for row in rows:
        links = row.tracked_links
        found.setdefault(row.message_id, []).append(
            MessageRef(
                pk=row.id,
                message_id=row.message_id,
                recipients=tuple(str(r).lower() for r in row.recipients or ()),
                sent_at=row.sent_at,
                tracked_links=tuple(str(link) for link in links) if links is not None else None,
            )
        )
    return found


def message_for(refs: Sequence[MessageRef], recipient: str) -> MessageRef | None:
    """Of one Message-ID's rows, the one sent to ``recipient`` (normalised), else the first."""
    for ref in refs:
        if recipient in ref.recipients:
            return ref
    return refs[0] if refs else None


def tracked_link(engine: Engine, claim: HitClaim) -> str | None:
    """The URL link ``claim.link_index`` of the claimed message stood for, or ``None`` (no
    such message, no such link, or a stored value that is no http(s) URL). The click
    endpoint redirects to this and to nothing else."""
    with engine.connect() as connection:
        ref = message_for(
            find_messages(connection, [claim.message_id]).get(claim.message_id, []), claim.recipient
        )
    if ref is None or ref.tracked_links is None or claim.link_index is None:
        return None
    if not 0 <= claim.link_index < len(ref.tracked_links):
        return None
    url = ref.tracked_links[claim.link_index]
    return url if url.lower().startswith(("https://", "http://")) else None
