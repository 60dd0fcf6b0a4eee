"""The MIME tree of any message, built with :class:`email.message.EmailMessage` and an
:mod:`email.policy`, never by string concatenation.

text + html make multipart/alternative, inline images (with a Content-ID) sit with the html
part in multipart/related, attachments wrap it all in multipart/mixed. Attachments are files:
``multipart/*`` is refused (Mailroom builds the MIME tree itself), ``message/rfc822`` is
carried as an embedded message with CRLF line ends and a 7bit or 8bit transfer encoding
(RFC 2046 §5.2.1 forbids base64 there), other ``message/*`` are refused.

The common shapes skip all this: :mod:`mailroom.message.mime_fast` writes them directly.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from email.message import EmailMessage
from typing import Any

from mailroom.errors import MessageError
from mailroom.message.headers import MAX_LINE_OCTETS, refuse_line_breaks, set_unstructured
from mailroom.message.model import Attachment, Message

__all__ = ["POLICY_ASCII", "POLICY_UTF8", "general_bytes"]

# policy.SMTP folds at 78 and ends lines with CRLF; 7bit makes any non-ASCII body
# quoted-printable or base64, so the message needs no 8BITMIME from the relay. Headers we
# write raw (addresses, encoded words) are already folded: refold_source="none" keeps them.
POLICY_ASCII = email.policy.SMTP.clone(cte_type="7bit", refold_source="none")
POLICY_UTF8 = email.policy.SMTPUTF8.clone(refold_source="none")


def _html_alternative(mime: EmailMessage) -> EmailMessage:
    for part in mime.iter_parts():
        if isinstance(part, EmailMessage) and part.get_content_type() == "text/html":
            return part
    raise MessageError("html", "no html part to attach inline images to")  # pragma: no cover


# RFC 2045 §5.1: type "/" subtype, each a token.
_MIME_TOKEN = r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+"  # noqa: S105 - not a password
_MIME_TYPE = re.compile(rf"({_MIME_TOKEN})/({_MIME_TOKEN})\Z")


def _attachment_type(attachment: Attachment) -> tuple[str, str]:
    """(maintype, subtype) of an attachment, or a MessageError naming it.

    ``multipart/*`` is refused: the MIME tree is Mailroom's to build, and a part that claims
    to be one but holds a file is a broken tree. ``message/*`` other than ``message/rfc822``
    (partial, external-body, delivery reports, global) each have rules of their own that a
    file attachment does not meet; attached as application/octet-stream they arrive intact.
    """
    name = attachment.filename
    match = _MIME_TYPE.match(attachment.mimetype.strip())
    if not match:
        raise MessageError(
            "attachment mimetype",
            f"{attachment.mimetype!r} (for {name!r}) is not a MIME type: give type/subtype, "
            "e.g. application/pdf (RFC 2045 §5.1), without parameters",
        )
    maintype, subtype = match.group(1).lower(), match.group(2).lower()
    if maintype == "multipart":
        raise MessageError(
            "attachment mimetype",
            f"{name!r} is given as {maintype}/{subtype}, which is a MIME container Mailroom "
            "builds itself, not a file type: attach the parts one by one, or the file as "
            "application/octet-stream",
        )
    if maintype == "message" and subtype != "rfc822":
        raise MessageError(
            "attachment mimetype",
            f"{name!r} is given as {maintype}/{subtype}; only message/rfc822 (an email) can be "
            "attached as a message: attach this one as application/octet-stream",
        )
    return maintype, subtype


def _embedded_message(
    attachment: Attachment, policy: email.policy.EmailPolicy[EmailMessage]
) -> tuple[EmailMessage, str]:
    """An attached email (message/rfc822) as a message part, and its transfer encoding.

    RFC 2046 §5.2.1 allows only 7bit, 8bit or binary for message/rfc822, so the email is not
    base64-encoded like other files: it is parsed and written line by line, every line ended
    by CRLF (RFC 5322 §2.1; a file saved on Unix ends them in LF). Under the 7bit policy the
    email package re-encodes 8-bit text parts inside it (quoted-printable or base64, as
    RFC 2046 allows for them); what it cannot make 7bit, and lines over 998 octets, which no
    encoding of the embedded message may fix, are refused.
    """
    name = attachment.filename
    content = attachment.content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    inner = email.parser.BytesParser(policy=policy).parsebytes(content.replace(b"\n", b"\r\n"))
    assert isinstance(inner, EmailMessage)  # the policy's message_factory  # noqa: S101
    if not inner.keys():
        raise MessageError(
            "attachment content",
            f"{name!r} is given as message/rfc822 but has no header fields, so it is not an "
            "email: attach it as text/plain or application/octet-stream",
        )
    data = inner.as_bytes(policy=policy)
    longest = max(map(len, data.split(b"\r\n")))
    if longest > MAX_LINE_OCTETS:
        raise MessageError(
            "attachment content",
            f"{name!r} (message/rfc822) has a line of {longest} octets, over RFC 5322's "
            f"{MAX_LINE_OCTETS}, and an attached email may not be encoded to fix that "
            "(RFC 2046 §5.2.1): attach it as application/octet-stream",
        )
    if data.isascii():
        return inner, "7bit"
    if policy.cte_type == "8bit":
        # Only with SMTPUTF8, which requires 8BITMIME of the relay (RFC 6531 §3.1).
        return inner, "8bit"
    raise MessageError(
        "attachment content",
        f"{name!r} (message/rfc822) holds 8-bit data that cannot be re-encoded as 7bit, and "
        "an attached email may not be base64-encoded (RFC 2046 §5.2.1): attach it as "
        "application/octet-stream",
    )


def _add_file(
    add: Any,
    attachment: Attachment,
    policy: email.policy.EmailPolicy[EmailMessage],
    **options: str,
) -> None:
    """Add one attachment with ``add`` (``add_attachment`` or ``add_related``)."""
    maintype, subtype = _attachment_type(attachment)
    if (maintype, subtype) == ("message", "rfc822"):
        inner, cte = _embedded_message(attachment, policy)
        add(inner, cte=cte, filename=attachment.filename, **options)
    else:
        add(attachment.content, maintype, subtype, filename=attachment.filename, **options)


def _build_mime(message: Message, policy: email.policy.EmailPolicy[EmailMessage]) -> EmailMessage:
    inline = [a for a in message.attachments if a.content_id]
    files = [a for a in message.attachments if not a.content_id]
    mime = EmailMessage(policy=policy)
    if message.text is not None or message.html is None:
        mime.set_content(message.text or "", subtype="plain", charset="utf-8")
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html", charset="utf-8")
    else:
        mime.set_content(message.html, subtype="html", charset="utf-8")
    if inline:
        if message.html is None:
            raise MessageError("attachments", "inline images (content_id) need an html body")
        html_part = mime if mime.get_content_type() == "text/html" else _html_alternative(mime)
        for image in inline:
            assert image.content_id is not None  # filtered above  # noqa: S101
            refuse_line_breaks("attachment content_id", image.content_id)
            _add_file(
                html_part.add_related,
                image,
                policy,
                cid=f"<{image.content_id.strip('<>')}>",
                disposition="inline",
            )
    for attachment in files:
        refuse_line_breaks("attachment filename", attachment.filename)
        _add_file(mime.add_attachment, attachment, policy)
    return mime


_WRITTEN_AS_IS = {"Date", "Message-ID"}  # ours, already in their exact form


def general_bytes(
    message: Message,
    policy: email.policy.EmailPolicy[EmailMessage],
    addresses: list[tuple[str, str]],
    headers: list[tuple[str, str]],
) -> bytes:
    """Any message, through the email package (see :mod:`mailroom.message.mime_fast` for the
    shapes that skip it)."""
    mime = _build_mime(message, policy)
    for name, value in addresses:
        mime.set_raw(name, value)
    for name, value in headers:
        if name in _WRITTEN_AS_IS:
            mime[name] = value
        else:
            set_unstructured(mime, name, value)
    # EmailMessage puts MIME-Version on multipart messages only; RFC 2045 §4 wants it always.
    if "MIME-Version" not in mime:
        mime["MIME-Version"] = "1.0"
    return mime.as_bytes(policy=policy)
