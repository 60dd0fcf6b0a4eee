"""SMTP transport: one connection, reused for every message until it breaks.

Built on aiosmtplib for setting the connection up (:mod:`~mailroom.transports.smtp_connection`);
this module owns the mail transactions — MAIL/RCPT/DATA with a result per recipient, pipelined
where the relay allows, as many transactions per message as the relay's recipient limit needs —
and turns every refusal into a :class:`~mailroom.errors.DeliveryError` classified by the relay's
numeric reply and the stage it came at (see
:func:`mailroom.transports.smtp_replies.error_from_reply`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from mailroom.errors import (
    ConnectionLostError,
    DeliveryError,
    PermanentError,
    SMTPStage,
    SMTPUTF8UnsupportedError,
    TransientError,
    Verdict,
)
from mailroom.message import Envelope
from mailroom.transports.base import SendProgress, SendResult
from mailroom.transports.recipients import RecipientBatches, is_too_many_recipients
from mailroom.transports.smtp_connection import (
    DEFAULT_MAX_RECIPIENTS,
    RESET_TIMEOUT,
    SMTPConnection,
    logger,
)
from mailroom.transports.smtp_replies import Reply, ReplyCode, error_from_reply
from mailroom.transports.smtp_session import RawReply, Session, WriteStalledError, dot_stuffed

__all__ = ["DEFAULT_MAX_RECIPIENTS", "SMTPTransport"]

_ACCEPTED = frozenset({ReplyCode.COMPLETED, ReplyCode.WILL_FORWARD})


@dataclass
class _Part:
    """What one transaction of a delivery did with its recipients."""

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, DeliveryError] = field(default_factory=dict)
    no_room: list[str] = field(default_factory=list)
    """Recipients the relay had no room for in this transaction ("too many recipients")."""
    no_room_reply: RawReply | None = None
    taken: int = 0
    """RCPT commands the relay answered before it had no more room."""
    data_reply: Reply | None = None
    """The reply to the content's final dot: set when the accepted recipients got it."""


def _no_room_error(raw: RawReply, recipient: str) -> DeliveryError:
    """A recipient the relay had no room for, to try in a later delivery. Transient even as
    552: RFC 5321 §4.5.3.1.10 says to read RFC 821's 552 "too many recipients" as 452."""
    reply = Reply.parse(raw.code, raw.text)
    return TransientError(
        f"RCPT refused for {recipient}: the relay takes no more recipients now: {reply}",
        code=reply.code,
        enhanced_status=reply.enhanced_status,
        server_text=reply.text,
        recipient=recipient,
        stage=SMTPStage.RCPT,
    )


def _pipeline_stage(unanswered: int, recipients: int) -> SMTPStage:
    """The stage of the ``unanswered``-th command of MAIL, the RCPTs and DATA."""
    if unanswered == 0:
        return SMTPStage.MAIL
    return SMTPStage.RCPT if unanswered <= recipients else SMTPStage.DATA


