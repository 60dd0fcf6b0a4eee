"""The headers that make a notification trustworthy to providers and controllable by people.

- ``Auto-Submitted: auto-generated`` (RFC 3834 §5): the message was made by a program, so
  vacation responders and other automatic replies must not answer it.
- a notification-type header (``X-Mailroom-Notification-Type``, name configurable) that
  recipients' filters can match on;
- ``List-Unsubscribe`` (RFC 2369 §3.2) with an HTTPS URL and, when configured, a mailto, and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058 §3.1), which lets a mail
  reader unsubscribe with one POST and no page. RFC 8058 §4 asks for a DKIM signature covering
  both headers; that comes with DKIM signing.
- the subject prefix, and the sender identity: "Ada Lovelace via Acme" at the app's address,
  with a random token in the noreply local part, so mail readers that remember a display name
  per address do not show Ada's name on Bob's next notification.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from mailroom.config import Settings
from mailroom.consent.tokens import unsubscribe_url
from mailroom.message import Address

__all__ = [
    "AUTO_SUBMITTED",
    "app_name",
    "auto_submitted",
    "list_unsubscribe",
    "noreply_sender",
    "notification_type",
    "prefixed_subject",
    "sender_display_name",
]

AUTO_SUBMITTED = "Auto-Submitted"
ONE_CLICK = "List-Unsubscribe=One-Click"
_NOREPLY_TOKEN_BYTES = 8  # 16 hex characters: unguessable, and well inside 64-octet local parts


def auto_submitted() -> dict[str, str]:
    """``Auto-Submitted: auto-generated``: made by a program, not in reply to anything."""
    return {AUTO_SUBMITTED: "auto-generated"}


def notification_type(header_name: str, type_name: str) -> dict[str, str]:
    """The header recipients' filters match on, e.g. ``X-Mailroom-Notification-Type``."""
    return {header_name: type_name}


def prefixed_subject(prefix: str, subject: str) -> str:
    """``EMAIL_SUBJECT_PREFIX`` + subject, not doubled if the subject already starts with it."""
    if not prefix or subject.startswith(prefix):
        return subject
    return f"{prefix}{subject}"


def list_unsubscribe(settings: Settings, token: str) -> dict[str, str]:
    """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` for one recipient's unsubscribe token.

    The one-click URL is ``PUBLIC_BASE_URL/unsubscribe/<token>``. The mailto goes to
    ``UNSUBSCRIBE_EMAIL_ADDRESS``, whose inbound processing understands the subject (the same
    token, in ``subject=unsubscribe <token>``); without it the mailto is left out, since a
    mailto nobody reads would tell people they were unsubscribed when they were not.
    """
    https_url = unsubscribe_url(settings, token)
    if https_url is None or not https_url.startswith("https://"):
        # RFC 8058 §3.1: the one-click URI MUST be HTTPS.
        raise ValueError(f"one-click unsubscribe needs an https:// URL, got {https_url!r}")
    targets = [f"<{https_url}>"]
    if settings.UNSUBSCRIBE_EMAIL_ADDRESS:
        subject = quote("unsubscribe " + token)
        targets.append(f"<mailto:{settings.UNSUBSCRIBE_EMAIL_ADDRESS}?subject={subject}>")
    return {"List-Unsubscribe": ", ".join(targets), "List-Unsubscribe-Post": ONE_CLICK}


def app_name(address: Address) -> str:
    """How the app calls itself: the display name of its address, else the domain."""
    return address.display_name or address.domain


def sender_display_name(app: str, actor: str | None) -> str:
    """``"Ada Lovelace via Acme"`` when a person's action caused the mail, else ``"Acme"``."""
    actor = " ".join((actor or "").split())
    return f"{actor} via {app}" if actor else app


def noreply_sender(noreply: Address, display_name: str, *, tokenized: bool) -> Address:
    """The From address of a notification: ``noreply-<random>@domain`` when ``tokenized``
    (``ADD_TOKENS_TO_NOREPLY_ADDRESS``), else the fixed noreply address."""
    local = noreply.local_part
    if tokenized:
        token = secrets.token_hex(_NOREPLY_TOKEN_BYTES)
        local = f"{local[: 64 - 1 - len(token)]}-{token}"  # RFC 5321 §4.5.3.1.1: 64 octets
    return Address.create(f"{local}@{noreply.domain}", display_name, "from_email")
