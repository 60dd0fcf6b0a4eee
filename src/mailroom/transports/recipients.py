"""Splitting one delivery's recipients into SMTP transactions the relay will take.

RFC 5321 §4.5.3.1.8 obliges a server to accept only 100 recipients per transaction, and says a
client with more "SHOULD be prepared to transmit in 100-recipient chunks"; a server past its
limit answers ``452`` (§4.5.3.1.10; ``552`` from servers that follow RFC 821, to be treated the
same), usually with the enhanced status ``4.5.3`` "too many recipients" (RFC 3463 §3.6). The
recipients it refused that way are not refused: they go in the next transaction on the same
connection.

:class:`RecipientBatches` hands out the recipients of one delivery in batches of at most the
configured size (``EMAIL_MAX_RECIPIENTS_PER_MESSAGE``) or the relay's limit as learned from its
replies, and takes back those the relay had no room for. It does no I/O, so the splitting can
be tested on its own; the SMTP transport drives it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence

__all__ = ["RecipientBatches", "is_too_many_recipients"]

_TOO_MANY_TEXT = re.compile(r"too many recipients", re.IGNORECASE)


def is_too_many_recipients(code: int, text: str) -> bool:
    """Whether an RCPT reply says the transaction has no room for more recipients.

    ``452`` alone is not enough: it also means "insufficient system storage" (``4.3.1``, RFC
    5321 §4.2.3) or a full mailbox (``4.2.2``). The enhanced status ``X.5.3`` says "too many
    recipients" (RFC 3463 §3.6); servers without enhanced status codes say it in words.
    """
    if code not in (452, 552):
        return False
    status = text.lstrip()[:5]
    if status in ("4.5.3", "5.5.3"):
        return True
    return bool(_TOO_MANY_TEXT.search(text))


class RecipientBatches:
    """The recipients of one delivery, handed out a transaction's worth at a time.

    ``limit`` is the most recipients to put in one transaction. :meth:`next_batch` gives the
    next batch; after the relay's replies, :meth:`no_room` puts back the recipients it had no
    room for, at the front, and lowers the limit to what the relay took. Each batch decides at
    least one recipient or ends the splitting, so a delivery always ends.
    """

    def __init__(self, recipients: Iterable[str], limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self._waiting: deque[str] = deque(recipients)
        self.transactions = 0
        """How many batches were handed out."""

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def __len__(self) -> int:
        return len(self._waiting)

    def next_batch(self) -> list[str]:
        """The next transaction's recipients (empty when none are left)."""
        count = min(self.limit, len(self._waiting))
        batch = [self._waiting.popleft() for _ in range(count)]
        if batch:
            self.transactions += 1
        return batch

    def no_room(self, recipients: Sequence[str], *, taken: int) -> bool:
        """The relay answered "too many recipients" to ``recipients`` of the last batch after
        ``taken`` RCPT commands of it. Returns whether they were put back for another
        transaction: not when the relay took none (``taken == 0``), since a new transaction
        would meet the same answer; those recipients are then the caller's to defer.
        """
        if taken < 1:
            return False
        self.limit = min(self.limit, taken)
        self._waiting.extendleft(reversed(recipients))
        return True

    def take_rest(self) -> list[str]:
        """Every recipient not yet handed out; none are left afterwards."""
        rest = list(self._waiting)
        self._waiting.clear()
        return rest