class SMTPTransport(SMTPConnection):
    """Delivers over SMTP with STARTTLS (``use_tls``) or implicit TLS (``use_ssl``)."""

    name = "smtp"

    # -- sending ------------------------------------------------------------------------

    async def send(self, envelope: Envelope, progress: SendProgress | None = None) -> SendResult:
        """Deliver to every recipient, in as many transactions on the connection as the
        relay's recipient limit needs (see :mod:`mailroom.transports.recipients`); each
        transaction whose content the relay accepted is recorded in ``progress`` at once."""
        self._check_addresses(envelope)
        async with self._lock:
            limit = self._recipient_limit
            batches = RecipientBatches(envelope.recipients, limit)
            try:
                return await self._deliver(envelope, batches, progress or SendProgress())
            finally:
                # What the relay takes per transaction holds for its later messages on this
                # connection too.
                if batches.limit < limit:
                    self._recipient_limit = batches.limit

    async def _deliver(
        self, envelope: Envelope, batches: RecipientBatches, progress: SendProgress
    ) -> SendResult:
        # The progress is the account of the delivery itself, so that whoever cancels the
        # send knows what the relay already has.
        self._progress = progress
        accepted = progress.accepted
        refused = progress.refused
        data_replies = progress.replies
        last_reply: Reply | None = None
        while batches:
            batch = batches.next_batch()
            try:
                part = await self._batch(envelope, batch)
            except DeliveryError as error:
                if not accepted:
                    raise  # nothing delivered: the message is tried again as a whole
                # Part of the message is delivered and must not be sent again: the rest is
                # refused with this error, and the worker carries forward what may work later.
                for recipient in (*batch, *batches.take_rest()):
                    refused[recipient] = error
                break
            if part.data_reply is not None:
                last_reply = part.data_reply
                data_replies.update(dict.fromkeys(part.accepted, last_reply))
                accepted += part.accepted
            refused.update(part.refused)
            if part.no_room and not batches.no_room(part.no_room, taken=part.taken):
                # The relay took no recipient at all in a transaction of its own: another
                # would fare no better now. Those left wait for a later delivery.
                assert part.no_room_reply is not None  # noqa: S101 - set with no_room
                for recipient in (*part.no_room, *batches.take_rest()):
                    refused[recipient] = _no_room_error(part.no_room_reply, recipient)

        if not accepted:
            # Report the most hopeful verdict: if any recipient may work later, retry.
            errors = list(refused.values())
            first = next((e for e in errors if e.verdict is Verdict.TRANSIENT), errors[0])
            first.refused = refused
            raise first
        return SendResult(
            message_id=envelope.message_id,
            accepted=tuple(accepted),
            transport=self.name,
            reply=last_reply,
            refused=dict(refused),
            location=self.where,
            # Each transaction has its own reply (and queue id); one suffices for one.
            replies=dict(data_replies) if batches.transactions > 1 else {},
        )

    async def _batch(self, envelope: Envelope, recipients: list[str]) -> _Part:
        """One transaction for ``recipients``, on a fresh connection if the kept one was
        dropped while idle."""
        session = await self._ensure_connected()
        try:
            return await self._transaction(session, envelope, recipients)
        except ConnectionLostError as exc:
            if exc.stage is not SMTPStage.MAIL:
                raise
        # The relay dropped an idle connection before accepting anything of this
        # transaction: nothing was delivered by it, so one more try on a fresh one is safe.
        logger.debug("connection to %s was stale; reconnecting", self.where)
        session = await self._ensure_connected()
        return await self._transaction(session, envelope, recipients)

    async def _transaction(
        self, session: Session, envelope: Envelope, recipients: list[str]
    ) -> _Part:
        self._check_capabilities(session, envelope)
        try:
            return await self._exchange(session, envelope, recipients)
        except asyncio.CancelledError:
            session.abort()  # halfway through a transaction, the connection is unusable
            raise

    async def _exchange(self, session: Session, envelope: Envelope, recipients: list[str]) -> _Part:
        """MAIL, RCPT for each of ``recipients`` and, if any was accepted, DATA.

        Raises for what ends the transaction as a whole (sender refused, our configuration
        refused at RCPT, content refused, the connection lost); a recipient refused on its
        own, or for want of room, is in the returned part.
        """
        mail, rcpts = self._envelope_commands(session, envelope, recipients)
        mail_reply, rcpt_replies, data_reply = await self._envelope(session, mail, rcpts)
        if mail_reply.code != ReplyCode.COMPLETED:
            await self._abandon(session, data_reply)
            raise error_from_reply(mail_reply.code, mail_reply.text, SMTPStage.MAIL)

        part = _Part()
        for position, (recipient, reply) in enumerate(zip(recipients, rcpt_replies, strict=True)):
            if reply.code in _ACCEPTED:
                part.accepted.append(recipient)
            elif is_too_many_recipients(reply.code, reply.text):
                if part.no_room_reply is None:
                    part.no_room_reply, part.taken = reply, position
                part.no_room.append(recipient)
            else:
                error = error_from_reply(
                    reply.code, reply.text, SMTPStage.RCPT, recipient=recipient
                )
                if error.verdict is Verdict.CONFIGURATION:  # about us, not this recipient
                    await self._abandon(session, data_reply)
                    raise error
                part.refused[recipient] = error

        if not part.accepted:
            await self._abandon(session, data_reply)
            return part
        part.data_reply = await self._data(session, envelope, data_reply, part.accepted)
        return part

    async def _envelope(
        self, session: Session, mail: bytes, rcpts: list[bytes]
    ) -> tuple[RawReply, list[RawReply], RawReply | None]:
        """The replies to MAIL, to each RCPT (none if MAIL was refused without pipelining)
        and, when pipelined, to DATA."""
        stage = SMTPStage.MAIL
        try:
            if session.pipelining:
                # RFC 2920: MAIL, the RCPTs and DATA in one write, the replies read in order.
                received: list[RawReply] = []
                group = b"".join((mail, *rcpts, b"DATA\r\n"))
                try:
                    await session.write(group, len(rcpts) + 2, received=received)
                except (OSError, TimeoutError):
                    stage = _pipeline_stage(len(received), len(rcpts))
                    raise
                return received[0], received[1:-1], received[-1]
            mail_reply = await session.command(mail)
            rcpt_replies: list[RawReply] = []
            if mail_reply.code == ReplyCode.COMPLETED:
                stage = SMTPStage.RCPT
                for position, rcpt in enumerate(rcpts):
                    reply = await session.command(rcpt)
                    if reply.code == ReplyCode.CLOSING or is_too_many_recipients(
                        reply.code, reply.text
                    ):
                        # The relay hangs up, or has no room for more in this transaction:
                        # the same answer for the rest, which are not sent.
                        rcpt_replies += [reply] * (len(rcpts) - position)
                        break
                    rcpt_replies.append(reply)
            return mail_reply, rcpt_replies, None
        except (OSError, TimeoutError) as exc:
            raise self._translate(exc, stage) from exc

    def _check_addresses(self, envelope: Envelope) -> None:
        for address in (envelope.sender, *envelope.recipients):
            # Addresses were validated when the message was built; a row edited by hand must
            # still never smuggle a second command in (RFC 5321 §4.1.1: a line is a command).
            if "\r" in address or "\n" in address or ">" in address:
                raise PermanentError(
                    f"message {envelope.message_id} has an invalid envelope address {address!r}",
                    stage=SMTPStage.MAIL,
                )

    def _envelope_commands(
        self, session: Session, envelope: Envelope, recipients: list[str]
    ) -> tuple[bytes, list[bytes]]:
        """The MAIL command and one RCPT command per recipient, encoded for the wire (the
        addresses were checked by :meth:`_check_addresses`)."""
        options = ""
        if session.supports("size"):
            options = f" SIZE={len(envelope.data)}"  # RFC 1870: let it refuse early
        if envelope.smtputf8:
            options += " SMTPUTF8 BODY=8BITMIME"
        encoding = "utf-8" if envelope.smtputf8 else "ascii"
        return (
            f"MAIL FROM:<{envelope.sender}>{options}\r\n".encode(encoding),
            [f"RCPT TO:<{r}>\r\n".encode(encoding) for r in recipients],
        )

    async def _abandon(self, session: Session, data_reply: RawReply | None) -> None:
        """End a transaction that will carry no content, and RSET for the next one."""
        if data_reply is not None and data_reply.code == ReplyCode.START_INPUT:
            # A pipelining relay said "go ahead" with no recipient accepted (RFC 2920
            # §3.1 allows it): end the content at once, empty, before resetting.
            try:
                await session.command(b".\r\n", RESET_TIMEOUT)
            except (OSError, TimeoutError):
                session.abort()
                return
        await self._reset(session)

    async def _data(
        self, session: Session, envelope: Envelope, go_ahead: RawReply | None, recipients: list[str]
    ) -> Reply:
        """DATA in two steps, so silence after the final dot is told apart from a failure
        before it: only the former may mean the relay accepted the message (for
        ``recipients``, those of this transaction)."""
        if go_ahead is None:  # not pipelined: DATA has not been sent yet
            try:
                go_ahead = await session.command(b"DATA\r\n")
            except (OSError, TimeoutError) as exc:
                raise self._translate(exc, SMTPStage.DATA) from exc
        if go_ahead.code != ReplyCode.START_INPUT:
            await self._reset(session)
            raise error_from_reply(go_ahead.code, go_ahead.text, SMTPStage.DATA)
        try:
            pending = session.write(dot_stuffed(envelope.data), 1)
        except OSError as exc:
            session.abort()
            raise self._translate(exc, SMTPStage.DATA) from exc
        try:
            [reply] = await pending
        except asyncio.CancelledError:
            # Cut short (a stop, the end of the lease) while the reply was awaited: if the
            # final dot has left, the relay may have taken the message (RFC 5321 §4.1.1.4).
            # Checked before the connection is dropped, which discards what is unsent.
            if session.all_written:
                self._progress.unanswered = list(recipients)
            raise
        except (OSError, TimeoutError) as exc:
            # Only if the final dot left this process can the relay have taken the message;
            # one that stopped reading before the end never saw it (RFC 5321 §4.1.1.4).
            complete = session.all_written and not isinstance(exc, WriteStalledError)
            session.abort()
            error = self._translate(exc, SMTPStage.DATA)
            error.possibly_delivered = complete
            raise error from exc
        if reply.code != ReplyCode.COMPLETED:
            await self._reset(session)
            raise error_from_reply(reply.code, reply.text, SMTPStage.DATA)
        return Reply.parse(reply.code, reply.text)

    def _check_capabilities(self, session: Session, envelope: Envelope) -> None:
        if envelope.smtputf8 and not session.supports("smtputf8"):
            raise SMTPUTF8UnsupportedError(
                f"an address of message {envelope.message_id} has a non-ASCII local part and "
                f"{self.where} does not offer SMTPUTF8 (RFC 6531)",
                stage=SMTPStage.MAIL,
            )
        limit = session.extensions.get("size", "").strip()
        if limit.isdigit() and 0 < int(limit) < len(envelope.data):
            raise PermanentError(
                f"message {envelope.message_id} is {len(envelope.data)} bytes; "
                f"{self.where} accepts at most {limit} (its SIZE)",
                stage=SMTPStage.MAIL,
            )
